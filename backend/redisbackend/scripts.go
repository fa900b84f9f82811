package redisbackend

import "github.com/redis/go-redis/v9"

// The Lua scripts. Every change of a group or a lock happens in one script,
// so it is atomic, and the script publishes the change on the group's or
// the lock's channel in the same step: a subscriber sees changes in the
// order they happened. Group messages carry the group's version (a counter
// in the group hash bumped by every change), so a watcher can tell a
// message already reflected in a listing from a new one, and notice a gap.
//
// Scripts that can be retried after an ambiguous failure (the reply was
// lost) are idempotent: an acquire or a join recognises its own nonce or
// incarnation, and the callers treat "already gone" after a retry of a
// release or a leave as success.
//
// Liveness keys of other members are read by name computed inside the
// scripts (from the session ID in their records), which Redis allows
// outside Redis Cluster; the driver does not support Redis Cluster.

// luaPrune is the shared prelude of the group scripts. prune removes the
// members of the group hash g whose liveness key (sp .. session ID) is
// gone, publishing each departure on channel ch, and returns the smallest
// remaining time to live (ms) of the live members' liveness keys (-1 when
// there is none) and the live members as a flat field/record list.
const luaPrune = `
local function fmt(n) return string.format('%d', n) end
local function left(g, ch, f, rec)
  local m = string.sub(f, 3)
  local ver = redis.call('HINCRBY', g, 'v', 1)
  redis.call('PUBLISH', ch, fmt(ver) .. '|L' .. fmt(#m) .. ':' .. m .. string.sub(rec, 33, 64))
end
local function prune(g, sp, ch)
  local all = redis.call('HGETALL', g)
  local minp = -1
  local live = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'm:' then
      local rec = all[i + 1]
      local p = redis.call('PTTL', sp .. string.sub(rec, 1, 32))
      if p == -2 then
        redis.call('HDEL', g, f)
        left(g, ch, f, rec)
      else
        if p >= 0 and (minp < 0 or p < minp) then minp = p end
        live[#live + 1] = f
        live[#live + 1] = rec
      end
    end
  end
  return minp, live
end
`

// The lock scripts' helpers; each script takes those it uses. Shared
// grants are entries "TOKEN:NONCE:MEMBER" of the readers sorted set,
// scored by their expiry in the server's clock (TIME); the readers key
// itself expires with its last entry. Scripts that read TIME and then
// write need effects replication (Redis 3.2, asked for by now() before
// the script's first write; always on since Redis 5).
const (
	luaNow = `
local function now()
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`
	// nextToken sets the lock's counter f to max(counter + 1, the
	// server's TIME in microseconds) and returns it as a string: tokens of
	// a key strictly increase, and because they follow the server's clock
	// they keep increasing across a failover (or a restart without
	// persistence) that lost the counter's last writes, unless the new
	// master's clock is behind the old one's by more than the failover
	// took. Lua numbers are doubles: exact up to 2^53 microseconds (the
	// year 2255).
	luaNextToken = `
local function nextToken(f)
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local n = tonumber(redis.call('GET', f) or '0') + 1
  if us > n then n = us end
  local s = string.format('%d', n)
  redis.call('SET', f, s)
  return s
end
`
	luaReader = `
local function reader(r, p)
  local all = redis.call('ZRANGE', r, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, #p) == p then return all[i], tonumber(all[i + 1]) end
  end
  return nil
end
`
	luaNonceOf = `
local function nonceOf(e) return string.match(e, '^%d+:(%x+):') end
`
	luaExpireReaders = `
local function expireReaders(r)
  local last = redis.call('ZRANGE', r, -1, -1, 'WITHSCORES')
  if #last > 0 then redis.call('PEXPIREAT', r, last[2]) end
end
`
)

// scripts holds the driver's scripts (SHA1 computed once per connection).
type scripts struct {
	acquire, acquireShared, release, releaseNonce, refresh, holder, breakLock *redis.Script
	createGroup, deleteGroup, join, leave, update, members                    *redis.Script
}

func newScripts() *scripts {
	return &scripts{
		// KEYS: lock, fence, readers. ARGV: nonce, member, ttl ms, channel.
		// -> {1, token} acquired (also on a retry of the same request),
		//    {0, ms} held by someone else, for ms more (-1: no TTL).
		acquire: redis.NewScript(luaNow + luaNextToken + `
local v = redis.call('GET', KEYS[1])
if v then
  local t, n = string.match(v, '^(%d+):(%x+):')
  if n == ARGV[1] then return {1, t} end
  return {0, redis.call('PTTL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local n = now()
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', n)
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #first > 0 then return {0, tonumber(first[2]) - n} end
end
local t = nextToken(KEYS[2])
redis.call('SET', KEYS[1], t .. ':' .. ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], 'A')
return {1, t}
`),
		// KEYS: lock, fence, readers. ARGV: nonce, member, ttl ms, channel.
		// Replies as acquire.
		acquireShared: redis.NewScript(luaNow + luaNextToken + luaNonceOf + luaExpireReaders + `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local n = now()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', n)
local all = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #all do
  if nonceOf(all[i]) == ARGV[1] then return {1, string.match(all[i], '^(%d+):')} end
end
local t = nextToken(KEYS[2])
redis.call('ZADD', KEYS[3], n + tonumber(ARGV[3]), t .. ':' .. ARGV[1] .. ':' .. ARGV[2])
expireReaders(KEYS[3])
redis.call('PUBLISH', ARGV[4], 'S')
return {1, t}
`),
		// KEYS: lock, readers. ARGV: "TOKEN:NONCE:" (or "TOKEN:"), channel.
		// -> 1 released, 0 not held.
		release: redis.NewScript(luaNow + luaReader + `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'R')
  return 1
end
local e, score = reader(KEYS[2], ARGV[1])
if not e then return 0 end
local live = score > now()
redis.call('ZREM', KEYS[2], e)
redis.call('PUBLISH', ARGV[2], 'R')
if live then return 1 end
return 0
`),
		// KEYS: lock, readers. ARGV: nonce, channel. Releases a grant whose
		// acquire reply was lost. -> 1 released, 0 not held.
		releaseNonce: redis.NewScript(luaNonceOf + `
local v = redis.call('GET', KEYS[1])
if v and nonceOf(v) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'R')
  return 1
end
local all = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #all do
  if nonceOf(all[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[2], all[i])
    redis.call('PUBLISH', ARGV[2], 'R')
    return 1
  end
end
return 0
`),
		// KEYS: lock, readers. ARGV: "TOKEN:NONCE:" (or "TOKEN:"), ttl ms.
		// -> 1 extended, 0 not held.
		refresh: redis.NewScript(luaNow + luaReader + luaExpireReaders + `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
local e, score = reader(KEYS[2], ARGV[1])
if not e then return 0 end
local n = now()
if score <= n then
  redis.call('ZREM', KEYS[2], e)
  return 0
end
redis.call('ZADD', KEYS[2], n + tonumber(ARGV[2]), e)
expireReaders(KEYS[2])
return 1
`),
		// KEYS: lock, readers. -> {} free, {value, ms left} held (by the
		// reader whose grant expires first, when shared).
		holder: redis.NewScript(luaNow + `
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1])} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {} end
local n = now()
local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. n, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 then return {} end
return {first[1], tonumber(first[2]) - n}
`),
		// KEYS: lock, readers. ARGV: channel. -> 1 broken, 0 free.
		breakLock: redis.NewScript(`
if redis.call('DEL', KEYS[1], KEYS[2]) > 0 then
  redis.call('PUBLISH', ARGV[1], 'B')
  return 1
end
return 0
`),
		// KEYS: groups, group. ARGV: group ID, nonce.
		// -> 1 created (also on a retry), 0 exists.
		createGroup: redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
  return 0
end
redis.call('HSET', KEYS[2], 'v', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`),
		// KEYS: groups, group. ARGV: group ID, session prefix, channel.
		// -> 1 deleted, -1 no group, -3 live members left.
		deleteGroup: redis.NewScript(luaPrune + `
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local minp, live = prune(KEYS[2], ARGV[2], ARGV[3])
if #live > 0 then return -3 end
local ver = redis.call('HINCRBY', KEYS[2], 'v', 1)
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], fmt(ver) .. '|D')
return 1
`),
		// KEYS: group, own liveness key. ARGV: session prefix, channel,
		// member, record. -> 1 joined (also on a retry), -1 no group,
		// -2 joined already (alive), -4 own liveness key gone.
		join: redis.NewScript(luaPrune + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -4 end
local f = 'm:' .. ARGV[3]
local old = redis.call('HGET', KEYS[1], f)
if old then
  if string.sub(old, 33, 64) == string.sub(ARGV[4], 33, 64) then return 1 end
  if redis.call('EXISTS', ARGV[1] .. string.sub(old, 1, 32)) == 1 then return -2 end
  redis.call('HDEL', KEYS[1], f)
  left(KEYS[1], ARGV[2], f, old)
end
redis.call('HSET', KEYS[1], f, ARGV[4])
local ver = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', ARGV[2], fmt(ver) .. '|J' .. fmt(#ARGV[3]) .. ':' .. ARGV[3] .. ARGV[4])
return 1
`),
		// KEYS: group. ARGV: channel, member. -> 1 left, -1 no group,
		// -2 not a member.
		leave: redis.NewScript(luaPrune + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local f = 'm:' .. ARGV[2]
local old = redis.call('HGET', KEYS[1], f)
if not old then return -2 end
redis.call('HDEL', KEYS[1], f)
left(KEYS[1], ARGV[1], f, old)
return 1
`),
		// KEYS: group. ARGV: channel, member, updated stamp, capabilities.
		// -> 1 updated, -1 no group, -2 not a member.
		update: redis.NewScript(luaPrune + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local f = 'm:' .. ARGV[2]
local old = redis.call('HGET', KEYS[1], f)
if not old then return -2 end
local rec = string.sub(old, 1, 80) .. ARGV[3] .. ARGV[4]
redis.call('HSET', KEYS[1], f, rec)
local ver = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', ARGV[1], fmt(ver) .. '|U' .. fmt(#ARGV[2]) .. ':' .. ARGV[2] .. rec)
return 1
`),
		// KEYS: group. ARGV: session prefix, channel, "1" to list.
		// Prunes dead members. -> -1 no group, else {version, min pttl}
		// or {version, min pttl, {field, record, ...}}.
		members: redis.NewScript(luaPrune + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local minp, live = prune(KEYS[1], ARGV[1], ARGV[2])
local ver = redis.call('HGET', KEYS[1], 'v')
if ARGV[3] == '1' then return {ver, minp, live} end
return {ver, minp}
`),
	}
}

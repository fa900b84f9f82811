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
	// The wait queue of a lock: q scores each queued waiter's ID by its
	// arrival (the server's TIME in microseconds, kept strictly
	// increasing), w by its expiry (server ms). enqueue adds or refreshes
	// a waiter, at pos when it knows its place (a named waiter that lost
	// the race, an entry that expired while its waiter was paused), else
	// at its current place or the back; it returns the place. Both keys
	// expire with their last entry. nextWaiter removes up to 8 expired
	// entries, then pops the first live waiter and returns the suffix of
	// the release message: ">ID" naming it, or "" when nobody is queued
	// or the first entry is dead beyond the sweep (then every waiter
	// tries, as before queues).
	luaQueue = `
local function enqueue(q, w, id, pos, ttl, n)
  local s = tonumber(pos)
  if not s or s <= 0 then s = tonumber(redis.call('ZSCORE', q, id)) end
  if not s then
    local t = redis.call('TIME')
    s = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')
    if #last > 0 and tonumber(last[2]) >= s then s = tonumber(last[2]) + 1 end
  end
  redis.call('ZADD', q, s, id)
  redis.call('ZADD', w, n + tonumber(ttl), id)
  local last = redis.call('ZRANGE', w, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', w, last[2])
  redis.call('PEXPIREAT', q, last[2])
  return s
end
local function nextWaiter(q, w, n)
  if redis.call('EXISTS', q) == 0 then return '' end
  local dead = redis.call('ZRANGEBYSCORE', w, '-inf', n, 'LIMIT', 0, 8)
  for i = 1, #dead do
    redis.call('ZREM', q, dead[i])
    redis.call('ZREM', w, dead[i])
  end
  local head = redis.call('ZRANGE', q, 0, 0)
  if #head == 0 then return '' end
  local e = redis.call('ZSCORE', w, head[1])
  if not e or tonumber(e) <= n then return '' end
  redis.call('ZREM', q, head[1])
  redis.call('ZREM', w, head[1])
  return '>' .. head[1]
end
`
	// handoff is the suffix of the message of a released shared grant:
	// ">" (nobody named, nobody need try) while other shared grants are
	// live, else the next waiter's (nextWaiter).
	luaHandoff = `
local function handoff(r, q, w, n)
  if redis.call('ZCOUNT', r, '(' .. n, '+inf') > 0 then return '>' end
  return nextWaiter(q, w, n)
end
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
	acquireQueued, refreshWaiter, withdrawWaiter                              *redis.Script
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
		// KEYS: lock, fence, readers, queue, expiries. ARGV: nonce,
		// member, ttl ms, channel, waiter ID, place (0: none yet), entry
		// ttl ms. The acquire of a queued waiter: as acquire, and the
		// waiter's entry is removed when it acquires, added or refreshed
		// (kept at its place) when it does not.
		// -> {1, token} acquired, {0, ms, place} held for ms more.
		acquireQueued: redis.NewScript(luaNow + luaNextToken + luaQueue + `
local n = now()
local v = redis.call('GET', KEYS[1])
if v then
  local t, o = string.match(v, '^(%d+):(%x+):')
  if o == ARGV[1] then
    redis.call('ZREM', KEYS[4], ARGV[5])
    redis.call('ZREM', KEYS[5], ARGV[5])
    return {1, t}
  end
  local p = redis.call('PTTL', KEYS[1])
  return {0, p, enqueue(KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7], n)}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', n)
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #first > 0 then return {0, tonumber(first[2]) - n, enqueue(KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7], n)} end
end
local t = nextToken(KEYS[2])
redis.call('SET', KEYS[1], t .. ':' .. ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('ZREM', KEYS[5], ARGV[5])
redis.call('PUBLISH', ARGV[4], 'A')
return {1, t}
`),
		// KEYS: queue, expiries. ARGV: waiter ID, place, entry ttl ms.
		// Keeps a waiting waiter's entry alive (at its place). -> place.
		refreshWaiter: redis.NewScript(luaNow + luaQueue + `
return enqueue(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], now())
`),
		// KEYS: queue, expiries, lock, readers. ARGV: waiter ID, channel.
		// Removes the entry of a waiter that stops waiting. An entry
		// already gone while the lock is free means the waiter was named
		// by a release it will not use: the next waiter is named instead.
		// -> 1 removed, 0 gone.
		withdrawWaiter: redis.NewScript(luaNow + luaQueue + `
local n = now()
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('ZCOUNT', KEYS[4], '(' .. n, '+inf') > 0 then return 0 end
local named = nextWaiter(KEYS[1], KEYS[2], n)
if named ~= '' then redis.call('PUBLISH', ARGV[2], 'R' .. named) end
return 0
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
		// KEYS: lock, readers, queue, expiries. ARGV: "TOKEN:NONCE:" (or
		// "TOKEN:"), channel. The message names the next queued waiter
		// (luaHandoff). -> 1 released, 0 not held.
		release: redis.NewScript(luaNow + luaReader + luaQueue + luaHandoff + `
local n = now()
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'R' .. nextWaiter(KEYS[3], KEYS[4], n))
  return 1
end
local e, score = reader(KEYS[2], ARGV[1])
if not e then return 0 end
local live = score > n
redis.call('ZREM', KEYS[2], e)
redis.call('PUBLISH', ARGV[2], 'R' .. handoff(KEYS[2], KEYS[3], KEYS[4], n))
if live then return 1 end
return 0
`),
		// KEYS: lock, readers, queue, expiries. ARGV: nonce, channel.
		// Releases a grant whose acquire reply was lost. -> 1 released, 0
		// not held.
		releaseNonce: redis.NewScript(luaNow + luaNonceOf + luaQueue + luaHandoff + `
local n = now()
local v = redis.call('GET', KEYS[1])
if v and nonceOf(v) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'R' .. nextWaiter(KEYS[3], KEYS[4], n))
  return 1
end
local all = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #all do
  if nonceOf(all[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[2], all[i])
    redis.call('PUBLISH', ARGV[2], 'R' .. handoff(KEYS[2], KEYS[3], KEYS[4], n))
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
		// KEYS: lock, readers, queue, expiries. ARGV: channel. The message
		// names the next queued waiter. -> 1 broken, 0 free.
		breakLock: redis.NewScript(luaNow + luaQueue + `
local n = now()
if redis.call('DEL', KEYS[1], KEYS[2]) > 0 then
  redis.call('PUBLISH', ARGV[1], 'B' .. nextWaiter(KEYS[3], KEYS[4], n))
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

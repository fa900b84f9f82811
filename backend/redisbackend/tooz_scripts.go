package redisbackend

import "github.com/redis/go-redis/v9"

// The scripts of tooz mode. Group scripts do what tooz's own scripts and
// transactions do, in one step each; members whose liveness key is gone
// are pruned as tooz's get_members prunes them.
var (
	// KEYS: group, groups. ARGV: group. -> 1 created, 0 exists.
	toozCreateGroup = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], '` + toozCreated + `', '1')
return 1
`)
	// KEYS: group, groups, meta. ARGV: group, beat prefix. -> 1 deleted,
	// -1 no group, -3 live members left.
	toozDeleteGroup = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local dead = {}
for _, m in ipairs(redis.call('HKEYS', KEYS[1])) do
  if m ~= '` + toozCreated + `' and redis.call('EXISTS', ARGV[2] .. m) == 0 then dead[#dead + 1] = m end
end
for _, m in ipairs(dead) do redis.call('HDEL', KEYS[1], m) end
if redis.call('HLEN', KEYS[1]) > 1 then return -3 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3])
return 1
`)
	// KEYS: group, meta. ARGV: member, caps, meta. -> 1 joined, -1 no
	// group, -2 already a member.
	toozJoin = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -2 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
`)
	// KEYS: group, meta. ARGV: member. -> 1 left, -1 no group, -2 not a
	// member.
	toozLeave = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -2 end
return 1
`)
	// KEYS: group, meta. ARGV: member, caps, updated stamp, fresh meta.
	// -> 1, -1 no group, -2 not a member.
	toozUpdate = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local meta = redis.call('HGET', KEYS[2], ARGV[1])
if meta then meta = string.sub(meta, 1, 48) .. ARGV[3] else meta = ARGV[4] end
redis.call('HSET', KEYS[2], ARGV[1], meta)
return 1
`)
	// KEYS: group, meta. ARGV: beat prefix, own member, 28 random hex
	// digits, now stamp. -> -1 no group, else the live members as a flat
	// member/capabilities/meta list; the others are deleted from the
	// group (never the caller, as tooz does). A live member without
	// baton's record (a tooz member) gets one: a new incarnation, first
	// seen now.
	toozMembers = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local all = redis.call('HGETALL', KEYS[1])
local live, dead, present = {}, {}, {}
local n = 0
for i = 1, #all, 2 do
  local m = all[i]
  if m ~= '` + toozCreated + `' then
    if m == ARGV[2] or redis.call('EXISTS', ARGV[1] .. m) == 1 then
      present[m] = true
      local meta = redis.call('HGET', KEYS[2], m)
      if not meta then
        n = n + 1
        meta = ARGV[3] .. string.format('%04x', n % 65536) .. ARGV[4] .. ARGV[4]
        redis.call('HSET', KEYS[2], m, meta)
      end
      live[#live + 1] = m
      live[#live + 1] = all[i + 1]
      live[#live + 1] = meta
    else
      dead[#dead + 1] = m
    end
  end
end
for _, m in ipairs(dead) do redis.call('HDEL', KEYS[1], m) end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not present[m] then redis.call('HDEL', KEYS[2], m) end
end
return live
`)
	// KEYS: lock, fence. ARGV: nonce, member, ttl ms. -> {1, token}
	// acquired (also on a retry of the same request), {0, ms} held.
	// The key is SET NX PX as redis-py's Lock sets it; its value is
	// baton's "TOKEN:NONCE:MEMBER" (redis-py compares it with its own
	// token only, never parses it).
	toozAcquire = redis.NewScript(luaNow + luaNextToken + `
local v = redis.call('GET', KEYS[1])
if v then
  local t, n = string.match(v, '^(%d+):(%x+):')
  if n == ARGV[1] then return {1, t} end
  return {0, redis.call('PTTL', KEYS[1])}
end
local t = nextToken(KEYS[2])
redis.call('SET', KEYS[1], t .. ':' .. ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return {1, t}
`)
	// KEYS: lock. ARGV: "TOKEN:NONCE:". -> 1 released, 0 not held.
	toozRelease = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
	// KEYS: lock. ARGV: "TOKEN:NONCE:", ttl ms. -> 1 refreshed, 0 not held.
	toozRefresh = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)
	// KEYS: lock. ARGV: nonce. Deletes the lock if this request took it.
	toozReleaseNonce = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^%d+:(%x+):') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`)
)

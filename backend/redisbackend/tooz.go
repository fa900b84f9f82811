package redisbackend

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: the connection reads and writes the layout of tooz's Redis
// driver (tooz/drivers/redis.py) and redis-py's Lock, so that baton and
// tooz processes share groups, members, capabilities, liveness, leaders
// and locks on one server. See the "compat=tooz" section of doc.go.

// toozNamespace is tooz's default namespace (DEFAULT_NAMESPACE).
const toozNamespace = "_tooz"

// toozCreated is the field tooz keeps in every group hash so that an empty
// group still exists (GROUP_EXISTS), with value "1".
const toozCreated = "__created__"

// toozAlive is the value of a member's liveness key (STILL_ALIVE).
const toozAlive = "Not dead!"

// Values of the tooz_lock_key option: how tooz builds the key of a lock.
const (
	// lockKeyBytes: tooz before 9.0 on Python 3 formats the bytes of the
	// namespace and of the name with str(), so the key of lock NAME is
	// "b'_tooz'_b'NAME'_lock" (Python's bytes repr). OpenStack passes
	// bytes names, as tooz documents.
	lockKeyBytes = "bytes"
	// lockKeyStr: tooz before 9.0 given a str name: "b'_tooz'_NAME_lock".
	lockKeyStr = "str"
	// lockKeyPlain: tooz 9.0 and later: "_tooz_NAME_lock".
	lockKeyPlain = "plain"
)

// toozEmptyCaps is msgpack's encoding of b"", tooz's default capabilities.
// Baton's empty capabilities are stored as it, and read back as empty.
var toozEmptyCaps = string([]byte{0xc4, 0x00})

// toozKeys names tooz's keys in one namespace.
type toozKeys struct {
	ns      string
	lockFmt string
}

func (k toozKeys) groups() string            { return k.ns + "_groups" }
func (k toozKeys) group(g string) string     { return k.ns + "_group:" + g }
func (k toozKeys) beatPrefix() string        { return k.ns + "_beats:" }
func (k toozKeys) beat(member string) string { return k.beatPrefix() + member }

// lock returns the key of tooz's lock name; leader tells a leader lock,
// whose name tooz always builds as bytes ("leader_of_" + group).
func (k toozKeys) lock(name string, leader bool) string {
	switch {
	case k.lockFmt == lockKeyPlain:
		return k.ns + "_" + name + "_lock"
	case k.lockFmt == lockKeyStr && !leader:
		return pyBytesRepr(k.ns) + "_" + name + "_lock"
	default:
		return pyBytesRepr(k.ns) + "_" + pyBytesRepr(name) + "_lock"
	}
}

// fence is baton's own fencing counter of a lock key; tooz never reads
// it. Its name cannot be a tooz key: tooz's keys start with NS_groups,
// NS_group:, NS_beats: or end with _lock.
func (k toozKeys) fence(lockKey string) string { return k.ns + "_baton_fence:" + lockKey + ":" }

// meta is baton's own hash of a group's member records: member ID ->
// incarnation (32 hex digits), joined and updated times (16 hex digits of
// Unix milliseconds each). tooz keeps neither; tooz never reads it.
func (k toozKeys) meta(group string) string { return k.ns + "_baton_members:" + group + ":" }

// newMeta is the record of a new incarnation joined at now.
func newMeta(now time.Time) string { return newID() + stamp(now) + stamp(now) }

// parseMeta fills a member's incarnation and times from its record.
func parseMeta(m *driver.Member, meta string) {
	if len(meta) != idLen+2*stampLen {
		return
	}
	m.Incarnation = meta[:idLen]
	if j, err := strconv.ParseUint(meta[idLen:idLen+stampLen], 16, 64); err == nil {
		m.JoinedAt = time.UnixMilli(int64(j))
	}
	if u, err := strconv.ParseUint(meta[idLen+stampLen:], 16, 64); err == nil {
		m.UpdatedAt = time.UnixMilli(int64(u))
	}
}

// toozLockKey maps a backend lock key to tooz's lock key: user locks
// ("l/NAME") keep their name, leadership of GROUP ("e/GROUP") is tooz's
// leader lock "leader_of_GROUP".
func (k toozKeys) toozLockKey(key string) (string, error) {
	switch {
	case strings.HasPrefix(key, "l/"):
		return k.lock(key[2:], false), nil
	case strings.HasPrefix(key, "e/"):
		return k.lock("leader_of_"+key[2:], true), nil
	}
	return "", driver.Errorf(driver.CodeInvalidArgument, "lock key %q has no tooz equivalent", key)
}

// pyBytesRepr returns Python 3's repr of the bytes of s: b'...' with
// \\, \t, \n, \r, the quote and non-printable bytes escaped, in double
// quotes when s has a single quote and no double quote.
func pyBytesRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 3)
	b.WriteByte('b')
	b.WriteByte(quote)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == quote || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

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

// Compile-time checks: tooz mode has no pushed watches, no native waits
// and no shared locks (tooz has none of them on Redis).
var (
	_ driver.Conn        = (*toozConn)(nil)
	_ driver.LockBreaker = (*toozConn)(nil)
)

// toozConn is a connection in compat=tooz mode. It is safe for concurrent
// use.
type toozConn struct {
	c      *conn // the client, retries and classification
	k      toozKeys
	member string
	beat   string

	mu     sync.Mutex
	closed bool
	held   map[string]map[uint64]string // tooz lock key -> token -> nonce
	joined map[string]struct{}
}

// toozSettings adjusts settings for tooz mode: tooz's default namespace.
func toozSettings(cfg *driver.Config, s *settings) {
	if !cfg.Options.IsSet("namespace") {
		s.namespace = toozNamespace
	}
}

// openTooz connects like open, then writes this member's liveness key as
// tooz's heartbeat does.
func openTooz(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	toozSettings(cfg, s)
	if cfg.MemberID == toozCreated {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "member ID %q is reserved by tooz's layout", toozCreated)
	}
	unlog := clientLog.add(cfg.Logger)
	rdb, d, err := s.newClient()
	if err != nil {
		unlog()
		return nil, err
	}
	base := &conn{s: s, rdb: rdb, log: cfg.Logger, unlog: unlog, member: cfg.MemberID,
		held: map[string]map[uint64]string{}, joined: map[string]struct{}{}}
	base.ctx, base.cancel = context.WithCancel(context.Background())
	t := &toozConn{
		c: base, k: toozKeys{ns: s.namespace, lockFmt: cfg.Options.String("tooz_lock_key")},
		member: cfg.MemberID, held: map[string]map[uint64]string{}, joined: map[string]struct{}{},
	}
	t.beat = t.k.beat(t.member)
	fail := func(err error) (driver.Conn, error) {
		base.cancel()
		_ = rdb.Close()
		unlog()
		return nil, err
	}
	if s.master != "" && s.ssl != s.sentinelSSL {
		if err := base.discoverSentinels(ctx, d); err != nil {
			return fail(err)
		}
	}
	if err := base.checkServer(ctx); err != nil {
		return fail(err)
	}
	if _, err := base.do(ctx, func(ctx context.Context) error {
		return rdb.Set(ctx, t.beat, toozAlive, s.membershipTimeout).Err()
	}); err != nil {
		return fail(err)
	}
	return t, nil
}

// Session: tooz's liveness key NS_beats:MEMBER, membership_timeout long,
// renewed every third of it (tooz's heart beats every half of
// min(lock_timeout, membership_timeout)).
func (t *toozConn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: t.c.s.membershipTimeout,
		RenewInterval: t.c.s.membershipTimeout / 3}
}

// Renew rewrites the liveness key as tooz's heartbeat does (PSETEX), but
// only while it exists (SET XX): a key that is gone means other members
// may have pruned this member, so the session is lost.
func (t *toozConn) Renew(ctx context.Context) error {
	var ok bool
	_, err := t.c.do(ctx, func(ctx context.Context) error {
		res, err := t.c.rdb.SetArgs(ctx, t.beat, toozAlive, redis.SetArgs{Mode: "XX", TTL: t.c.s.membershipTimeout}).Result()
		if err == redis.Nil {
			ok = false
			return nil
		}
		ok = res == "OK"
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return driver.Errorf(driver.CodeLost, "liveness key %q of member %q is gone (expired, deleted, or lost by a failover or restart)", t.beat, t.member)
	}
	return nil
}

// Close releases this connection's locks, leaves its groups and deletes
// its liveness key, as tooz's stop does.
func (t *toozConn) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	type hold struct {
		key   string
		token uint64
		nonce string
	}
	var held []hold
	for k, ts := range t.held {
		for tok, n := range ts {
			held = append(held, hold{k, tok, n})
		}
	}
	var joined []string
	for g := range t.joined {
		joined = append(joined, g)
	}
	t.mu.Unlock()
	var errs []error
	for _, h := range held {
		if _, _, err := t.c.evalInt(ctx, toozRelease, []string{h.key}, tokenPrefix(h.token)+h.nonce+":"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, g := range joined {
		if _, _, err := t.c.evalInt(ctx, toozLeave, []string{t.k.group(g), t.k.meta(g)}, t.member); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := t.c.do(ctx, func(ctx context.Context) error { return t.c.rdb.Del(ctx, t.beat).Err() }); err != nil {
		errs = append(errs, err)
	}
	t.c.mu.Lock()
	t.c.closed = true
	t.c.mu.Unlock()
	t.c.cancel()
	t.c.wg.Wait()
	if err := t.c.rdb.Close(); err != nil {
		errs = append(errs, classify(err))
	}
	t.c.unlog()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// encodeCaps stores empty capabilities as tooz's default, msgpack b"".
func encodeCaps(caps []byte) string {
	if len(caps) == 0 {
		return toozEmptyCaps
	}
	return string(caps)
}

func decodeCaps(v string) []byte {
	if v == toozEmptyCaps || v == "" {
		return nil
	}
	return []byte(v)
}

// CreateGroup runs tooz's create_group script.
func (t *toozConn) CreateGroup(ctx context.Context, group string) error {
	n, _, err := t.c.evalInt(ctx, toozCreateGroup, []string{t.k.group(group), t.k.groups()}, group)
	if err != nil {
		return err
	}
	if n == 0 {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", group)
	}
	return nil
}

// DeleteGroup prunes dead members, then deletes the group as tooz's
// delete_group script does when only its "__created__" field is left.
func (t *toozConn) DeleteGroup(ctx context.Context, group string) error {
	n, retried, err := t.c.evalInt(ctx, toozDeleteGroup, []string{t.k.group(group), t.k.groups(), t.k.meta(group)}, group, t.k.beatPrefix())
	if err != nil {
		return err
	}
	switch n {
	case -1:
		if retried {
			return nil
		}
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case -3:
		return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has live members", group)
	}
	return nil
}

// Groups lists tooz's set of groups.
func (t *toozConn) Groups(ctx context.Context) ([]string, error) {
	var gs []string
	_, err := t.c.do(ctx, func(ctx context.Context) error {
		var err error
		gs, err = t.c.rdb.SMembers(ctx, t.k.groups()).Result()
		return err
	})
	return gs, err
}

// Join adds the member's field (its capabilities, msgpack as tooz stores
// them) to the group hash.
func (t *toozConn) Join(ctx context.Context, group string, caps []byte) error {
	n, _, err := t.c.evalInt(ctx, toozJoin, []string{t.k.group(group), t.k.meta(group)}, t.member, encodeCaps(caps), newMeta(time.Now()))
	if err != nil {
		return err
	}
	switch n {
	case -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case -2:
		return driver.Errorf(driver.CodeMemberExists, "member %q has joined group %q already", t.member, group)
	}
	t.mu.Lock()
	t.joined[group] = struct{}{}
	t.mu.Unlock()
	return nil
}

// Leave deletes the member's field.
func (t *toozConn) Leave(ctx context.Context, group string) error {
	n, retried, err := t.c.evalInt(ctx, toozLeave, []string{t.k.group(group), t.k.meta(group)}, t.member)
	if err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.joined, group)
	t.mu.Unlock()
	switch {
	case n == 1 || retried:
		return nil
	case n == -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	return driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", t.member, group)
}

// UpdateCapabilities runs tooz's update_capabilities script.
func (t *toozConn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	now := time.Now()
	n, _, err := t.c.evalInt(ctx, toozUpdate, []string{t.k.group(group), t.k.meta(group)}, t.member, encodeCaps(caps), stamp(now), newMeta(now))
	if err != nil {
		return err
	}
	switch n {
	case -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case -2:
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", t.member, group)
	}
	return nil
}

// Members lists the live members as tooz's get_members does (a member is
// alive while its NS_beats:MEMBER key exists; the others are deleted from
// the group) with their capabilities. tooz keeps no incarnation and no
// times; they come from baton's own records (meta), which give a tooz
// member an incarnation and a joined time when a baton client first sees
// it (a tooz member that leaves and joins again between two listings
// keeps its incarnation, as tooz's own watchers miss it too).
func (t *toozConn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	res, _, err := t.c.eval(ctx, toozMembers, []string{t.k.group(group), t.k.meta(group)}, t.k.beatPrefix(), t.member, newID()[:idLen-4], stamp(time.Now()))
	if err != nil {
		return nil, err
	}
	if n, ok := res.(int64); ok && n == -1 {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	flat, ok := res.([]any)
	if !ok {
		return nil, driver.Errorf(driver.CodeInternal, "unexpected members reply %v", res)
	}
	ms := make([]driver.Member, 0, len(flat)/3)
	for i := 0; i+2 < len(flat); i += 3 {
		id, _ := flat[i].(string)
		caps, _ := flat[i+1].(string)
		meta, _ := flat[i+2].(string)
		m := driver.Member{ID: id, Capabilities: decodeCaps(caps)}
		parseMeta(&m, meta)
		ms = append(ms, m)
	}
	return ms, nil
}

// lockTTL is the lease of a lock request: its TTL, else lock_timeout.
func (t *toozConn) lockTTL(req driver.LockRequest) time.Duration {
	if req.TTL > 0 {
		return req.TTL
	}
	return t.c.s.lockTimeout
}

// TryLock sets tooz's lock key as redis-py's Lock does (SET NX PX), with
// baton's fencing token from a counter of baton's own next to it.
func (t *toozConn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	key, err := t.k.toozLockKey(req.Key)
	if err != nil {
		return driver.Lease{}, false, err
	}
	ttl := t.lockTTL(req)
	nonce := newNonce()
	res, _, err := t.c.eval(ctx, toozAcquire, []string{key, t.k.fence(key)}, nonce, req.Member, ms(ttl))
	if err != nil {
		// The script may have run and its reply been lost.
		t.c.goBackground(func(bctx context.Context) {
			bctx, cancel := context.WithTimeout(bctx, t.c.s.socketTimeout)
			defer cancel()
			_, _, _ = t.c.eval(bctx, toozReleaseNonce, []string{key}, nonce)
		})
		return driver.Lease{}, false, err
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 2 {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "unexpected acquire reply %v", res)
	}
	if got, _ := arr[0].(int64); got == 0 {
		return driver.Lease{}, false, nil
	}
	s, _ := arr[1].(string)
	v, err := parseLockValue(s + ":" + nonce + ":")
	if err != nil || v.token == 0 {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "unexpected token %q", s)
	}
	t.mu.Lock()
	if t.held[key] == nil {
		t.held[key] = map[uint64]string{}
	}
	t.held[key][v.token] = nonce
	t.mu.Unlock()
	return driver.Lease{Token: v.token, TTL: ttl}, true, nil
}

// prefix returns "TOKEN:NONCE:" of a grant of this connection, else
// "TOKEN:".
func (t *toozConn) prefix(key string, token uint64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.held[key][token]; ok {
		return tokenPrefix(token) + n + ":"
	}
	return tokenPrefix(token)
}

func (t *toozConn) forget(key string, token uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.held[key], token)
	if len(t.held[key]) == 0 {
		delete(t.held, key)
	}
}

// Unlock deletes the lock key while it holds this grant (redis-py's
// release script, comparing baton's value).
func (t *toozConn) Unlock(ctx context.Context, key string, token uint64) error {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return err
	}
	n, retried, err := t.c.evalInt(ctx, toozRelease, []string{k}, t.prefix(k, token))
	if err != nil {
		return err
	}
	t.forget(k, token)
	if n == 0 && !retried {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is not held with token %d", key, token)
	}
	return nil
}

// RefreshLock sets the lock key's TTL while it holds this grant
// (redis-py's reacquire, which tooz's heartbeat runs).
func (t *toozConn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return err
	}
	n, _, err := t.c.evalInt(ctx, toozRefresh, []string{k}, t.prefix(k, token), ms(ttl))
	if err != nil {
		return err
	}
	if n == 0 {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is no longer held with token %d (expired, broken or lost by a failover)", key, token)
	}
	return nil
}

// Holder reads the lock key. A baton holder is named with its token; a
// tooz holder's value is redis-py's anonymous token, so it is reported
// with an empty member ID and token 0 (tooz's Redis driver cannot name
// it either: it has no get_leader).
func (t *toozConn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return driver.Holder{}, err
	}
	var v string
	_, err = t.c.do(ctx, func(ctx context.Context) error {
		var err error
		v, err = t.c.rdb.Get(ctx, k).Result()
		if err == redis.Nil {
			v, err = "", nil
		}
		return err
	})
	if err != nil {
		return driver.Holder{}, err
	}
	if v == "" {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	lv, err := parseLockValue(v)
	if err != nil {
		return driver.Holder{}, nil
	}
	return driver.Holder{Member: lv.member, Token: lv.token}, nil
}

// BreakLock deletes the lock key whoever holds it (tooz's break_).
func (t *toozConn) BreakLock(ctx context.Context, key string) (bool, error) {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return false, err
	}
	var n int64
	_, err = t.c.do(ctx, func(ctx context.Context) error {
		var err error
		n, err = t.c.rdb.Del(ctx, k).Result()
		return err
	})
	return n == 1, err
}

// toozCompatDoc is the compat option's sentence for this driver.
const toozCompatDoc = "With tooz, groups, members, capabilities, liveness keys (NS_beats:MEMBER), leader locks (leader_of_GROUP) and locks (redis-py's Lock keys, see tooz_lock_key) are shared with tooz processes; " +
	"the namespace defaults to tooz's _tooz. Given up: pushed watches and lock waits (polled), shared locks, member incarnations and join times; " +
	"fencing tokens order baton's holders only (partial), and a tooz holder is reported without a member ID."

// toozCharacteristics are tooz's for Redis plus what the shared layout
// allows: TTL liveness, polled watches, partial fencing, no shared locks.
func toozCharacteristics() driver.Characteristics {
	return driver.Characteristics{
		DistributedAcrossThreads:   true,
		DistributedAcrossProcesses: true,
		DistributedAcrossHosts:     true,
		Causal:                     true,
		Liveness:                   driver.LivenessTTL,
		Watch:                      driver.WatchPoll,
		Fencing:                    driver.FencingPartial,
	}
}

package memcachedbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: the connection reads and writes the layout of tooz's
// memcached driver (tooz/drivers/memcached.py), so that baton and tooz
// processes share groups, members, capabilities, liveness, leaders and
// locks on one server. See the "compat=tooz" section of doc.go.

// toozUserPrefix is the backend's prefix of user lock keys.
const toozUserPrefix = "l/"

// tooz's keys and values (MemcachedDriver and MemcachedLock).
const (
	toozGroupList    = "_TOOZ_GROUP_LIST"
	toozGroupPrefix  = "_TOOZ_GROUP_"
	toozMemberPrefix = "_TOOZ_MEMBER_"
	toozLockPrefix   = "__TOOZ_LOCK_"
	toozLeaderPrefix = "_TOOZ_GROUP_LEADER_"
	toozAlive        = "It's alive!"
	// tooz's client flags: 1 raw bytes, 2 msgpack (oslo's msgpackutils).
	flagRaw     = 1
	flagMsgpack = 2
	// toozCapsField is the field of a member's dict that tooz reads;
	// toozBatonField is baton's (incarnation and times), which tooz keeps
	// untouched when it updates capabilities and never reads.
	toozCapsField  = "capabilities"
	toozBatonField = "baton"
	// toozBatonIDField holds the real ID of a member whose ID tooz's
	// client cannot put in a key (see memberName).
	toozBatonIDField = "baton_id"
)

// toozConn is a connection in compat=tooz mode. It is safe for concurrent
// use.
type toozConn struct {
	c      *conn  // the clients, the meta pool and baton's keyspace
	self   string // this member's ID in tooz's layout (memberName)
	prefix string // of tooz's keys: "" (tooz's layout) or "NAMESPACE:"
	addr   string
	beat   string

	mu     sync.Mutex
	closed bool
	grants map[grantID]*toozGrant
	joined map[string]struct{}
}

// toozGrant is a lock this connection holds: the lock item's CAS value on
// the server run it was set on.
type toozGrant struct {
	run runID
	cas uint64
}

var (
	_ driver.Conn        = (*toozConn)(nil)
	_ driver.LockBreaker = (*toozConn)(nil)
	_ driver.LockWaiter  = (*toozConn)(nil)
)

// toozKey checks a key against memcached's rules (tooz does not: a name
// with a space breaks tooz's request).
func toozKey(k string) (string, error) {
	if len(k) > 250 {
		return "", driver.Errorf(driver.CodeInvalidArgument, "with compat=tooz, key %q is longer than memcached's 250 bytes (tooz's keys embed names verbatim)", k)
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return "", driver.Errorf(driver.CodeInvalidArgument, "with compat=tooz, key %q has a space or a control character, which memcached refuses (tooz's keys embed names verbatim)", k)
		}
	}
	return k, nil
}

func (t *toozConn) groupList() string         { return t.prefix + toozGroupList }
func (t *toozConn) group(g string) string     { return t.prefix + toozGroupPrefix + keyName(g) }
func (t *toozConn) memberKey(m string) string { return t.prefix + toozMemberPrefix + m }

// lockKey maps a backend lock key to tooz's: user locks ("l/NAME") to
// __TOOZ_LOCK_NAME, leadership of GROUP ("e/GROUP") to tooz's leader lock
// __TOOZ_LOCK__TOOZ_GROUP_LEADER_GROUP.
func (t *toozConn) lockKey(key string) (string, bool, error) {
	switch {
	case strings.HasPrefix(key, toozUserPrefix):
		k, err := toozKey(t.prefix + toozLockPrefix + keyName(key[len(toozUserPrefix):]))
		return k, false, err
	case strings.HasPrefix(key, leaderPrefix):
		k, err := toozKey(t.prefix + toozLockPrefix + toozLeaderPrefix + keyName(key[len(leaderPrefix):]))
		return k, true, err
	}
	return "", false, driver.Errorf(driver.CodeInvalidArgument, "lock key %q has no tooz equivalent", key)
}

// toozCheck refuses what tooz's layout cannot have: several servers.
func toozCheck(s *settings) error {
	if len(s.servers) != 1 {
		return driver.Errorf(driver.CodeInvalidArgument, "compat=tooz takes one server (tooz's memcached driver talks to one); %d given", len(s.servers))
	}
	return nil
}

// openTooz connects to the one server tooz talks to and writes this
// member's liveness key as tooz's heartbeat does.
func openTooz(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	if err := toozCheck(s); err != nil {
		return nil, err
	}
	sl := new(memcache.ServerList)
	if err := sl.SetServers(s.servers...); err != nil {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "servers: %w", err)
	}
	mc := memcache.NewFromSelector(sl)
	mc.Timeout = s.socketTimeout
	mc.MaxIdleConns = s.maxPool
	if mc.MaxIdleConns == 0 {
		mc.MaxIdleConns = defaultIdle
	}
	mc.DialContext = (&net.Dialer{Timeout: s.socketTimeout}).DialContext
	clock := cfg.Clock
	if clock == nil {
		clock = driver.RealClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	base := &conn{s: s, ks: keyspace{ns: s.namespace}, mc: mc, sl: sl, meta: newMetaPool(s.socketTimeout, s.maxPool),
		member: cfg.MemberID, clock: clock, log: log}
	t := &toozConn{c: base, addr: s.servers[0], grants: map[grantID]*toozGrant{}, joined: map[string]struct{}{}}
	if cfg.Options.IsSet("namespace") {
		t.prefix = s.namespace + ":"
	}
	fail := func(err error) (driver.Conn, error) {
		base.meta.close()
		_ = mc.Close()
		return nil, classify(fmt.Errorf("open %s: %w", cfg.Redacted, err))
	}
	t.self = memberName(cfg.MemberID)
	if t.beat, err = toozKey(t.memberKey(t.self)); err != nil {
		return fail(err)
	}
	m, _, err := base.meta.get(ctx, t.addr)
	if err != nil {
		return fail(err)
	}
	base.meta.put(t.addr, m, true)
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := mc.Set(&memcache.Item{Key: t.beat, Value: []byte(toozAlive), Flags: flagRaw, Expiration: keyTTL(s.membershipTimeout)}); err != nil {
		return fail(err)
	}
	return t, nil
}

// Session: tooz's liveness key _TOOZ_MEMBER_MEMBER, membership_timeout
// long, renewed every third of it.
func (t *toozConn) Session() driver.SessionInfo {
	return t.c.Session()
}

// Renew touches the liveness key. A missing key means the member was
// judged dead (tooz prunes it from groups at its next listing): the
// session is lost.
func (t *toozConn) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return classify(err)
	}
	err := t.c.mc.Touch(t.beat, keyTTL(t.c.s.membershipTimeout))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return driver.Errorf(driver.CodeLost, "liveness key %q is gone (expired, evicted, or the server restarted empty): %w", t.beat, errEvicted)
	}
	return classify(err)
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
	grants := make(map[grantID]*toozGrant, len(t.grants))
	for id, g := range t.grants {
		grants[id] = g
	}
	joined := make([]string, 0, len(t.joined))
	for g := range t.joined {
		joined = append(joined, g)
	}
	t.mu.Unlock()
	var errs []error
	for id, g := range grants {
		if _, err := t.c.compareAndDelete(ctx, t.addr, g.run, id.key, g.cas); err != nil {
			errs = append(errs, err)
		}
	}
	for _, g := range joined {
		if err := t.Leave(ctx, g); err != nil {
			if code, _ := driver.CodeOf(err); code != driver.CodeNotMember && code != driver.CodeGroupNotFound {
				errs = append(errs, err)
			}
		}
	}
	if err := t.c.mc.Delete(t.beat); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		errs = append(errs, classify(err))
	}
	t.c.meta.close()
	_ = t.c.mc.Close()
	return errors.Join(errs...)
}

// getGroup reads a group value with its CAS value.
func (t *toozConn) getGroup(ctx context.Context, g string) (*memcache.Item, []toozMember, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, classify(err)
	}
	key, err := toozKey(t.group(g))
	if err != nil {
		return nil, nil, err
	}
	it, err := t.c.mc.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil, groupNotFound(g)
	}
	if err != nil {
		return nil, nil, classify(fmt.Errorf("group %q: %w", g, err))
	}
	if it.Flags != flagMsgpack {
		return nil, nil, driver.Errorf(driver.CodeInternal, "group %q: value with flags %d, not tooz's msgpack", g, it.Flags)
	}
	ms, isNil, err := decodeGroupValue(it.Value)
	if err != nil {
		return nil, nil, driver.Errorf(driver.CodeInternal, "group %q: %v", g, err)
	}
	if isNil {
		return nil, nil, groupNotFound(g) // tooz is deleting it
	}
	return it, ms, nil
}

// updateGroup runs fn on the group value in a bounded gets/cas loop (tooz
// retries its own without bound; every writer compares, so tooz's loops
// and baton's interleave safely).
func (t *toozConn) updateGroup(ctx context.Context, g string, fn func(ms []toozMember) ([]toozMember, bool, error)) error {
	for range maxCASRetries {
		it, ms, err := t.getGroup(ctx, g)
		if err != nil {
			return err
		}
		ms, write, err := fn(ms)
		if err != nil || !write {
			return err
		}
		it.Value = encodeGroupValue(ms)
		it.Expiration = 0
		err = t.c.mc.CompareAndSwap(it)
		switch {
		case errors.Is(err, memcache.ErrCASConflict):
			continue
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCacheMiss):
			return groupNotFound(g)
		}
		return classify(err)
	}
	return classify(fmt.Errorf("group %q: %w", g, errContended))
}

// updateGroupList adds or removes g in tooz's group list (gets/cas, or
// add when the list does not exist), bounded.
func (t *toozConn) updateGroupList(ctx context.Context, g string, add bool) error {
	for range maxCASRetries {
		if err := ctx.Err(); err != nil {
			return classify(err)
		}
		it, err := t.c.mc.Get(t.groupList())
		if errors.Is(err, memcache.ErrCacheMiss) {
			if !add {
				return nil
			}
			err = t.c.mc.Add(&memcache.Item{Key: t.groupList(), Value: encodeGroupList([]listEntry{{g, true}}), Flags: flagMsgpack})
			if errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return classify(err)
		}
		if err != nil {
			return classify(err)
		}
		l, err := decodeGroupList(it.Value)
		if err != nil {
			return driver.Errorf(driver.CodeInternal, "group list: %v", err)
		}
		var out []listEntry
		found := false
		for _, e := range l {
			if e.id == g {
				found = true
				if !add {
					continue
				}
			}
			out = append(out, e)
		}
		if add == found {
			return nil
		}
		if add {
			out = append(out, listEntry{g, true})
		}
		it.Value = encodeGroupList(out)
		err = t.c.mc.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			continue
		}
		return classify(err)
	}
	return classify(fmt.Errorf("group list: %w", errContended))
}

// CreateGroup adds the group value {} and then the group to the list, as
// tooz's create_group does.
func (t *toozConn) CreateGroup(ctx context.Context, g string) error {
	key, err := toozKey(t.group(g))
	if err != nil {
		return err
	}
	err = t.c.mc.Add(&memcache.Item{Key: key, Value: encodeGroupValue(nil), Flags: flagMsgpack})
	if errors.Is(err, memcache.ErrNotStored) {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", g)
	}
	if err != nil {
		return classify(err)
	}
	return t.updateGroupList(ctx, g, true)
}

// DeleteGroup prunes dead members; when none is left it sets the value to
// nil (compared), deletes it and removes it from the list, as tooz's
// delete_group does.
func (t *toozConn) DeleteGroup(ctx context.Context, g string) error {
	for range maxCASRetries {
		it, ms, err := t.getGroup(ctx, g)
		if err != nil {
			return err
		}
		live, err := t.alive(ms)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has live members", g)
		}
		it.Value = []byte{msgpcode.Nil}
		err = t.c.mc.CompareAndSwap(it)
		switch {
		case errors.Is(err, memcache.ErrCASConflict):
			continue
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCacheMiss):
			return groupNotFound(g)
		case err != nil:
			return classify(err)
		}
		if err := t.c.mc.Delete(it.Key); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
			return classify(err)
		}
		return t.updateGroupList(ctx, g, false)
	}
	return classify(fmt.Errorf("group %q: %w", g, errContended))
}

// Groups returns tooz's group list as it is.
func (t *toozConn) Groups(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, classify(err)
	}
	it, err := t.c.mc.Get(t.groupList())
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
	}
	l, err := decodeGroupList(it.Value)
	if err != nil {
		return nil, driver.Errorf(driver.CodeInternal, "group list: %v", err)
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.id)
	}
	return out, nil
}

// batonRecord is baton's field of a member dict: its incarnation (32 hex
// digits) and its joined and updated times (16 hex digits of Unix
// milliseconds each), and "w" when the capabilities are wrapped (see
// toozCaps), as a msgpack str.
func batonRecord(inc string, joined, updated time.Time, wrapped bool) msgpack.RawMessage {
	s := fmt.Sprintf("%s%016x%016x", inc, uint64(joined.UnixMilli()), uint64(updated.UnixMilli()))
	if wrapped {
		s += "w"
	}
	b, _ := msgpack.Marshal(s)
	return b
}

func newIncarnation() string { return newNonce() + newNonce() }

// Join adds this member's dict {b"capabilities": caps, b"baton": record}
// to the group value.
func (t *toozConn) Join(ctx context.Context, g string, caps []byte) error {
	raw, wrapped := toozCaps(caps)
	now := t.c.now()
	err := t.updateGroup(ctx, g, func(ms []toozMember) ([]toozMember, bool, error) {
		for _, m := range ms {
			if m.id == t.self {
				return nil, false, driver.Errorf(driver.CodeMemberExists, "member %q has joined group %q already", t.c.member, g)
			}
		}
		m := toozMember{id: t.self, bin: true, fields: []mpField{
			{key: toozCapsField, bin: true, val: raw},
			{key: toozBatonField, bin: true, val: batonRecord(newIncarnation(), now, now, wrapped)},
		}}
		if t.self != t.c.member {
			id, _ := msgpack.Marshal(t.c.member)
			m.fields = append(m.fields, mpField{key: toozBatonIDField, bin: true, val: id})
		}
		return append(ms, m), true, nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.joined[g] = struct{}{}
	t.mu.Unlock()
	return nil
}

// Leave removes this member's dict.
func (t *toozConn) Leave(ctx context.Context, g string) error {
	err := t.updateGroup(ctx, g, func(ms []toozMember) ([]toozMember, bool, error) {
		for i, m := range ms {
			if m.id == t.self {
				return append(ms[:i:i], ms[i+1:]...), true, nil
			}
		}
		return nil, false, driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", t.c.member, g)
	})
	t.mu.Lock()
	delete(t.joined, g)
	t.mu.Unlock()
	return err
}

// UpdateCapabilities replaces this member's capabilities (and its
// updated time).
func (t *toozConn) UpdateCapabilities(ctx context.Context, g string, caps []byte) error {
	raw, wrapped := toozCaps(caps)
	now := t.c.now()
	return t.updateGroup(ctx, g, func(ms []toozMember) ([]toozMember, bool, error) {
		for i := range ms {
			if ms[i].id != t.self {
				continue
			}
			ms[i].set(toozCapsField, raw)
			inc, joined := newIncarnation(), now
			if m, _, ok := parseBaton(&ms[i]); ok {
				inc, joined = m.Incarnation, m.JoinedAt
			}
			ms[i].set(toozBatonField, batonRecord(inc, joined, now, wrapped))
			return ms, true, nil
		}
		return nil, false, driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", t.c.member, g)
	})
}

// parseBaton reads baton's record of a member.
func parseBaton(m *toozMember) (mem driver.Member, wrapped, ok bool) {
	raw, ok := m.field(toozBatonField)
	if !ok {
		return driver.Member{}, false, false
	}
	var s string
	if err := msgpack.Unmarshal(raw, &s); err != nil || len(s) != 64 && s[64:] != "w" {
		return driver.Member{}, false, false
	}
	j, err1 := strconv.ParseUint(s[32:48], 16, 64)
	u, err2 := strconv.ParseUint(s[48:64], 16, 64)
	if err1 != nil || err2 != nil {
		return driver.Member{}, false, false
	}
	return driver.Member{Incarnation: s[:32], JoinedAt: time.UnixMilli(int64(j)), UpdatedAt: time.UnixMilli(int64(u))}, len(s) == 65, true
}

// alive returns the members whose liveness key exists (and this member),
// as tooz's _get_members judges them, with one multi-get.
func (t *toozConn) alive(ms []toozMember) ([]toozMember, error) {
	keys := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.id != t.self {
			if k, err := toozKey(t.memberKey(m.id)); err == nil {
				keys = append(keys, k)
			}
		}
	}
	got := map[string]*memcache.Item{}
	if len(keys) > 0 {
		var err error
		if got, err = t.c.mc.GetMulti(keys); err != nil {
			return nil, classify(err)
		}
	}
	var live []toozMember
	for _, m := range ms {
		if it := got[t.memberKey(m.id)]; m.id == t.self || it != nil && len(it.Value) > 0 {
			live = append(live, m)
		}
	}
	return live, nil
}

// Members lists the live members, writing the group back (compared) when
// dead members were pruned, as tooz's get_members does, or when a member
// has no baton record yet (a tooz member: it gets a new incarnation,
// joined when first seen; tooz keeps the field when it updates
// capabilities and drops it when the member leaves and joins again).
func (t *toozConn) Members(ctx context.Context, g string) ([]driver.Member, error) {
	var out []driver.Member
	err := t.updateGroup(ctx, g, func(ms []toozMember) ([]toozMember, bool, error) {
		live, err := t.alive(ms)
		if err != nil {
			return nil, false, err
		}
		write := len(live) != len(ms)
		now := t.c.now()
		out = out[:0]
		for i := range live {
			m, wrapped, ok := parseBaton(&live[i])
			if !ok {
				m = driver.Member{Incarnation: newIncarnation(), JoinedAt: now, UpdatedAt: now}
				live[i].set(toozBatonField, batonRecord(m.Incarnation, now, now, false))
				write = true
			}
			m.ID = live[i].id
			if raw, ok := live[i].field(toozBatonIDField); ok && strings.HasPrefix(m.ID, "#") {
				var id string
				if msgpack.Unmarshal(raw, &id) == nil && memberName(id) == m.ID {
					m.ID = id
				}
			}
			if raw, ok := live[i].field(toozCapsField); ok && !bytes.Equal(raw, toozEmptyCaps) {
				m.Capabilities = append([]byte(nil), raw...)
				if wrapped {
					var b []byte
					if msgpack.Unmarshal(raw, &b) == nil {
						m.Capabilities = b
					}
				}
			}
			out = append(out, m)
		}
		return live, write, nil
	})
	return out, err
}

// toozCompatDoc is the compat option's sentence for this driver.
const toozCompatDoc = "With tooz, groups (_TOOZ_GROUP_LIST, _TOOZ_GROUP_G), members and capabilities, liveness keys (_TOOZ_MEMBER_M), leader locks and locks (__TOOZ_LOCK_NAME, the holder's member ID) are shared with tooz processes on one server; " +
	"tooz's keys have no namespace (an explicit namespace prefixes them, for fleets tooz does not see); member IDs tooz's client cannot put in a key appear hashed to tooz. " +
	"Given up: several servers, fencing tokens for tooz's holders (partial), and member records are updated with bounded compare-and-swap loops where tooz loops without bound."

// toozCharacteristics are tooz's for memcached plus what the shared layout
// allows.
func toozCharacteristics() driver.Characteristics {
	ch := characteristics()
	ch.Fencing = driver.FencingPartial
	return ch
}

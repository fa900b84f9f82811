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
	if err := base.firstContact(ctx, d, t.beat, toozAlive); err != nil {
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

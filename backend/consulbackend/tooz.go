package consulbackend

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: tooz's consul driver (tooz.drivers.consul) layout and
// protocol. See the package documentation, section "compat=tooz".

// toozNamespace is tooz's default namespace (ConsulDriver.TOOZ_NAMESPACE).
const toozNamespace = "tooz"

// toozLockValue is the value tooz writes when it acquires a lock ("The
// value can be anything", tooz.drivers.consul.ConsulLock.acquire).
const toozLockValue = "I got it!"

// toozCharacteristics are those of a compat=tooz connection: as baton's
// layout, except that tooz's holders get no token (partial fencing) and
// tooz has no shared locks.
var toozCharacteristics = func() driver.Characteristics {
	c := characteristics
	c.Fencing = driver.FencingPartial
	c.SharedLocks = false
	return c
}()

// userLockPrefix is the backend's prefix of user lock names in
// LockRequest.Key; the rest is the name a tooz process uses.
const userLockPrefix = "l/"

// sessionHook, when set (by tests, before any connection opens), is told
// the session of every compat=tooz connection.
var sessionHook func(namespace, member, session string)

// cleanSegment reports whether s can be one segment of a key that tooz
// (python-consul's HTTP path) and Consul's HTTP router both keep as it is:
// not empty, not "." or "..".
func cleanSegment(s string) bool { return s != "" && s != "." && s != ".." }

// cleanPath reports whether every "/"-separated segment of s is clean.
func cleanPath(s string) bool {
	for _, seg := range strings.Split(s, "/") {
		if !cleanSegment(seg) {
			return false
		}
	}
	return true
}

// checkToozNamespace refuses a namespace tooz's layout cannot hold.
func checkToozNamespace(ns string) error {
	if !cleanPath(ns) {
		return fmt.Errorf("namespace %q: with compat=tooz the namespace is a key prefix as tooz writes it, so it needs non-empty segments other than \".\" and \"..\"", ns)
	}
	return nil
}

// groupLayout is where one group lives: tooz's keys for a name tooz's
// layout can hold (one clean segment), else baton's own subtree, which
// tooz never reads.
type groupLayout struct {
	record string // the group record, also the prefix of its members
	lock   string // the group lock (tooz's <ns>/group_locks/<group>)
	tooz   bool   // tooz's keys: member IDs are written as they are
}

func (l groupLayout) member(m string) string {
	if l.tooz {
		return l.record + m
	}
	return l.record + escape(m)
}

// memberOf returns the member ID of a key under the record, false for
// the record itself.
func (l groupLayout) memberOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, l.record)
	if !ok || rest == "" {
		return "", false
	}
	if l.tooz {
		return rest, true
	}
	m, err := unescape(rest)
	return m, err == nil
}

// toozKeys lays out a compat=tooz namespace:
//
//	<ns>/groups/<group>/               group record, value "" (tooz's)
//	<ns>/groups/<group>/<member>       capabilities as given (msgpack), tooz's
//	<ns>/group_locks/<group>           tooz's lock around join and delete
//	<ns>/locks/<name>                  a user lock: tooz's lock key
//	<ns>/baton/locks/<key>             leaderships, and user locks tooz cannot name
//	<ns>/baton/groups/<group>/...      groups tooz's layout cannot hold
//	<ns>/baton/group_locks/<group>     their group locks
//
// <ns>, <group>, <member> and <name> are written as they are, as tooz
// does; in the baton subtree they are escaped (keys.go).
type toozKeys struct{ ns string }

func (k toozKeys) groupsPrefix() string      { return k.ns + "/groups/" }
func (k toozKeys) batonGroupsPrefix() string { return k.ns + "/baton/groups/" }

func (k toozKeys) group(g string) groupLayout {
	if cleanSegment(g) && !strings.Contains(g, "/") {
		return groupLayout{record: k.groupsPrefix() + g + "/", lock: k.ns + "/group_locks/" + g, tooz: true}
	}
	return groupLayout{record: k.batonGroupsPrefix() + escape(g) + "/", lock: k.ns + "/baton/group_locks/" + escape(g)}
}

// lock returns the Consul key of lock key (a LockRequest.Key): tooz's
// key of a user lock whose name tooz can address, else a key of the baton
// subtree (leaderships; user lock names with an empty, "." or ".."
// segment, which tooz's HTTP path would not keep).
func (k toozKeys) lock(key string) string {
	if name, ok := strings.CutPrefix(key, userLockPrefix); ok && cleanPath(name) {
		return k.ns + "/locks/" + name
	}
	return k.ns + "/baton/locks/" + escape(key)
}

// toozConn is a compat=tooz connection: the session, renewals and
// session following of conn, with tooz's keys and protocol for groups
// and locks. It has no shared locks (tooz has none).
type toozConn struct {
	c    *conn
	keys toozKeys

	mu      sync.Mutex
	names   map[string]string        // session ID -> session name (member ID)
	groups  map[string]chan struct{} // group locks held by this connection
	pending map[string]bool          // lock keys being acquired
}

var (
	_ driver.Conn          = (*toozConn)(nil)
	_ driver.LockWaiter    = (*toozConn)(nil)
	_ driver.LockBreaker   = (*toozConn)(nil)
	_ driver.GroupWatcher  = (*toozConn)(nil)
	_ driver.HolderWatcher = (*toozConn)(nil)
)

func newToozConn(c *conn, ns string) *toozConn {
	if sessionHook != nil {
		sessionHook(ns, c.memberID, c.session)
	}
	return &toozConn{c: c, keys: toozKeys{ns: ns}, names: map[string]string{}, groups: map[string]chan struct{}{}, pending: map[string]bool{}}
}

// Session, Renew and Close are those of baton's layout: one Consul
// session per connection, named by the member ID as tooz names its own.
func (t *toozConn) Session() driver.SessionInfo     { return t.c.Session() }
func (t *toozConn) Renew(ctx context.Context) error { return t.c.Renew(ctx) }
func (t *toozConn) Close(ctx context.Context) error { return t.c.Close(ctx) }
func (t *toozConn) session() string                 { return t.c.session }
func (t *toozConn) txn(ctx context.Context, op string, ops api.TxnOps) (bool, *api.TxnResponse, error) {
	return t.c.txn(ctx, op, ops)
}

// read reads one key of any spelling (a transaction, so keys an HTTP path
// cannot name are read too); nil when absent.
func (t *toozConn) read(ctx context.Context, op, key string) (*api.KVPair, error) {
	if cleanPath(key) {
		return t.c.get(ctx, op, key)
	}
	ok, resp, err := t.txn(ctx, op, api.TxnOps{kvOp(api.KVGet, key)})
	if err != nil {
		return nil, err
	}
	if !ok || len(resp.Results) == 0 || resp.Results[0].KV == nil {
		if resp != nil {
			for _, e := range resp.Errors {
				if !strings.Contains(e.What, "doesn't exist") {
					return nil, driver.Errorf(driver.CodeInternal, "%s: %s", op, e.What)
				}
			}
		}
		return nil, nil
	}
	return resp.Results[0].KV, nil
}

// ---- locks ----

// holds reports whether this connection holds Consul key k (Consul would
// let the session take it again: tooz checks the same before acquiring).
func (t *toozConn) holds(k string) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for _, held := range t.c.held {
		if held == k {
			return true
		}
	}
	return false
}

// acquire takes Consul key k with the session as tooz does: PUT
// ?acquire=<session> with tooz's value (Consul enforces the lock-delay of
// a session that lost the key only on this endpoint, so tooz's 15 s are
// honoured). Every lock key is a clean path (names tooz cannot address
// are escaped into the baton subtree). It returns the ModifyIndex of the
// acquiring write, 0 when not acquired.
func (t *toozConn) acquire(ctx context.Context, op, k string) (uint64, error) {
	if t.holds(k) {
		return 0, nil
	}
	rctx, cancel := t.c.reqCtx(ctx)
	got, _, err := t.c.cli.KV().Acquire(&api.KVPair{Key: k, Value: []byte(toozLockValue), Session: t.session()}, (&api.WriteOptions{}).WithContext(rctx))
	err = classify(ctx, rctx, op, err)
	cancel()
	if err != nil {
		if containsAny(err.Error(), "invalid session") {
			return 0, driver.Wrap(driver.CodeLost, fmt.Errorf("%s: %w", op, errSessionGone))
		}
		return 0, err
	}
	if !got {
		return 0, nil
	}
	p, err := t.read(ctx, op, k)
	if err != nil {
		return 0, err
	}
	if p == nil || p.Session != t.session() {
		return 0, nil // broken before it could be read
	}
	return p.ModifyIndex, nil
}

// release releases Consul key k as tooz does (the lock is released, not
// deleted; the value becomes the session ID), only if the grant at index
// still holds it.
func (t *toozConn) release(ctx context.Context, op, k string, index uint64) (bool, error) {
	ok, _, err := t.txn(ctx, op, api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: k, Session: t.session()}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: k, Index: index}},
		{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: k, Value: []byte(t.session()), Session: t.session()}},
	})
	return ok, err
}

// TryLock takes the lock with tooz's protocol. The token is the
// ModifyIndex of the acquiring write: it grows with every acquisition of
// the key, baton's and tooz's, but tooz's holders have none (partial
// fencing).
func (t *toozConn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	op := fmt.Sprintf("try lock %q", req.Key)
	k := t.keys.lock(req.Key)
	// One acquisition of a key at a time per connection: Consul would
	// grant the same session twice.
	t.mu.Lock()
	if t.pending[k] || t.holds(k) {
		t.mu.Unlock()
		return driver.Lease{}, false, nil
	}
	t.pending[k] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.pending, k)
		t.mu.Unlock()
	}()
	token, err := t.acquire(ctx, op, k)
	if err != nil || token == 0 {
		return driver.Lease{}, false, err
	}
	t.c.remember(req.Key, token, k)
	return driver.Lease{Token: token}, true, nil
}

// WaitLock waits for the lock: a blocking query on the key while a
// session holds it, then an acquisition; while the key is free yet
// refused (a lock-delay) it retries with backoff.
func (t *toozConn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	k := t.keys.lock(req.Key)
	b := newBackoff()
	free := 0
	for {
		sent := t.c.clock.Now()
		lease, ok, err := t.TryLock(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			lease.Sent = sent
			return lease, nil
		}
		p, index, err := t.watchKey(ctx, op, k, 0)
		if err != nil {
			return driver.Lease{}, err
		}
		if p == nil || p.Session == "" {
			free++
			if free > 1 && !b.wait(ctx, t.c.clock) {
				return driver.Lease{}, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		free = 0
		b.reset()
		for p != nil && p.Session != "" {
			p, index, err = t.watchKey(ctx, op, k, index)
			if err != nil {
				return driver.Lease{}, err
			}
		}
	}
}

// watchKey reads lock key k (index 0: consistently, at once; else a
// blocking query that returns when the listing of k as a prefix moves
// past index). It returns the key (nil when absent) and the next index.
func (t *toozConn) watchKey(ctx context.Context, op, k string, index uint64) (*api.KVPair, uint64, error) {
	pfx := k
	var pairs api.KVPairs
	var got uint64
	var err error
	if index == 0 {
		pairs, got, err = t.c.list(ctx, op, pfx)
	} else {
		pairs, got, err = t.c.block(ctx, op, pfx, index)
	}
	if err != nil {
		return nil, 0, err
	}
	next, _ := nextIndex(index, got)
	for _, p := range pairs {
		if p.Key == k {
			return p, next, nil
		}
	}
	return nil, next, nil
}

// Unlock releases the grant as tooz does: CodeNotHeld when the key is no
// longer held by this session at the grant's index.
func (t *toozConn) Unlock(ctx context.Context, key string, token uint64) error {
	op := fmt.Sprintf("unlock %q", key)
	k, ok := t.c.granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	// The key stays claimed until the release is done: an acquisition by
	// this connection in between would be granted to the same session.
	t.mu.Lock()
	if t.pending[k] {
		t.mu.Unlock()
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is being released", op, token)
	}
	t.pending[k] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.pending, k)
		t.mu.Unlock()
	}()
	done, err := t.release(ctx, op, k, token)
	if err != nil {
		return err // still granted: may be retried
	}
	t.c.forget(key, token)
	if !done {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
	}
	return nil
}

// RefreshLock is never called for session-bound grants; it reports
// whether the grant still holds the key.
func (t *toozConn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	op := fmt.Sprintf("refresh lock %q", key)
	k, ok := t.c.granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	p, err := t.read(ctx, op, k)
	if err != nil {
		return err
	}
	if p == nil || p.ModifyIndex != token || p.Session != t.session() {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone", op, token)
	}
	return nil
}

// holderOf turns a lock key into its holder: the member is the name of
// the holding session (tooz names its session by its member ID and so
// does this mode; the value is tooz's constant).
func (t *toozConn) holderOf(ctx context.Context, op string, p *api.KVPair) (driver.Holder, bool, error) {
	if p == nil || p.Session == "" {
		return driver.Holder{}, false, nil
	}
	name, ok, err := t.sessionName(ctx, op, p.Session)
	if err != nil || !ok {
		return driver.Holder{}, false, err // the session was just invalidated: free
	}
	return driver.Holder{Member: name, Token: p.ModifyIndex}, true, nil
}

// sessionName returns the name of session id (cached: names never change).
func (t *toozConn) sessionName(ctx context.Context, op, id string) (string, bool, error) {
	t.mu.Lock()
	name, ok := t.names[id]
	t.mu.Unlock()
	if ok {
		return name, true, nil
	}
	rctx, cancel := t.c.reqCtx(ctx)
	defer cancel()
	e, _, err := t.c.cli.Session().Info(id, query(rctx, true))
	if err != nil {
		return "", false, classify(ctx, rctx, op, err)
	}
	if e == nil {
		return "", false, nil
	}
	t.mu.Lock()
	t.names[id] = e.Name
	t.mu.Unlock()
	return e.Name, true, nil
}

// Holder reads the lock key (consistently).
func (t *toozConn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	op := fmt.Sprintf("holder of %q", key)
	k := t.keys.lock(key)
	p, err := t.read(ctx, op, k)
	if err != nil {
		return driver.Holder{}, err
	}
	h, ok, err := t.holderOf(ctx, op, p)
	if err != nil {
		return driver.Holder{}, err
	}
	if !ok {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	return h, nil
}

// BreakLock deletes the lock key if a session holds it, only if
// unchanged since read (tooz's holder then finds no key to release).
func (t *toozConn) BreakLock(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("break lock %q", key)
	k := t.keys.lock(key)
	p, err := t.read(ctx, op, k)
	if err != nil || p == nil || p.Session == "" {
		return false, err
	}
	ok, _, err := t.txn(ctx, op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: k, Index: p.ModifyIndex}}})
	return ok && err == nil, err
}

// WatchHolder follows the lock key with blocking queries and emits the
// holder first and after every change, until ctx ends.
func (t *toozConn) WatchHolder(ctx context.Context, key string, emit func(driver.Holder, bool)) error {
	op := fmt.Sprintf("watch holder of %q", key)
	k := t.keys.lock(key)
	p, index, err := t.watchKey(ctx, op, k, 0)
	if err != nil {
		return err
	}
	last, held, err := t.holderOf(ctx, op, p)
	if err != nil {
		return err
	}
	emit(last, held)
	for {
		p, index, err = t.watchKey(ctx, op, k, index)
		if err != nil {
			return err
		}
		h, ok, err := t.holderOf(ctx, op, p)
		if err != nil {
			return err
		}
		if ok != held || h != last {
			last, held = h, ok
			emit(h, ok)
		}
	}
}

// ---- groups ----

// lockGroup takes the group's lock as tooz's join and delete_group do
// (a tooz lock on <ns>/group_locks/<group>, waited for), so a tooz
// process and this connection never join and delete one group at once.
// Operations of this connection on one group are also serialized here,
// because Consul lets a session take a key it holds again. The returned
// function releases it.
func (t *toozConn) lockGroup(ctx context.Context, op string, l groupLayout) (func(), error) {
	for {
		t.mu.Lock()
		busy, ok := t.groups[l.lock]
		if !ok {
			t.groups[l.lock] = make(chan struct{})
			t.mu.Unlock()
			break
		}
		t.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, classify(ctx, nil, op, ctx.Err())
		}
	}
	unmark := func() {
		t.mu.Lock()
		close(t.groups[l.lock])
		delete(t.groups, l.lock)
		t.mu.Unlock()
	}
	b := newBackoff()
	free := 0
	for {
		index, err := t.acquire(ctx, op, l.lock)
		if err != nil {
			unmark()
			return nil, err
		}
		if index != 0 {
			return func() {
				// The key is gone when a delete removed it: nothing to release.
				_, _ = t.release(context.WithoutCancel(ctx), op, l.lock, index)
				unmark()
			}, nil
		}
		p, widx, err := t.watchKey(ctx, op, l.lock, 0)
		if err != nil {
			unmark()
			return nil, err
		}
		if p == nil || p.Session == "" {
			free++
			if free > 1 && !b.wait(ctx, t.c.clock) {
				unmark()
				return nil, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		free = 0
		b.reset()
		for p != nil && p.Session != "" {
			if p, widx, err = t.watchKey(ctx, op, l.lock, widx); err != nil {
				unmark()
				return nil, err
			}
		}
	}
}

// toozGroup is one listing of a group's keys.
type toozGroup struct {
	record  *api.KVPair
	members []driver.Member
	keys    map[string]*api.KVPair // member ID -> key
	index   uint64
}

// decode reads a listing of l's prefix. Every key below the record is a
// member, with or without a session: tooz never binds its member keys to
// its session, and tooz lists such a member until it leaves.
func (t *toozConn) decode(l groupLayout, pairs api.KVPairs, index uint64) toozGroup {
	st := toozGroup{keys: map[string]*api.KVPair{}, index: index}
	for _, p := range pairs {
		if p.Key == l.record {
			st.record = p
			continue
		}
		id, ok := l.memberOf(p.Key)
		if !ok {
			continue
		}
		st.keys[id] = p
		m := driver.Member{ID: id, Capabilities: p.Value, Incarnation: strconv.FormatUint(p.CreateIndex, 10)}
		m.JoinedAt, m.UpdatedAt = unpackTimes(p.Flags)
		st.members = append(st.members, m)
	}
	return st
}

func (t *toozConn) group(ctx context.Context, op string, l groupLayout) (toozGroup, error) {
	pairs, index, err := t.c.list(ctx, op, l.record)
	if err != nil {
		return toozGroup{}, err
	}
	return t.decode(l, pairs, index), nil
}

// CreateGroup writes the record with check-and-set at index 0, value "",
// as tooz does.
func (t *toozConn) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	l := t.keys.group(group)
	ok, _, err := t.txn(ctx, op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: l.record, Value: []byte{}, Index: 0}}})
	if err != nil {
		return err
	}
	if !ok {
		return driver.Errorf(driver.CodeGroupExists, "%s: exists", op)
	}
	return nil
}

// DeleteGroup deletes an empty group under its group lock, as tooz does:
// the record, everything below it, and the group lock key.
func (t *toozConn) DeleteGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("delete group %q", group)
	l := t.keys.group(group)
	unlock, err := t.lockGroup(ctx, op, l)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := t.group(ctx, op, l)
	if err != nil {
		return err
	}
	if st.record == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	if len(st.members) > 0 {
		return driver.Errorf(driver.CodeGroupNotEmpty, "%s: it has members", op)
	}
	_, _, err = t.txn(ctx, op, api.TxnOps{kvOp(api.KVDeleteTree, l.record), kvOp(api.KVDelete, l.lock)})
	return err
}

// Groups lists tooz's groups (the folders under <ns>/groups/, as tooz's
// get_groups lists them) and the groups of the baton subtree.
func (t *toozConn) Groups(ctx context.Context) ([]string, error) {
	var out []string
	for _, pfx := range []string{t.keys.groupsPrefix(), t.keys.batonGroupsPrefix()} {
		rctx, cancel := t.c.reqCtx(ctx)
		keys, _, err := t.c.cli.KV().Keys(pfx, "/", query(rctx, true))
		err = classify(ctx, rctx, "list groups", err)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			g, ok := strings.CutPrefix(k, pfx)
			if !ok || !strings.HasSuffix(g, "/") {
				continue
			}
			g = strings.TrimSuffix(g, "/")
			if pfx == t.keys.groupsPrefix() {
				if cleanSegment(g) {
					out = append(out, g)
				}
			} else if n, err := unescape(g); err == nil {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// Join writes the member key under the group lock, as tooz does, with the
// capabilities as given (membership's msgpack, tooz's utils.dumps), and
// acquired with the session, so that a crashed baton member's key goes
// with its session (tooz's own member keys stay).
func (t *toozConn) Join(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("join group %q", group)
	l := t.keys.group(group)
	unlock, err := t.lockGroup(ctx, op, l)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := t.group(ctx, op, l)
	if err != nil {
		return err
	}
	if st.record == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	if _, ok := st.keys[t.c.memberID]; ok {
		return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, t.c.memberID)
	}
	mk := l.member(t.c.memberID)
	now := time.Now()
	ok, resp, err := t.txn(ctx, op, api.TxnOps{
		kvOp(api.KVCheckNotExists, mk),
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: mk, Value: caps, Flags: packTimes(now, now), Session: t.session()}},
	})
	if err != nil {
		return err
	}
	if !ok {
		if err := t.c.lostIf(op, resp); err != nil {
			return err
		}
		return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, t.c.memberID)
	}
	return nil
}

// Leave deletes the member key, as tooz does (without the group lock).
func (t *toozConn) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	l := t.keys.group(group)
	mk := l.member(t.c.memberID)
	ok, _, err := t.txn(ctx, op, api.TxnOps{kvOp(api.KVGet, mk), kvOp(api.KVDelete, mk)})
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	rec, err := t.read(ctx, op, l.record)
	if err != nil {
		return err
	}
	if rec == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, t.c.memberID)
}

// Members lists every member key of the group, tooz's and baton's.
func (t *toozConn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	op := fmt.Sprintf("list members of %q", group)
	st, err := t.group(ctx, op, t.keys.group(group))
	if err != nil {
		return nil, err
	}
	if st.record == nil {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return st.members, nil
}

// UpdateCapabilities rewrites this member's key, still with the session,
// only if unchanged since read.
func (t *toozConn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("update capabilities in %q", group)
	l := t.keys.group(group)
	mk := l.member(t.c.memberID)
	for {
		p, err := t.read(ctx, op, mk)
		if err != nil {
			return err
		}
		if p == nil || p.Session != t.session() {
			rec, err := t.read(ctx, op, l.record)
			if err != nil {
				return err
			}
			if rec == nil {
				return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
			}
			return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, t.c.memberID)
		}
		joined, _ := unpackTimes(p.Flags)
		now := time.Now()
		if joined.IsZero() || now.Before(joined) {
			joined = now
		}
		ok, resp, err := t.txn(ctx, op, api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: mk, Index: p.ModifyIndex}},
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: mk, Session: t.session(), Value: caps, Flags: packTimes(joined, now)}},
		})
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := t.c.lostIf(op, resp); err != nil {
			return err
		}
	}
}

// WatchGroup pushes the group's changes with blocking queries on its
// prefix, as WatchGroup of baton's layout does (tooz's own watchers poll
// get_members; these see the same keys at once).
func (t *toozConn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	op := fmt.Sprintf("watch group %q", group)
	l := t.keys.group(group)
	st, err := t.group(ctx, op, l)
	if err != nil {
		return err
	}
	if st.record == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: st.members})
	view := byID(st.members)
	created := st.record.CreateIndex
	index := max(st.index, 1)
	for {
		pairs, got, err := t.c.block(ctx, op, l.record, index)
		if err != nil {
			return err
		}
		var reset bool
		index, reset = nextIndex(index, got)
		next := t.decode(l, pairs, got)
		if next.record == nil || (!reset && next.record.CreateIndex != created) {
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return nil
		}
		if reset {
			emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: next.members})
			view, created = byID(next.members), next.record.CreateIndex
			continue
		}
		for _, ev := range diff(view, next.members) {
			emit(ev)
		}
		view = byID(next.members)
	}
}

// packTimes keeps a baton member's join and update times in its key's
// Flags, which tooz neither reads nor writes (its member keys have 0: no
// times): the join time in whole Unix seconds in the upper 32 bits, the
// update time after that second in the lower 32 bits, in milliseconds
// (below 2^31 ms, about 24 days), else in seconds with the top bit set.
func packTimes(joined, updated time.Time) uint64 {
	js := joined.Unix()
	d := updated.Sub(time.Unix(js, 0))
	var lo uint64
	if ms := d.Milliseconds(); ms < 1<<31 {
		lo = uint64(max(ms, 0))
	} else {
		lo = 1<<31 | uint64(min(int64(d/time.Second), 1<<31-1))
	}
	return uint64(js)<<32 | lo
}

// unpackTimes reverses packTimes; zero times for flags 0 (a tooz member).
func unpackTimes(flags uint64) (joined, updated time.Time) {
	if flags == 0 {
		return time.Time{}, time.Time{}
	}
	joined = time.Unix(int64(flags>>32), 0)
	lo := flags & (1<<32 - 1)
	if lo&(1<<31) != 0 {
		return joined, joined.Add(time.Duration(lo&(1<<31-1)) * time.Second)
	}
	return joined, joined.Add(time.Duration(lo) * time.Millisecond)
}

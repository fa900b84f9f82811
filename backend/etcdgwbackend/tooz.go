package etcdgwbackend

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// compat=tooz: tooz's etcd3gw driver layout (drivers/etcd3gw.py):
//
//	tooz/groups/<group>/            group record, value = the key itself
//	tooz/groups/<group>/<member>    member: msgpack capabilities, on the member's lease
//	/tooz/locks<name>               lock (no separator, as tooz writes it), on a lease
//
// Groups are created with a txn on the record's version, members are put
// on this connection's session lease (tooz: its membership lease, TTL
// membership_timeout, refreshed by heartbeat), so a dead member of either
// kind vanishes when its lease expires. A lock is taken with tooz's txn
// "create_revision == 0 → put on a lease" and released with "value == mine
// → delete"; baton's value is "b:<nonce>:<member>" (tooz's is 16 random
// bytes), its lease the session lease, its token the key's create
// revision. tooz waits for a lock by polling; baton watches the key's
// deletion. Group and member IDs are escaped as in baton's layout ('%'
// and '/' only), so every ID tooz can use keeps its key. What tooz does
// not keep, baton keeps under its namespace: member join and update times
// (<ns>/minfo/<group>/<member>/j|u, on the session lease), leaders (tooz
// has none on this driver: baton's lock layout under <ns>/locks/) and
// sessions.
//
// tooz's own defects, interoperated with: its get_groups lists member keys
// as bogus groups ("g/membe"): baton lists only group records. Its lock
// keys have no separator, so lock "a" and "ab" are /tooz/locksa and
// /tooz/locksab: baton reads and writes exact keys, never prefixes.
const (
	toozGroupsPrefix = "tooz/groups/"
	toozLocksPrefix  = "/tooz/locks"
)

const compatDoc = "With tooz, groups (tooz/groups/<group>/), members (msgpack capabilities on the session lease) and user locks (/tooz/locks<name>, create-if-absent on a lease) use tooz's keys, so baton and tooz processes see each other's members and exclude each other's locks; leaders keep baton's layout (tooz has none on etcd3gw), member times live in baton's namespace, a tooz holder is reported with an empty member ID, and tooz holders take no token (fencing is partial)."

// characteristicsFor: in compat=tooz mode fencing is partial (tooz holders
// take no token).
func characteristicsFor(v driver.Values) driver.Characteristics {
	ch := characteristics
	if v.String("compat") == driver.CompatTooz {
		ch.Fencing = driver.FencingPartial
	}
	return ch
}

// withTooz turns on tooz's keys for a compat=tooz connection.
func (k keyspace) withTooz(s *settings) keyspace {
	k.tooz, k.tzPfx = s.tooz, s.toozPrefix
	if k.tooz {
		k.Keyspace = k.WithGroupsAt(k.tzPfx + toozGroupsPrefix)
	}
	return k
}

// toozLock returns tooz's key of a user lock in compat=tooz mode.
func (k keyspace) toozLock(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, "l/")
	if !ok || !k.tooz {
		return "", false
	}
	return k.tzPfx + toozLocksPrefix + name, true
}

// memberInfo is the prefix of baton's record of member m's times.
func (k keyspace) memberInfo(g, m string) string {
	return k.Root() + "minfo/" + etcdproto.Escape(g) + "/" + etcdproto.Escape(m) + "/"
}

func (k keyspace) groupInfo(g string) string { return k.Root() + "minfo/" + etcdproto.Escape(g) + "/" }

// noMembers compares "no member key under the group": the members prefix
// in baton's layout, the keys after the group record in tooz's (where
// the record is itself the prefix).
func (c *conn) noMembers(mp string) compare {
	if !c.keys.tooz {
		return cmpCreate(mp, "EQUAL", 0, true)
	}
	cmp := cmpCreate(mp+"\x00", "EQUAL", 0, false)
	cmp["range_end"] = prefixEnd(mp)
	return cmp
}

// groupRecord is the value of a new group record: tooz stores the key.
func (c *conn) groupRecord(gk string) []byte {
	if c.keys.tooz {
		return []byte(gk)
	}
	return nil
}

// toozEmptyCaps is msgpack's b"", tooz's default capabilities.
var toozEmptyCaps = []byte{0xc4, 0x00}

func toozCaps(caps []byte) []byte {
	if len(caps) == 0 {
		return toozEmptyCaps
	}
	return caps
}

// toozDecodeMember decodes a member key; times come from info (nil: none).
func (c *conn) toozDecodeMember(g string, kv *keyValue, info map[string]int64) (driver.Member, bool) {
	id, ok := c.keys.MemberOf(g, string(kv.Key))
	if !ok {
		return driver.Member{}, false
	}
	m := driver.Member{ID: id, Incarnation: strconv.FormatInt(kv.CreateRevision, 10)}
	if len(kv.Value) > 0 && !bytes.Equal(kv.Value, toozEmptyCaps) {
		m.Capabilities = kv.Value
	}
	pfx := c.keys.memberInfo(g, id)
	if j := info[pfx+"j"]; j != 0 {
		m.JoinedAt = time.Unix(0, j)
	}
	if u := info[pfx+"u"]; u != 0 {
		m.UpdatedAt = time.Unix(0, u)
	}
	return m, true
}

func nanos(t int64) []byte { return []byte(strconv.FormatInt(t, 10)) }

func (c *conn) toozJoin(ctx context.Context, op, group string, caps []byte) error {
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	info := c.keys.memberInfo(group, c.memberID)
	now := nanos(time.Now().UnixNano())
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{groupExists(gk), cmpCreate(mk, "EQUAL", 0, false)},
		Success: []requestOp{
			{Put: &putRequest{Key: []byte(mk), Value: toozCaps(caps), Lease: c.lease}},
			{Put: &putRequest{Key: []byte(info + "j"), Value: now, Lease: c.lease}},
			{Put: &putRequest{Key: []byte(info + "u"), Value: now, Lease: c.lease}},
		},
		Failure: countOf(gk),
	})
	if err != nil {
		return err
	}
	switch {
	case resp.Succeeded:
		return nil
	case countIn(resp) == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	default:
		return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, c.memberID)
	}
}

func (c *conn) toozLeave(ctx context.Context, op, group string) error {
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	info := c.keys.memberInfo(group, c.memberID)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(mk, "GREATER", 0, false)},
		Success: []requestOp{
			{Delete: &deleteRequest{Key: []byte(mk)}},
			{Delete: &deleteRequest{Key: []byte(info), RangeEnd: prefixEnd(info)}},
		},
		Failure: countOf(gk),
	})
	if err != nil {
		return err
	}
	switch {
	case resp.Succeeded:
		return nil
	case countIn(resp) == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	default:
		return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
	}
}

func (c *conn) toozUpdate(ctx context.Context, op, group string, caps []byte) error {
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	info := c.keys.memberInfo(group, c.memberID)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(mk, "GREATER", 0, false)},
		Success: []requestOp{
			{Put: &putRequest{Key: []byte(mk), Value: toozCaps(caps), IgnoreLease: true}},
			{Put: &putRequest{Key: []byte(info + "u"), Value: nanos(time.Now().UnixNano()), Lease: c.lease}},
		},
		Failure: countOf(gk),
	})
	if err != nil {
		return err
	}
	switch {
	case resp.Succeeded:
		return nil
	case countIn(resp) == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	default:
		return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
	}
}

// toozMembers reads the group's keys and baton's member times in one
// transaction (one revision).
func (c *conn) toozMembers(ctx context.Context, op, g string) ([]driver.Member, bool, int64, error) {
	gk, ik := c.keys.Group(g), c.keys.groupInfo(g)
	resp, err := c.txn(ctx, op, &txnRequest{
		Success: []requestOp{
			{Range: &rangeRequest{Key: []byte(gk), RangeEnd: prefixEnd(gk)}},
			{Range: &rangeRequest{Key: []byte(ik), RangeEnd: prefixEnd(ik)}},
		},
	})
	if err != nil {
		return nil, false, 0, err
	}
	if len(resp.Responses) != 2 {
		return nil, false, 0, driver.Errorf(driver.CodeInternal, "%s: malformed transaction reply", op)
	}
	info := map[string]int64{}
	for _, kv := range resp.Responses[1].rangeOf().Kvs {
		if n, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil {
			info[string(kv.Key)] = n
		}
	}
	exists := false
	var ms []driver.Member
	for _, kv := range resp.Responses[0].rangeOf().Kvs {
		if string(kv.Key) == gk {
			exists = true
			continue
		}
		if m, ok := c.toozDecodeMember(g, kv, info); ok {
			ms = append(ms, m)
		}
	}
	return ms, exists, resp.Header.Revision, nil
}

// toozValue is baton's value of a lock key it holds.
func (c *conn) toozValue() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "b:" + hex.EncodeToString(b[:]) + ":" + c.memberID
}

// toozHolderOf decodes a lock key: baton's holder, or tooz's (16 random
// bytes: no member ID).
func toozHolderOf(kv *keyValue) driver.Holder {
	h := driver.Holder{Token: uint64(kv.CreateRevision)}
	if rest, ok := strings.CutPrefix(string(kv.Value), "b:"); ok && len(rest) > 17 && rest[16] == ':' {
		h.Member = rest[17:]
	}
	return h
}

func (c *conn) toozTryLock(ctx context.Context, req driver.LockRequest, k string) (driver.Lease, bool, error) {
	lease, ok, _, err := c.toozAttempt(ctx, req, k)
	return lease, ok, err
}

// toozAttempt is tooz's acquisition: create the key on the session lease
// unless it exists. When busy it returns the revision it was seen at.
func (c *conn) toozAttempt(ctx context.Context, req driver.LockRequest, k string) (driver.Lease, bool, int64, error) {
	op := fmt.Sprintf("try lock %q", req.Key)
	val := c.toozValue()
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(k, "EQUAL", 0, false)},
		Success: []requestOp{{Put: &putRequest{Key: []byte(k), Value: []byte(val), Lease: c.lease}}},
	})
	if err != nil {
		// The transaction may have been applied: take it back if so.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		_, _ = c.txn(dctx, op, &txnRequest{
			Compare: []compare{{"key": []byte(k), "target": "VALUE", "result": "EQUAL", "value": []byte(val)}},
			Success: []requestOp{{Delete: &deleteRequest{Key: []byte(k)}}},
		})
		return driver.Lease{}, false, 0, err
	}
	if !resp.Succeeded {
		return driver.Lease{}, false, resp.Header.Revision, nil
	}
	token := uint64(resp.Header.Revision)
	c.entries.Remember(token, etcdproto.Entry{Lock: req.Key, Slot: ^uint64(0), Key: k + "\x00" + val})
	return driver.Lease{Token: token}, true, 0, nil
}

// toozEntry splits what toozAttempt remembered: the key and its value.
func toozEntry(e etcdproto.Entry) (key, val string) {
	key, val, _ = strings.Cut(e.Key, "\x00")
	return key, val
}

// toozWaitLock tries, and while the key exists watches its deletion and
// tries again. A waiter takes no place in a queue (tooz's protocol has
// none): whoever writes first after a release holds the lock.
func (c *conn) toozWaitLock(ctx context.Context, req driver.LockRequest, k string) (driver.Lease, error) {
	b := c.newBackoff()
	for {
		sent := c.clock.Now()
		lease, ok, rev, err := c.toozAttempt(ctx, req, k)
		switch {
		case err != nil:
			if ctx.Err() != nil || !transientCode(err) || !b.wait(ctx) {
				return driver.Lease{}, err
			}
			continue
		case ok:
			lease.Sent = sent
			return lease, nil
		}
		if err := c.waitDelete(ctx, k, rev, b); err != nil {
			if ctx.Err() != nil {
				return driver.Lease{}, classify(ctx, nil, fmt.Sprintf("wait for lock %q", req.Key), ctx.Err())
			}
			if !b.wait(ctx) {
				return driver.Lease{}, classify(ctx, nil, fmt.Sprintf("wait for lock %q", req.Key), ctx.Err())
			}
			continue
		}
		b.reset()
	}
}

// transientCode reports a driver error worth retrying.
func transientCode(err error) bool {
	code, _ := driver.CodeOf(err)
	return code == driver.CodeUnavailable || code == driver.CodeDeadlineExceeded
}

func (c *conn) toozUnlock(ctx context.Context, lock string, token uint64, k string) error {
	op := fmt.Sprintf("unlock %q", lock)
	e, ok := c.entries.Forget(lock, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	_, val := toozEntry(e)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{{"key": []byte(k), "target": "VALUE", "result": "EQUAL", "value": []byte(val)}},
		Success: []requestOp{{Delete: &deleteRequest{Key: []byte(k)}}},
	})
	if err != nil {
		return err // the key lives on the session lease: it goes with the session at worst
	}
	if !resp.Succeeded {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
	}
	return nil
}

func (c *conn) toozRefresh(ctx context.Context, lock string, token uint64, k string) error {
	op := fmt.Sprintf("refresh lock %q", lock)
	if _, ok := c.entries.Granted(lock, token); !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(k), KeysOnly: true})
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != int64(token) {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone", op, token)
	}
	return nil
}

func (c *conn) toozHolder(ctx context.Context, lock, k string) (driver.Holder, error) {
	op := fmt.Sprintf("holder of %q", lock)
	resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(k)})
	if err != nil {
		return driver.Holder{}, err
	}
	if len(resp.Kvs) == 0 {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	return toozHolderOf(resp.Kvs[0]), nil
}

// toozBreak deletes the lock key, whoever holds it (tooz's break_), unless
// it was taken again since it was read.
func (c *conn) toozBreak(ctx context.Context, lock, k string) (bool, error) {
	op := fmt.Sprintf("break lock %q", lock)
	resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(k), KeysOnly: true})
	if err != nil || len(resp.Kvs) == 0 {
		return false, err
	}
	tx, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(k, "EQUAL", resp.Kvs[0].CreateRevision, false)},
		Success: []requestOp{{Delete: &deleteRequest{Key: []byte(k)}}},
	})
	if err != nil {
		return false, err
	}
	return tx.Succeeded, nil
}

// toozWatchHolder pushes the holder of a tooz lock key: the current one,
// then each change, from a watch on the exact key.
func (c *conn) toozWatchHolder(ctx context.Context, lock, k string, emit func(driver.Holder, bool)) error {
	op := fmt.Sprintf("watch holder of %q", lock)
	var last *driver.Holder
	report := func(h driver.Holder, held, force bool) {
		switch {
		case !held && (force || last != nil):
			last = nil
			emit(driver.Holder{}, false)
		case held && (force || last == nil || *last != h):
			last = &h
			emit(h, true)
		}
	}
	load := func(ctx context.Context, force bool) (int64, error) {
		resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(k)})
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) == 0 {
			report(driver.Holder{}, false, force)
		} else {
			report(toozHolderOf(resp.Kvs[0]), true, force)
		}
		return resp.Header.Revision, nil
	}
	rev, err := load(ctx, true)
	if err != nil {
		return err
	}
	apply := func(evs []*event) bool {
		for _, ev := range evs {
			if ev.isDelete() {
				report(driver.Holder{}, false, false)
			} else {
				report(toozHolderOf(ev.Kv), true, false)
			}
		}
		return false
	}
	resync := func(ctx context.Context) (int64, bool, error) {
		rev, err := load(ctx, false)
		return rev, false, err
	}
	return classify(ctx, nil, op, c.follow(ctx, k, false, rev, apply, resync))
}

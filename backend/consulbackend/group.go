package consulbackend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend/driver"
)

// memberRecord is the value of a member key, in msgpack (as tooz stores
// capabilities). The times are the writing client's wall clock in Unix
// nanoseconds.
type memberRecord struct {
	Capabilities []byte `msgpack:"caps"`
	Joined       int64  `msgpack:"joined"`
	Updated      int64  `msgpack:"updated"`
}

func encodeMember(r memberRecord) []byte {
	b, _ := msgpack.Marshal(&r) // bytes and integers always marshal
	return b
}

// decodeMember turns a member key into a Member of group g. The
// incarnation is the key's CreateIndex: every join creates the key anew.
// Keys no session holds are dead (their member's session is being
// invalidated) and are skipped.
func (c *conn) decodeMember(g string, p *api.KVPair) (driver.Member, bool) {
	if p.Session == "" {
		return driver.Member{}, false
	}
	id, ok := c.keys.memberOf(g, p.Key)
	if !ok {
		return driver.Member{}, false
	}
	m := driver.Member{ID: id, Incarnation: strconv.FormatUint(p.CreateIndex, 10)}
	var r memberRecord
	if len(p.Value) > 0 && msgpack.Unmarshal(p.Value, &r) == nil {
		m.Capabilities = r.Capabilities
		if r.Joined != 0 {
			m.JoinedAt = time.Unix(0, r.Joined)
		}
		if r.Updated != 0 {
			m.UpdatedAt = time.Unix(0, r.Updated)
		}
	}
	return m, true
}

// CreateGroup writes the group record if absent (check-and-set at index
// 0): CodeGroupExists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	ok, _, err := c.txn(ctx, op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: c.keys.group(group), Index: 0}}})
	if err != nil {
		return err
	}
	if !ok {
		return driver.Errorf(driver.CodeGroupExists, "%s: exists", op)
	}
	return nil
}

// groupState is one consistent listing of a group's prefix.
type groupState struct {
	record  *api.KVPair // nil when the group does not exist
	members []driver.Member
	index   uint64 // X-Consul-Index of the listing
	dead    api.KVPairs
}

func (c *conn) readGroup(g string, pairs api.KVPairs, index uint64) groupState {
	gk := c.keys.group(g)
	st := groupState{index: index}
	for _, p := range pairs {
		if p.Key == gk {
			st.record = p
			continue
		}
		if m, ok := c.decodeMember(g, p); ok {
			st.members = append(st.members, m)
		} else {
			st.dead = append(st.dead, p)
		}
	}
	return st
}

// group lists group g's record and members consistently.
func (c *conn) group(ctx context.Context, op, g string) (groupState, error) {
	pairs, index, err := c.list(ctx, op, c.keys.group(g))
	if err != nil {
		return groupState{}, err
	}
	return c.readGroup(g, pairs, index), nil
}

// DeleteGroup deletes an empty group's record, if unchanged since it was
// read empty: every Join rewrites the record in its transaction, so a
// Join that lands in between makes the delete fail and read again.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("delete group %q", group)
	for {
		st, err := c.group(ctx, op, group)
		if err != nil {
			return err
		}
		if st.record == nil {
			return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
		}
		if len(st.members) > 0 {
			return driver.Errorf(driver.CodeGroupNotEmpty, "%s: it has members", op)
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: st.record.Key, Index: st.record.ModifyIndex}}}
		for _, p := range st.dead {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: p.Key, Index: p.ModifyIndex}})
		}
		ok, _, err := c.txn(ctx, op, ops)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}

// Groups lists the group records (reading keys only, consistently).
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	keys, _, err := c.cli.KV().Keys(c.keys.groupsPrefix(), "", query(rctx, true))
	if err != nil {
		return nil, classify(ctx, rctx, "list groups", err)
	}
	var out []string
	for _, k := range keys {
		if g, ok := c.keys.groupOf(k); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Join acquires this member's key with the session, in one transaction
// that also rewrites the group record at the index it was read (so a
// concurrent DeleteGroup cannot miss the new member) and requires the
// member key to be absent.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("join group %q", group)
	gk, mk := c.keys.group(group), c.keys.member(group, c.memberID)
	for {
		rec, err := c.get(ctx, op, gk)
		if err != nil {
			return err
		}
		if rec == nil {
			return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
		}
		now := time.Now().UnixNano()
		ok, resp, err := c.txn(ctx, op, api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: gk, Value: rec.Value, Index: rec.ModifyIndex}},
			kvOp(api.KVCheckNotExists, mk),
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: mk, Session: c.session,
				Value: encodeMember(memberRecord{Capabilities: caps, Joined: now, Updated: now})}},
		})
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := c.lostIf(op, resp); err != nil {
			return err
		}
		if failedOp(resp) == 1 {
			return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, c.memberID)
		}
		// The record changed (another join) or went: read it again.
	}
}

// Leave deletes this member's key, whichever connection of the member
// joined (a twin with the same member ID may leave on its behalf):
// CodeNotMember, or CodeGroupNotFound when the group is absent too.
func (c *conn) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	gk, mk := c.keys.group(group), c.keys.member(group, c.memberID)
	ok, _, err := c.txn(ctx, op, api.TxnOps{kvOp(api.KVGet, mk), kvOp(api.KVDelete, mk)})
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	rec, err := c.get(ctx, op, gk)
	if err != nil {
		return err
	}
	if rec == nil {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
}

// Members lists the live members: CodeGroupNotFound.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	op := fmt.Sprintf("list members of %q", group)
	st, err := c.group(ctx, op, group)
	if err != nil {
		return nil, err
	}
	if st.record == nil {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return st.members, nil
}

// UpdateCapabilities rewrites this member's record with the session
// (keeping the key, so its incarnation and join time), only if the record
// did not change in between.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("update capabilities in %q", group)
	gk, mk := c.keys.group(group), c.keys.member(group, c.memberID)
	for {
		p, err := c.get(ctx, op, mk)
		if err != nil {
			return err
		}
		if p == nil || p.Session != c.session {
			rec, err := c.get(ctx, op, gk)
			if err != nil {
				return err
			}
			if rec == nil {
				return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
			}
			return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
		}
		var r memberRecord
		_ = msgpack.Unmarshal(p.Value, &r) // a damaged record is rewritten whole
		r.Capabilities = caps
		r.Updated = time.Now().UnixNano()
		if r.Joined == 0 {
			r.Joined = r.Updated
		}
		ok, resp, err := c.txn(ctx, op, api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: mk, Index: p.ModifyIndex}},
			{KV: &api.KVTxnOp{Verb: api.KVLock, Key: mk, Session: c.session, Value: encodeMember(r)}},
		})
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := c.lostIf(op, resp); err != nil {
			return err
		}
	}
}

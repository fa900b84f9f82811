package etcdgwbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// decodeMember turns a member key-value into a Member of group g (see
// etcdproto.DecodeMember; tooz's members in compat=tooz mode).
func (c *conn) decodeMember(g string, kv *keyValue) (driver.Member, bool) {
	if c.keys.tooz {
		return c.toozDecodeMember(g, kv, nil)
	}
	id, ok := c.keys.MemberOf(g, string(kv.Key))
	if !ok {
		return driver.Member{}, false
	}
	return etcdproto.DecodeMember(id, kv.CreateRevision, kv.Value), true
}

// groupExists compares true when the group record key exists.
func groupExists(key string) compare { return cmpCreate(key, "GREATER", 0, false) }

// countOf is a failure branch that counts key (0 or 1).
func countOf(key string) []requestOp {
	return []requestOp{{Range: &rangeRequest{Key: []byte(key), CountOnly: true}}}
}

// countIn returns the count of the first response of a failed txn.
func countIn(resp *txnResponse) int64 {
	if len(resp.Responses) == 0 {
		return 0
	}
	return resp.Responses[0].rangeOf().Count
}

// CreateGroup writes the group record if absent: CodeGroupExists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	gk := c.keys.Group(group)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(gk, "EQUAL", 0, false)},
		Success: []requestOp{{Put: &putRequest{Key: []byte(gk), Value: c.groupRecord(gk)}}},
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return driver.Errorf(driver.CodeGroupExists, "%s: exists", op)
	}
	return nil
}

// DeleteGroup deletes the group record in one transaction that also
// requires the members prefix to be empty (a compare over the whole
// prefix), so a concurrent Join either lands first (and the delete is
// refused) or fails with CodeGroupNotFound. Members whose lease expired
// are already gone from etcd and do not count.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("delete group %q", group)
	gk, mp := c.keys.Group(group), c.keys.MembersPrefix(group)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{groupExists(gk), c.noMembers(mp)},
		Success: []requestOp{{Delete: &deleteRequest{Key: []byte(gk)}}},
		Failure: countOf(gk),
	})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	if countIn(resp) == 0 {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return driver.Errorf(driver.CodeGroupNotEmpty, "%s: it has members", op)
}

// Groups lists the group records (reading keys only).
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	pfx := c.keys.GroupsPrefix()
	resp, err := c.rng(ctx, "list groups", &rangeRequest{Key: []byte(pfx), RangeEnd: prefixEnd(pfx), KeysOnly: true})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range resp.Kvs {
		if g, ok := c.keys.GroupOf(string(kv.Key)); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Join writes this member's key on the session lease, if the group
// exists and the member key does not, in one transaction.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("join group %q", group)
	if c.keys.tooz {
		return c.toozJoin(ctx, op, group, caps)
	}
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	now := time.Now().UnixNano()
	val := etcdproto.EncodeMember(etcdproto.MemberRecord{Capabilities: caps, Joined: now, Updated: now})
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{groupExists(gk), cmpCreate(mk, "EQUAL", 0, false)},
		Success: []requestOp{{Put: &putRequest{Key: []byte(mk), Value: val, Lease: c.lease}}},
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

// Leave deletes this member's key: CodeNotMember when absent,
// CodeGroupNotFound when the group is absent too.
func (c *conn) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	if c.keys.tooz {
		return c.toozLeave(ctx, op, group)
	}
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(mk, "GREATER", 0, false)},
		Success: []requestOp{{Delete: &deleteRequest{Key: []byte(mk)}}},
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

// members reads group g's record and members at one revision.
func (c *conn) members(ctx context.Context, op, g string) ([]driver.Member, bool, int64, error) {
	if c.keys.tooz {
		return c.toozMembers(ctx, op, g)
	}
	gk := c.keys.Group(g)
	resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(gk), RangeEnd: prefixEnd(gk)})
	if err != nil {
		return nil, false, 0, err
	}
	exists := false
	var ms []driver.Member
	for _, kv := range resp.Kvs {
		if string(kv.Key) == gk {
			exists = true
			continue
		}
		if m, ok := c.decodeMember(g, kv); ok {
			ms = append(ms, m)
		}
	}
	return ms, exists, resp.Header.Revision, nil
}

// Members lists the live members: CodeGroupNotFound.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	op := fmt.Sprintf("list members of %q", group)
	ms, exists, _, err := c.members(ctx, op, group)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return ms, nil
}

// UpdateCapabilities rewrites this member's record, keeping its lease and
// join time, only if the record did not change in between.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	op := fmt.Sprintf("update capabilities in %q", group)
	if c.keys.tooz {
		return c.toozUpdate(ctx, op, group, caps)
	}
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	for {
		resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(mk)})
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			g, err := c.rng(ctx, op, &rangeRequest{Key: []byte(gk), CountOnly: true})
			if err != nil {
				return err
			}
			if g.Count == 0 {
				return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
			}
			return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
		}
		kv := resp.Kvs[0]
		var r etcdproto.MemberRecord
		_ = json.Unmarshal(kv.Value, &r) // a damaged record is rewritten whole
		r.Capabilities = caps
		r.Updated = time.Now().UnixNano()
		if r.Joined == 0 {
			r.Joined = r.Updated
		}
		tx, err := c.txn(ctx, op, &txnRequest{
			Compare: []compare{cmpMod(mk, "EQUAL", kv.ModRevision)},
			Success: []requestOp{{Put: &putRequest{Key: []byte(mk), Value: etcdproto.EncodeMember(r), IgnoreLease: true}}},
		})
		if err != nil {
			return err
		}
		if tx.Succeeded {
			return nil
		}
	}
}

package etcdbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// decodeMember turns a member key-value into a Member of group g (see
// etcdproto.DecodeMember).
func (c *conn) decodeMember(g string, kv *mvccpb.KeyValue) (driver.Member, bool) {
	id, ok := c.keys.MemberOf(g, string(kv.Key))
	if !ok {
		return driver.Member{}, false
	}
	return etcdproto.DecodeMember(id, kv.CreateRevision, kv.Value), true
}

// groupExists compares true when the group record key exists.
func groupExists(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
}

// CreateGroup writes the group record if absent: CodeGroupExists.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	op := fmt.Sprintf("create group %q", group)
	gk := c.keys.Group(group)
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(gk), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(gk, "")}, nil)
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
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{
			groupExists(gk),
			clientv3.Compare(clientv3.CreateRevision(mp), "=", 0).WithPrefix(),
		},
		[]clientv3.Op{clientv3.OpDelete(gk)},
		[]clientv3.Op{clientv3.OpGet(gk, clientv3.WithCountOnly())})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	return driver.Errorf(driver.CodeGroupNotEmpty, "%s: it has members", op)
}

// Groups lists the group records (reading keys only).
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	resp, err := c.get(ctx, "list groups", c.keys.GroupsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
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
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	now := time.Now().UnixNano()
	val := string(etcdproto.EncodeMember(etcdproto.MemberRecord{Capabilities: caps, Joined: now, Updated: now}))
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{groupExists(gk), clientv3.Compare(clientv3.CreateRevision(mk), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(mk, val, clientv3.WithLease(c.lease))},
		[]clientv3.Op{clientv3.OpGet(gk, clientv3.WithCountOnly())})
	if err != nil {
		return err
	}
	switch {
	case resp.Succeeded:
		return nil
	case resp.Responses[0].GetResponseRange().Count == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	default:
		return driver.Errorf(driver.CodeMemberExists, "%s: %q is already a member", op, c.memberID)
	}
}

// Leave deletes this member's key: CodeNotMember when absent,
// CodeGroupNotFound when the group is absent too.
func (c *conn) Leave(ctx context.Context, group string) error {
	op := fmt.Sprintf("leave group %q", group)
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(mk), ">", 0)},
		[]clientv3.Op{clientv3.OpDelete(mk)},
		[]clientv3.Op{clientv3.OpGet(gk, clientv3.WithCountOnly())})
	if err != nil {
		return err
	}
	switch {
	case resp.Succeeded:
		return nil
	case resp.Responses[0].GetResponseRange().Count == 0:
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	default:
		return driver.Errorf(driver.CodeNotMember, "%s: %q is not a member", op, c.memberID)
	}
}

// members reads group g's record and members at one revision.
func (c *conn) members(ctx context.Context, op, g string) ([]driver.Member, bool, int64, error) {
	resp, err := c.get(ctx, op, c.keys.Group(g), clientv3.WithPrefix())
	if err != nil {
		return nil, false, 0, err
	}
	gk := c.keys.Group(g)
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
	gk, mk := c.keys.Group(group), c.keys.Member(group, c.memberID)
	for {
		resp, err := c.get(ctx, op, mk)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			g, err := c.get(ctx, op, gk, clientv3.WithCountOnly())
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
		tx, err := c.txn(ctx, op,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(mk), "=", kv.ModRevision)},
			[]clientv3.Op{clientv3.OpPut(mk, string(etcdproto.EncodeMember(r)), clientv3.WithIgnoreLease())}, nil)
		if err != nil {
			return err
		}
		if tx.Succeeded {
			return nil
		}
	}
}

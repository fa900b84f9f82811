package redisbackend

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// CreateGroup creates the group hash (with its version field) and adds the
// group to the list of groups, in one script.
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	n, _, err := c.evalInt(ctx, c.sc.createGroup, []string{c.ks.groups(), c.ks.group(group)}, group, newNonce())
	if err != nil {
		return err
	}
	if n == 0 {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", group)
	}
	return nil
}

// DeleteGroup prunes the members whose liveness key is gone and deletes
// the group when no live member is left, in one script.
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	n, retried, err := c.evalInt(ctx, c.sc.deleteGroup, []string{c.ks.groups(), c.ks.group(group)},
		group, c.ks.sessionPrefix(), c.ks.groupChannel(group))
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

// Groups lists the groups.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	var gs []string
	_, err := c.do(ctx, func(ctx context.Context) error {
		var err error
		gs, err = c.rdb.HKeys(ctx, c.ks.groups()).Result()
		return err
	})
	return gs, err
}

// Join adds this member's record (session, a new incarnation, times,
// capabilities) to the group. A record of the same member ID whose
// session is dead is replaced; a live one is CodeMemberExists.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	now := time.Now()
	rec := encodeRecord(c.sid, newID(), now, now, caps)
	n, _, err := c.evalInt(ctx, c.sc.join, []string{c.ks.group(group), c.sessKey},
		c.ks.sessionPrefix(), c.ks.groupChannel(group), c.member, rec)
	if err != nil {
		return err
	}
	switch n {
	case -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case -2:
		return driver.Errorf(driver.CodeMemberExists, "member %q has joined group %q already", c.member, group)
	case -4:
		return driver.Errorf(driver.CodeLost, "liveness key of session %s is gone", c.sid)
	}
	c.mu.Lock()
	c.joined[group] = struct{}{}
	c.mu.Unlock()
	return nil
}

// Leave removes this member's record from the group.
func (c *conn) Leave(ctx context.Context, group string) error {
	n, retried, err := c.evalInt(ctx, c.sc.leave, []string{c.ks.group(group)}, c.ks.groupChannel(group), c.member)
	if err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.joined, group)
	c.mu.Unlock()
	switch {
	case n == 1 || retried:
		return nil
	case n == -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	return driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", c.member, group)
}

// UpdateCapabilities replaces this member's capabilities and updated time.
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	n, _, err := c.evalInt(ctx, c.sc.update, []string{c.ks.group(group)},
		c.ks.groupChannel(group), c.member, stamp(time.Now()), string(caps))
	if err != nil {
		return err
	}
	switch n {
	case -1:
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case -2:
		return driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", c.member, group)
	}
	return nil
}

// Members prunes the dead members and lists the live ones.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	l, err := c.listMembers(ctx, group, true)
	return l.members, err
}

// listing is the result of the members script.
type listing struct {
	version int64
	minTTL  time.Duration // earliest expiry of a live member; negative when none
	members []driver.Member
}

// listMembers runs the members script: it prunes the group's dead members
// (publishing their departure) and returns the group's version, the
// earliest expiry among the live members and, when list is set, the live
// members.
func (c *conn) listMembers(ctx context.Context, group string, list bool) (listing, error) {
	flag := "0"
	if list {
		flag = "1"
	}
	res, _, err := c.eval(ctx, c.sc.members, []string{c.ks.group(group)}, c.ks.sessionPrefix(), c.ks.groupChannel(group), flag)
	if err != nil {
		return listing{}, err
	}
	if n, ok := res.(int64); ok && n == -1 {
		return listing{}, driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return listing{}, driver.Errorf(driver.CodeInternal, "unexpected members reply %v", res)
	}
	var l listing
	vs, _ := arr[0].(string)
	if l.version, err = strconv.ParseInt(vs, 10, 64); err != nil {
		return listing{}, driver.Errorf(driver.CodeInternal, "group %q: malformed version %q", group, vs)
	}
	p, _ := arr[1].(int64)
	l.minTTL = time.Duration(p) * time.Millisecond
	if !list {
		return l, nil
	}
	var flat []any
	if len(arr) > 2 {
		flat, _ = arr[2].([]any)
	}
	l.members = make([]driver.Member, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		f, _ := flat[i].(string)
		rec, _ := flat[i+1].(string)
		m, err := decodeRecord(strings.TrimPrefix(f, "m:"), rec)
		if err != nil {
			return listing{}, driver.Errorf(driver.CodeInternal, "group %q: %v", group, err)
		}
		l.members = append(l.members, m)
	}
	return l, nil
}

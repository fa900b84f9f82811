package zkbackend

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// maxVersionRetries bounds the read-then-write loops that lose a race on
// a znode version (only an outside writer can make them loop).
const maxVersionRetries = 16

// CreateGroup creates the group's persistent znode. CodeGroupExists when
// it exists (also when this very call created it but its reply was lost
// and the retry found the node).
func (c *conn) CreateGroup(ctx context.Context, group string) error {
	path := c.groupPath(group)
	err := c.call(ctx, func() error {
		return c.retry(ctx, func() error {
			_, err := c.zk.Create(path, nil, zk.FlagPersistent, c.acl)
			if errors.Is(err, zk.ErrNoNode) { // the groups directory was removed
				if err := c.ensureDir(c.groupsPath()); err != nil {
					return err
				}
				_, err = c.zk.Create(path, nil, zk.FlagPersistent, c.acl)
			}
			return err
		})
	})
	if errors.Is(err, zk.ErrNodeExists) {
		return driver.Errorf(driver.CodeGroupExists, "group %q exists", group)
	}
	return c.classify(err)
}

// ensureDir creates a directory of the layout (and its parents) when a
// tool removed it.
func (c *conn) ensureDir(path string) error {
	for _, p := range []string{c.s.root, path} {
		if _, err := c.zk.Create(p, nil, zk.FlagPersistent, c.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// DeleteGroup deletes the group's znode, which ZooKeeper refuses while it
// has children: live members (the ephemeral nodes of expired sessions are
// gone with their sessions).
func (c *conn) DeleteGroup(ctx context.Context, group string) error {
	path := c.groupPath(group)
	err := c.call(ctx, func() error {
		ambiguous := false
		return c.retry(ctx, func() error {
			c.deleteLeaderDir(path)
			err := c.zk.Delete(path, -1)
			if transient(err) {
				ambiguous = true
			}
			if errors.Is(err, zk.ErrNoNode) && ambiguous {
				return nil // deleted by the attempt whose reply was lost
			}
			return err
		})
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	case errors.Is(err, zk.ErrNotEmpty):
		return driver.Errorf(driver.CodeGroupNotEmpty, "group %q has members", group)
	}
	return c.classify(err)
}

// Groups lists the group znodes; names that are not baton's encoding
// (nodes a tool put there) are skipped.
func (c *conn) Groups(ctx context.Context) ([]string, error) {
	names, err := run(c, ctx, func() ([]string, error) {
		if err := c.sync(ctx); err != nil {
			return nil, err
		}
		var names []string
		err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(c.groupsPath()); return err })
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		return names, err
	}, nil, nil)
	if err != nil {
		return nil, c.classify(err)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if g, ok := c.decodeName(n); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Join creates this member's ephemeral znode in the group, holding the
// capabilities. When ctx ends before the server answered, the znode is
// deleted again as soon as the answer arrives.
func (c *conn) Join(ctx context.Context, group string, caps []byte) error {
	path := c.memberPath(group, c.member)
	unlock, err := c.groups.lock(ctx, group)
	if err != nil {
		return c.classify(err)
	}
	_, err = run(c, ctx, func() (struct{}, error) { return struct{}{}, c.join(ctx, group, path, c.capsOut(caps)) },
		func(struct{}) { c.deleteOwn(path) }, unlock)
	return c.classify(err)
}

// join is Join's body.
func (c *conn) join(ctx context.Context, group, path string, caps []byte) error {
	ambiguous := false
	for n := 1; ; n++ {
		_, err := c.zk.Create(path, caps, zk.FlagEphemeral, c.acl)
		switch {
		case err == nil:
			return nil
		case transient(err):
			ambiguous = true
			if !c.s.cmd.allows(n) || c.pause(ctx, c.s.cmd.wait(n)) != nil {
				return err
			}
		case errors.Is(err, zk.ErrNoNode):
			return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
		case errors.Is(err, zk.ErrNodeExists):
			var ok bool
			var st *zk.Stat
			err := c.retry(ctx, func() (err error) { ok, st, err = c.zk.Exists(path); return err })
			switch {
			case err != nil:
				return err
			case !ok && n < maxVersionRetries:
				continue // it left meanwhile: try again
			case ok && ambiguous && st.EphemeralOwner == c.sess.sessionID():
				return nil // created by the attempt whose reply was lost
			}
			return driver.Errorf(driver.CodeMemberExists, "member %q has already joined group %q", c.member, group)
		default:
			return err
		}
	}
}

// deleteOwn deletes an ephemeral znode of this session, retrying until it
// is gone or the session ends. It is the undo of an abandoned Join.
func (c *conn) deleteOwn(path string) {
	for n := 1; c.check() == nil; n++ {
		err := c.zk.Delete(path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) || !transient(err) {
			return
		}
		t := time.NewTimer(c.s.cmd.wait(n))
		select {
		case <-t.C:
		case <-c.sess.end():
			t.Stop()
			return
		}
	}
}

// sync makes the server this connection reads from catch up with the
// leader, so that a read that follows sees every write completed before
// (by any client) — ZooKeeper serves reads from the connected server,
// which may lag. Reads that report other members' writes start with it.
func (c *conn) sync(ctx context.Context) error {
	return c.retry(ctx, func() error { _, err := c.zk.Sync(c.s.root); return err })
}

// absent returns the error for a member znode that does not exist:
// CodeGroupNotFound or CodeNotMember.
func (c *conn) absent(ctx context.Context, group string) error {
	var ok bool
	if err := c.sync(ctx); err != nil {
		return err
	}
	if err := c.retry(ctx, func() (err error) { ok, _, err = c.zk.Exists(c.groupPath(group)); return err }); err != nil {
		return err
	}
	if !ok {
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	return driver.Errorf(driver.CodeNotMember, "member %q has not joined group %q", c.member, group)
}

// Leave deletes this member's znode. The member is the member ID, not
// the connection: another connection with the same member ID may leave
// on its behalf (as in tooz).
//
// Once the session is lost, the member's znodes are gone with it, so
// Leave reports CodeNotMember.
func (c *conn) Leave(ctx context.Context, group string) error {
	err := c.writeMember(ctx, group, func(path string) error { return c.zk.Delete(path, -1) }, true)
	if codeOf(err) == driver.CodeLost {
		return driver.Errorf(driver.CodeNotMember, "member %q left group %q with its session: %w", c.member, group, err)
	}
	return err
}

// UpdateCapabilities replaces the data of this member's znode (whichever
// connection of the member ID created it).
func (c *conn) UpdateCapabilities(ctx context.Context, group string, caps []byte) error {
	return c.writeMember(ctx, group, func(path string) error { _, err := c.zk.Set(path, c.capsOut(caps), -1); return err }, false)
}

// writeMember runs write (a delete or a set of the member's znode) with
// retries. When the znode is missing it reports CodeGroupNotFound or
// CodeNotMember, except after an interrupted delete, which may have been
// applied.
func (c *conn) writeMember(ctx context.Context, group string, write func(path string) error, isDelete bool) error {
	path := c.memberPath(group, c.member)
	unlock, err := c.groups.lock(ctx, group)
	if err != nil {
		return c.classify(err)
	}
	_, err = run(c, ctx, func() (struct{}, error) {
		ambiguous := false
		err := c.retry(ctx, func() error {
			err := write(path)
			if transient(err) {
				ambiguous = true
			}
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			if ambiguous && isDelete {
				return struct{}{}, nil // deleted by the attempt whose reply was lost
			}
			return struct{}{}, c.absent(ctx, group)
		}
		return struct{}{}, err
	}, nil, unlock)
	return c.classify(err)
}

// Members lists the group's members: one request for the names, then one
// per member for its data and stat, all in flight at once.
func (c *conn) Members(ctx context.Context, group string) ([]driver.Member, error) {
	out, err := run(c, ctx, func() ([]driver.Member, error) { return c.members(ctx, group) }, nil, nil)
	return out, c.classify(err)
}

// members is Members' body, for callers already inside do.
func (c *conn) members(ctx context.Context, group string) ([]driver.Member, error) {
	path := c.groupPath(group)
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	var names []string
	err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(path); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return nil, driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", group)
	}
	if err != nil {
		return nil, err
	}
	ms := make([]driver.Member, len(names))
	found := make([]bool, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, name := range names {
		id, ok := c.decodeName(name)
		if !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var data []byte
			var st *zk.Stat
			err := c.retry(ctx, func() (err error) { data, st, err = c.zk.Get(path + "/" + name); return err })
			switch {
			case errors.Is(err, zk.ErrNoNode): // left meanwhile
			case err != nil:
				errs[i] = err
			default:
				ms[i], found[i] = c.memberOf(id, data, st), true
			}
		}()
	}
	wg.Wait()
	out := make([]driver.Member, 0, len(names))
	for i := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if found[i] {
			out = append(out, ms[i])
		}
	}
	return out, nil
}

// memberOf builds a Member from its znode: the incarnation is the
// znode's creation zxid (unique per join), the times its ctime and mtime.
func memberOf(id string, data []byte, st *zk.Stat) driver.Member {
	if len(data) == 0 {
		data = nil
	}
	return driver.Member{
		ID: id, Capabilities: data, Incarnation: strconv.FormatInt(st.Czxid, 10),
		JoinedAt: time.UnixMilli(st.Ctime), UpdatedAt: time.UnixMilli(st.Mtime),
	}
}

// codeOf returns err's driver code, CodeInternal when it has none.
func codeOf(err error) driver.Code {
	code, _ := driver.CodeOf(err)
	return code
}

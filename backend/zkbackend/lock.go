package zkbackend

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// Locks follow ZooKeeper's lock recipe, with Curator's read/write
// variant for shared locks: a request is an ephemeral-sequential znode in
// the key's directory; an exclusive request holds the lock when it is
// first in sequence order, a shared one when no exclusive request is
// before it. A waiter watches only the request it waits for, so a release
// wakes one waiter, not all. A request is created with a multi that also
// touches the directory's data, whose returned stat tells whether the
// request is alone (then it holds the lock: an uncontended acquisition is
// one round trip) and carries the transaction's zxid.
//
// The fencing token is the request znode's creation zxid (czxid):
// ZooKeeper's transaction IDs are global and increase with every write,
// across leader elections and restarts, so the token of a grant is above
// every earlier grant's even when the directory was deleted and created
// again in between (the sequence number would start over).

// TryLock takes the exclusive lock if nobody holds or waits for it.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, false)
}

// TryLockShared takes the lock shared if no exclusive request is queued
// before this one.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, true)
}

// tryLock creates a request and withdraws it unless it holds the lock.
// An uncontended acquisition is one round trip (the request is alone in
// its directory).
func (c *conn) tryLock(ctx context.Context, req driver.LockRequest, shared bool) (driver.Lease, bool, error) {
	dir := c.lockPath(req.Key)
	type attempt struct {
		r       request
		granted bool
	}
	a, err := run(c, ctx, func() (attempt, error) {
		r, err := c.createRequest(ctx, dir, shared, req.Member)
		if err != nil {
			return attempt{}, err
		}
		if r.alone {
			return attempt{r: r, granted: true}, nil
		}
		q, me, err := c.inspect(ctx, dir, r.path)
		if err != nil {
			c.jan.remove(r.path)
			return attempt{}, err
		}
		if me < 0 {
			return attempt{}, nil // deleted meanwhile (broken): not granted
		}
		if _, blocked := blocker(q, me); blocked {
			if err := c.zk.Delete(r.path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				c.jan.remove(r.path)
			}
			return attempt{}, nil
		}
		if !shared {
			// Created behind another request, now first: confirm it, as
			// WaitLock does, so that no waiter takes it for a dead
			// candidate's.
			ok, err := c.confirm(ctx, r.path, req.Member)
			if err != nil || !ok {
				if err != nil {
					c.jan.remove(r.path)
				}
				return attempt{}, err
			}
		}
		return attempt{r: r, granted: true}, nil
	}, func(a attempt) {
		if a.granted {
			c.jan.remove(a.r.path)
		}
	}, nil)
	if err != nil {
		return driver.Lease{}, false, c.classify(err)
	}
	if !a.granted {
		return driver.Lease{}, false, nil
	}
	return c.grant(req.Key, a.r.token, a.r.path)
}

// grant records a granted request; it fails (withdrawing the request)
// when the session ended meanwhile.
func (c *conn) grant(key string, token uint64, path string) (driver.Lease, bool, error) {
	if err := c.check(); err != nil {
		return driver.Lease{}, false, err
	}
	c.mu.Lock()
	c.grants[grantID{key: key, token: token}] = path
	c.mu.Unlock()
	return driver.Lease{Token: token}, true, nil
}

// request is a created lock request.
type request struct {
	path  string
	token uint64 // the znode's czxid
	alone bool   // it was the only request in the directory when created
}

// createRequest creates a lock request znode in one round trip: a multi
// that creates it and touches the directory's data, whose returned stat
// gives the transaction's zxid (the new znode's czxid, the fencing token)
// and the directory's child count (1: the request holds the lock without
// listing the queue). It creates the key's directory when missing, and
// when the reply was lost it finds the znode by its random name.
func (c *conn) createRequest(ctx context.Context, dir string, shared bool, member string) (request, error) {
	prefix, err := c.newLockNodePrefix(shared)
	if err != nil {
		return request{}, err
	}
	for n := 1; ; n++ {
		res, err := c.zk.Multi(
			&zk.CreateRequest{Path: dir + "/" + prefix, Data: []byte(member), Acl: c.acl, Flags: zk.FlagEphemeralSequential},
			&zk.SetDataRequest{Path: dir, Version: -1},
		)
		if err == nil && len(res) == 2 && res[1].Stat != nil {
			return request{path: res[0].String, token: uint64(res[1].Stat.Mzxid), alone: res[1].Stat.NumChildren == 1}, nil
		}
		if err == nil {
			err = errors.New("malformed multi reply")
		}
		switch {
		case errors.Is(err, zk.ErrNoNode) && n < maxVersionRetries:
			if err := c.createLockDir(dir); err != nil {
				return request{}, err
			}
		case transient(err):
			if r, found, ferr := c.findRequest(ctx, dir, prefix); ferr != nil || found {
				return r, ferr
			}
			if !c.s.cmd.allows(n) || c.pause(ctx, c.s.cmd.wait(n)) != nil {
				return request{}, err
			}
		default:
			return request{}, err
		}
	}
}

// findRequest looks for the request named prefix whose creation reply was
// lost, and reads its token.
func (c *conn) findRequest(ctx context.Context, dir, prefix string) (request, bool, error) {
	var names []string
	err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(dir); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return request{}, false, nil
	}
	if err != nil {
		return request{}, false, err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		path := dir + "/" + name
		var ok bool
		var st *zk.Stat
		if err := c.retry(ctx, func() (err error) { ok, st, err = c.zk.Exists(path); return err }); err != nil {
			return request{}, false, err
		}
		if !ok {
			return request{}, false, nil
		}
		return request{path: path, token: uint64(st.Czxid)}, true, nil
	}
	return request{}, false, nil
}

// createLockDir creates a key's directory as a container znode, which
// the server deletes once it is empty (so idle keys leave no garbage and
// sequence numbers start over), or as a persistent znode on servers
// older than 3.5.
func (c *conn) createLockDir(dir string) error {
	if c.s.tooz {
		return c.ensurePath(dir) // kazoo's ensure_path: persistent, with parents
	}
	_, err := c.zk.CreateContainer(dir, nil, zk.FlagContainer, c.acl)
	switch {
	case err == nil, errors.Is(err, zk.ErrNodeExists):
		return nil
	case errors.Is(err, zk.ErrNoNode):
		if err := c.ensureDir(c.locksPath()); err != nil {
			return err
		}
		return c.createLockDir(dir)
	case transient(err):
		return err
	}
	_, err = c.zk.Create(dir, nil, zk.FlagPersistent, c.acl)
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// inspect reads the queue of dir. me is the index of the request at
// path, -1 when it is gone.
func (c *conn) inspect(ctx context.Context, dir, path string) (q []lockNode, me int, err error) {
	var names []string
	err = c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(dir); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return nil, -1, nil
	}
	if err != nil {
		return nil, -1, err
	}
	q = sortLockNodes(names)
	name := path[strings.LastIndexByte(path, '/')+1:]
	for i, n := range q {
		if n.name == name {
			return q, i, nil
		}
	}
	return q, -1, nil
}

// Unlock deletes the grant's request znode. CodeNotHeld when this
// connection holds no such grant or the znode is gone (session lost,
// lock broken). When the deletion cannot complete (connection down,
// ctx ended) it is retried in the background until the session ends.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	id := grantID{key: key, token: token}
	c.mu.Lock()
	path, ok := c.grants[id]
	delete(c.grants, id)
	c.mu.Unlock()
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "lock %q: no grant with token %d on this connection", key, token)
	}
	if err := c.check(); codeOf(err) == driver.CodeLost {
		return driver.Errorf(driver.CodeNotHeld, "lock %q: the grant with token %d ended with the session: %w", key, token, err)
	}
	err := c.call(ctx, func() error {
		ambiguous := false
		return c.retry(ctx, func() error {
			err := c.zk.Delete(path, -1)
			if transient(err) {
				ambiguous = true
			}
			if errors.Is(err, zk.ErrNoNode) && ambiguous {
				return nil
			}
			return err
		})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return driver.Errorf(driver.CodeNotHeld, "lock %q: the grant with token %d was lost (session expired or lock broken)", key, token)
	}
	err = c.classify(err)
	if codeOf(err) == driver.CodeLost {
		return driver.Errorf(driver.CodeNotHeld, "lock %q: the grant with token %d ended with the session: %w", key, token, err)
	}
	c.jan.remove(path)
	return err
}

// RefreshLock checks that the grant still holds: locks live as long as
// the session, so there is nothing to extend (the backend never calls it
// for leases with TTL 0).
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	c.mu.Lock()
	path, ok := c.grants[grantID{key: key, token: token}]
	c.mu.Unlock()
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "lock %q: no grant with token %d on this connection", key, token)
	}
	exists, err := run(c, ctx, func() (exists bool, err error) {
		err = c.retry(ctx, func() (err error) { exists, _, err = c.zk.Exists(path); return err })
		return exists, err
	}, nil, nil)
	if err != nil {
		return c.classify(err)
	}
	if !exists {
		return driver.Errorf(driver.CodeNotHeld, "lock %q: the grant with token %d was lost", key, token)
	}
	return nil
}

// Holder reports the first holder in queue order: its member ID (the
// znode's data) and token (its czxid). CodeNotFound when free.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	type holding struct {
		h    driver.Holder
		held bool
	}
	hh, err := run(c, ctx, func() (holding, error) {
		h, held, _, err := c.holder(ctx, c.lockPath(key))
		return holding{h: h, held: held}, err
	}, nil, nil)
	if err != nil {
		return driver.Holder{}, c.classify(err)
	}
	h := hh.h
	if !hh.held {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	return h, nil
}

// holder reads the holder of the lock in dir; name is its request znode.
func (c *conn) holder(ctx context.Context, dir string) (h driver.Holder, held bool, name string, err error) {
	if err := c.sync(ctx); err != nil {
		return driver.Holder{}, false, "", err
	}
	for n := 1; ; n++ {
		var names []string
		err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(dir); return err })
		if errors.Is(err, zk.ErrNoNode) {
			return driver.Holder{}, false, "", nil
		}
		if err != nil {
			return driver.Holder{}, false, "", err
		}
		hs := holders(sortLockNodes(names))
		if len(hs) == 0 {
			return driver.Holder{}, false, "", nil
		}
		var data []byte
		var st *zk.Stat
		err = c.retry(ctx, func() (err error) { data, st, err = c.zk.Get(dir + "/" + hs[0].name); return err })
		switch {
		case err == nil:
			return driver.Holder{Member: string(data), Token: uint64(st.Czxid)}, true, hs[0].name, nil
		case !errors.Is(err, zk.ErrNoNode) || n >= maxVersionRetries:
			return driver.Holder{}, false, "", err
		}
	}
}

// BreakLock deletes the request znodes that hold the lock (one exclusive
// request, or every leading shared one). Their holders are not told; they
// find out when they release (CodeNotHeld).
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	dir := c.lockPath(key)
	broke, err := run(c, ctx, func() (bool, error) {
		if err := c.sync(ctx); err != nil {
			return false, err
		}
		var names []string
		err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(dir); return err })
		if errors.Is(err, zk.ErrNoNode) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		broke := false
		for _, n := range holders(sortLockNodes(names)) {
			err := c.retry(ctx, func() error { return c.zk.Delete(dir+"/"+n.name, -1) })
			switch {
			case err == nil:
				broke = true
			case !errors.Is(err, zk.ErrNoNode):
				return broke, err
			}
		}
		return broke, nil
	}, nil, nil)
	return broke, c.classify(err)
}

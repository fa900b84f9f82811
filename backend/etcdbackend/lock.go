package etcdbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend/driver"
)

// A lock is the set of entries under <ns>/locks/<lock>/, each a key on the
// session lease written by one attempt. The entry with the lowest create
// revision holds the lock; its create revision is the fencing token. Every
// later entry is a waiter that watches only the deletion of the entry just
// before it.

// TryLock takes lock req.Key in one transaction when nobody holds or waits
// for it: "if no key exists under the lock's prefix, write my entry". It
// writes nothing otherwise, so a failed attempt disturbs no waiter. The
// lease is bound to the session (Lease.TTL is 0); req.TTL is ignored.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	pfx := c.keys.lockPrefix(req.Key)
	e := c.newEntry(req.Key)
	resp, err := c.txn(ctx, fmt.Sprintf("try lock %q", req.Key),
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(pfx), "=", 0).WithPrefix()},
		[]clientv3.Op{clientv3.OpPut(e.key, req.Member, clientv3.WithLease(c.lease))},
		nil)
	if err != nil {
		c.orphan(e) // the transaction may have been applied
		return driver.Lease{}, false, err
	}
	if !resp.Succeeded {
		c.release(e) // nothing was written
		return driver.Lease{}, false, nil
	}
	token := uint64(resp.Header.Revision)
	c.remember(token, e)
	return driver.Lease{Token: token}, true, nil
}

// WaitLock queues for lock req.Key and blocks until its entry is the
// oldest, then returns the grant. It watches only the predecessor's
// deletion (no thundering herd). When ctx ends first it deletes its entry
// and returns ctx's error. Transient failures are retried while ctx lasts;
// the entry keeps its place in the queue meanwhile.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	pfx := c.keys.lockPrefix(req.Key)
	e := c.newEntry(req.Key)
	resp, err := c.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(e.key), "=", 0)},
		[]clientv3.Op{
			clientv3.OpPut(e.key, req.Member, clientv3.WithLease(c.lease)),
			clientv3.OpGet(pfx, clientv3.WithFirstCreate()...),
		}, nil)
	if err != nil {
		c.orphan(e)
		return driver.Lease{}, err
	}
	if !resp.Succeeded {
		// The slot's key exists although the slot was free: written by
		// nobody else (it carries this lease), so it is a leftover of
		// this connection. Leave it to Renew and report the conflict.
		c.orphan(e)
		return driver.Lease{}, driver.Errorf(driver.CodeUnavailable, "%s: entry %q exists already; retry", op, e.key)
	}
	rev := resp.Header.Revision
	first := resp.Responses[1].GetResponseRange().Kvs
	if len(first) == 0 || first[0].CreateRevision != rev {
		if err := c.waitPredecessors(ctx, op, pfx, rev); err != nil {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, err
		}
		// The entry must still exist: the lease may have been lost (or the
		// entry broken) while waiting.
		got, err := c.get(ctx, op, e.key, clientv3.WithKeysOnly())
		if err != nil {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, err
		}
		if len(got.Kvs) == 0 || got.Kvs[0].CreateRevision != rev {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, driver.Errorf(driver.CodeLost, "%s: the entry vanished while waiting (session lease lost or lock broken)", op)
		}
	}
	token := uint64(rev)
	c.remember(token, e)
	return driver.Lease{Token: token}, nil
}

// waitPredecessors returns when no entry older than rev is left under
// pfx, or with ctx's error.
func (c *conn) waitPredecessors(ctx context.Context, op, pfx string, rev int64) error {
	b := newBackoff()
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1), clientv3.WithKeysOnly())
	for {
		resp, err := c.get(ctx, op, pfx, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if !b.wait(ctx) {
				return classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if err := c.waitDelete(ctx, string(resp.Kvs[0].Key), resp.Header.Revision); err != nil {
			if ctx.Err() != nil {
				return classify(ctx, nil, op, err)
			}
			if !b.wait(ctx) {
				return classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		b.reset()
	}
}

// waitDelete returns nil once key is deleted after rev; an error when the
// watch broke (the caller re-reads and watches again).
func (c *conn) waitDelete(ctx context.Context, key string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range c.cli.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterPut()) {
		if err := wr.Err(); err != nil {
			if isCompacted(err) {
				return nil // re-read: the deletion may be what was compacted
			}
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch closed")
}

// Unlock deletes the grant's own entry. An entry key belongs to one
// attempt until it is known to be deleted (see entry), so deleting it by
// name can never release another grant. CodeNotHeld when the grant is unknown to this
// connection or its entry is gone (lease lost, lock broken). When the
// server cannot be reached the entry is deleted later, by Renew.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	op := fmt.Sprintf("unlock %q", key)
	e, ok := c.forget(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Delete(rctx, e.key)
	if err != nil {
		c.orphan(e)
		return classify(ctx, rctx, op, err)
	}
	c.release(e)
	if resp.Deleted == 0 {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
	}
	return nil
}

// RefreshLock is never called for session-bound grants; it reports
// whether the grant's entry still exists.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	op := fmt.Sprintf("refresh lock %q", key)
	e, ok := c.granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	resp, err := c.get(ctx, op, e.key, clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != int64(token) {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone", op, token)
	}
	return nil
}

// Holder reads the oldest entry of key: its member and create revision.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	op := fmt.Sprintf("holder of %q", key)
	resp, err := c.get(ctx, op, c.keys.lockPrefix(key), clientv3.WithFirstCreate()...)
	if err != nil {
		return driver.Holder{}, err
	}
	if len(resp.Kvs) == 0 {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	kv := resp.Kvs[0]
	return driver.Holder{Member: string(kv.Value), Token: uint64(kv.CreateRevision)}, nil
}

// BreakLock deletes the holder's entry, whoever holds it; the oldest
// waiter then holds the lock. It reports false when nobody held the lock,
// or when the holder it read released it before it could be broken. The
// former holder is not told: its Unlock reports CodeNotHeld.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("break lock %q", key)
	resp, err := c.get(ctx, op, c.keys.lockPrefix(key), append(clientv3.WithFirstCreate(), clientv3.WithKeysOnly())...)
	if err != nil {
		return false, err
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	kv := resp.Kvs[0]
	tx, err := c.txn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(string(kv.Key)), "=", kv.CreateRevision)},
		[]clientv3.Op{clientv3.OpDelete(string(kv.Key))}, nil)
	if err != nil {
		return false, err
	}
	return tx.Succeeded, nil
}

package etcdgwbackend

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// A lock is the set of entries under <ns>/locks/<lock>/, each a key on the
// session lease written by one attempt; exactly etcd3://'s layout, so
// members of both drivers queue on one lock. The entry with the lowest
// create revision holds the lock; its create revision is the fencing
// token. Every later entry is a waiter that watches only the deletion of
// the entry just before it.

// firstCreate reads the oldest key under pfx (clientv3.WithFirstCreate).
func firstCreate(pfx string, keysOnly bool) *rangeRequest {
	return &rangeRequest{Key: []byte(pfx), RangeEnd: prefixEnd(pfx), SortOrder: "ASCEND", SortTarget: "CREATE", Limit: 1, KeysOnly: keysOnly}
}

// TryLock takes lock req.Key in one transaction when nobody holds or waits
// for it: "if no key exists under the lock's prefix, write my entry". It
// writes nothing otherwise, so a failed attempt disturbs no waiter. The
// lease is bound to the session (Lease.TTL is 0); req.TTL is ignored.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if k, ok := c.keys.toozLock(req.Key); ok {
		return c.toozTryLock(ctx, req, k)
	}
	lease, ok, _, _, err := c.tryLock(ctx, fmt.Sprintf("try lock %q", req.Key), req)
	return lease, ok, err
}

// tryLock is TryLock's transaction. When the lock is taken it returns
// the key of the holder's entry (read by the transaction's failure
// branch, "" if none) and the revision it was read at.
func (c *conn) tryLock(ctx context.Context, op string, req driver.LockRequest) (lease driver.Lease, ok bool, holder string, rev int64, err error) {
	pfx := c.keys.LockPrefix(req.Key)
	e := c.newEntry(req.Key)
	resp, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(pfx, "EQUAL", 0, true)},
		Success: []requestOp{{Put: &putRequest{Key: []byte(e.Key), Value: []byte(req.Member), Lease: c.lease}}},
		Failure: []requestOp{{Range: firstCreate(pfx, true)}},
	})
	if err != nil {
		c.entries.Orphan(e) // the transaction may have been applied
		return driver.Lease{}, false, "", 0, err
	}
	if !resp.Succeeded {
		c.entries.Release(e) // nothing was written
		if len(resp.Responses) > 0 {
			if kvs := resp.Responses[0].rangeOf().Kvs; len(kvs) > 0 {
				holder = string(kvs[0].Key)
			}
		}
		return driver.Lease{}, false, holder, resp.Header.Revision, nil
	}
	token := uint64(resp.Header.Revision)
	c.entries.Remember(token, e)
	return driver.Lease{Token: token}, true, "", 0, nil
}

// WaitLock queues for lock req.Key and blocks until its entry is the
// oldest, then returns the grant. It watches only the predecessor's
// deletion (no thundering herd). When ctx ends first it deletes its entry
// and returns ctx's error. Transient failures are retried while ctx lasts;
// the entry keeps its place in the queue meanwhile.
//
// An entry written behind another one holds the lock only once its owner,
// having seen every older entry gone, confirms it by writing it again
// (version 2) in a transaction that checks it still exists: the protocol
// of etcd3:// (backend/etcdbackend), whose waiters delete an entry left
// unconfirmed for their handover window as a dead candidate's. Members of
// both drivers queue for the same locks, so this one confirms too; an
// entry skipped that way, or broken, while its owner was slow queues
// again, unless the session lease is gone.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if k, ok := c.keys.toozLock(req.Key); ok {
		return c.toozWaitLock(ctx, req, k)
	}
	if req.Unordered {
		return c.raceLock(ctx, req)
	}
	op := fmt.Sprintf("wait for lock %q", req.Key)
	pfx := c.keys.LockPrefix(req.Key)
	for {
		e := c.newEntry(req.Key)
		resp, err := c.txn(ctx, op, &txnRequest{
			Compare: []compare{cmpCreate(e.Key, "EQUAL", 0, false)},
			Success: []requestOp{
				{Put: &putRequest{Key: []byte(e.Key), Value: []byte(req.Member), Lease: c.lease}},
				{Range: firstCreate(pfx, false)},
			},
		})
		if err != nil {
			c.entries.Orphan(e)
			return driver.Lease{}, err
		}
		if !resp.Succeeded {
			// The slot's key exists although the slot was free: written by
			// nobody else (it carries this lease), so it is a leftover of
			// this connection. Leave it to Renew and report the conflict.
			c.entries.Orphan(e)
			return driver.Lease{}, driver.Errorf(driver.CodeUnavailable, "%s: entry %q exists already; retry", op, e.Key)
		}
		rev := resp.Header.Revision
		var first []*keyValue
		if len(resp.Responses) > 1 {
			first = resp.Responses[1].rangeOf().Kvs
		}
		if len(first) > 0 && first[0].CreateRevision == rev {
			// First at creation: it holds the lock at once (no waiter can
			// ever have seen an entry older than it).
			token := uint64(rev)
			c.entries.Remember(token, e)
			return driver.Lease{Token: token}, nil
		}
		if err := c.waitPredecessors(ctx, op, pfx, rev); err != nil {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, err
		}
		// Confirm: the entry must still exist (the lease may have been
		// lost, the lock broken, or the entry skipped as a dead
		// candidate's while this member was slow).
		tx, err := c.txn(ctx, op, &txnRequest{
			Compare: []compare{cmpCreate(e.Key, "EQUAL", rev, false)},
			Success: []requestOp{{Put: &putRequest{Key: []byte(e.Key), Value: []byte(req.Member), Lease: c.lease}}},
		})
		if err != nil {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, err
		}
		if tx.Succeeded {
			token := uint64(rev)
			c.entries.Remember(token, e)
			return driver.Lease{Token: token}, nil
		}
		c.entries.Release(e)
		got, err := c.rng(ctx, op, &rangeRequest{Key: []byte(c.keys.Session(c.lease)), CountOnly: true})
		if err != nil {
			return driver.Lease{}, err
		}
		if got.Count == 0 {
			return driver.Lease{}, driver.Errorf(driver.CodeLost, "%s: the entry vanished while waiting: session lease %x lost", op, c.lease)
		}
		c.log.Debug("lock entry was skipped or broken before it was confirmed; queuing again", zap.String("lock", req.Key))
	}
}

// raceLock takes lock req.Key without queuing (req.Unordered, as
// Campaign asks), as etcd3:// does: TryLock's transaction, whose failure
// branch reads the holder's entry; while the lock is held, a watch of
// that entry's deletion, then another try. A losing try writes nothing,
// so a candidate killed while waiting leaves nothing on the server, and a
// release hands over within one round trip of its notification.
func (c *conn) raceLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	b := c.newBackoff()
	for {
		lease, ok, holder, rev, err := c.tryLock(ctx, op, req)
		if err != nil || ok {
			return lease, err
		}
		if holder == "" {
			continue
		}
		if err := c.waitDelete(ctx, holder, rev, b); err != nil {
			if ctx.Err() != nil {
				return driver.Lease{}, classify(ctx, nil, op, err)
			}
			if !b.wait(ctx) {
				return driver.Lease{}, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		b.reset()
	}
}

// waitPredecessors returns when no entry older than rev is left under
// pfx, or with ctx's error.
func (c *conn) waitPredecessors(ctx context.Context, op, pfx string, rev int64) error {
	b := c.newBackoff()
	last := &rangeRequest{
		Key: []byte(pfx), RangeEnd: prefixEnd(pfx), SortOrder: "DESCEND", SortTarget: "CREATE", Limit: 1,
		KeysOnly: true, MaxCreateRevision: rev - 1,
	}
	for {
		resp, err := c.rng(ctx, op, last)
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
		if err := c.waitDelete(ctx, string(resp.Kvs[0].Key), resp.Header.Revision, b); err != nil {
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

// waitDelete returns nil once key is deleted after rev (or when the
// revisions in between were compacted: the caller re-reads); an error
// when the stream broke (the caller re-reads and watches again).
func (c *conn) waitDelete(ctx context.Context, key string, rev int64, b *backoff) error {
	deleted := false
	create := watchCreateRequest{Key: []byte(key), Filters: []string{"NOPUT"}}
	_, _, err := c.watchOnce(ctx, create, rev, func(evs []*event) bool {
		for _, ev := range evs {
			if ev.isDelete() {
				deleted = true
				return true
			}
		}
		return false
	}, b)
	if deleted || errorsIsCompacted(err) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("watch of %q ended", key)
	}
	return err
}

// Unlock deletes the grant's own entry. An entry key belongs to one
// attempt until it is known to be deleted (see etcdproto.Entry), so
// deleting it by name can never release another grant. CodeNotHeld when
// the grant is unknown to this connection or its entry is gone (lease
// lost, lock broken). When the server cannot be reached the entry is
// deleted later, by Renew.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	if k, ok := c.keys.toozLock(key); ok {
		return c.toozUnlock(ctx, key, token, k)
	}
	op := fmt.Sprintf("unlock %q", key)
	e, ok := c.entries.Forget(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	resp, err := c.del(ctx, op, e.Key)
	if err != nil {
		c.entries.Orphan(e)
		return err
	}
	c.entries.Release(e)
	if resp.Deleted == 0 {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
	}
	return nil
}

// RefreshLock is never called for session-bound grants; it reports
// whether the grant's entry still exists.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	if k, ok := c.keys.toozLock(key); ok {
		return c.toozRefresh(ctx, key, token, k)
	}
	op := fmt.Sprintf("refresh lock %q", key)
	e, ok := c.entries.Granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(e.Key), KeysOnly: true})
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
	if k, ok := c.keys.toozLock(key); ok {
		return c.toozHolder(ctx, key, k)
	}
	op := fmt.Sprintf("holder of %q", key)
	resp, err := c.rng(ctx, op, firstCreate(c.keys.LockPrefix(key), false))
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
	if k, ok := c.keys.toozLock(key); ok {
		return c.toozBreak(ctx, key, k)
	}
	op := fmt.Sprintf("break lock %q", key)
	resp, err := c.rng(ctx, op, firstCreate(c.keys.LockPrefix(key), true))
	if err != nil {
		return false, err
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	kv := resp.Kvs[0]
	tx, err := c.txn(ctx, op, &txnRequest{
		Compare: []compare{cmpCreate(string(kv.Key), "EQUAL", kv.CreateRevision, false)},
		Success: []requestOp{{Delete: &deleteRequest{Key: kv.Key}}},
	})
	if err != nil {
		return false, err
	}
	return tx.Succeeded, nil
}

package etcdbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

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
	lease, ok, _, _, err := c.tryLock(ctx, fmt.Sprintf("try lock %q", req.Key), req)
	return lease, ok, err
}

// tryLock is TryLock's transaction. When the lock is taken it returns
// the key of the holder's entry (read by the transaction's failure
// branch, "" if none) and the revision it was read at.
func (c *conn) tryLock(ctx context.Context, op string, req driver.LockRequest) (lease driver.Lease, ok bool, holder string, rev int64, err error) {
	pfx := c.keys.LockPrefix(req.Key)
	e := c.newEntry(req.Key)
	resp, err := c.lockTxn(ctx, op,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(pfx), "=", 0).WithPrefix()},
		[]clientv3.Op{clientv3.OpPut(e.Key, req.Member, clientv3.WithLease(c.lease))},
		clientv3.OpGet(pfx, append(clientv3.WithFirstCreate(), clientv3.WithKeysOnly())...))
	if err != nil {
		c.entries.Orphan(e) // the transaction may have been applied
		return driver.Lease{}, false, "", 0, err
	}
	if !resp.Succeeded {
		c.entries.Release(e) // nothing was written
		if len(resp.Responses) > 0 {
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
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
// oldest, then returns the grant. It watches only the one or two entries
// just before its own (no thundering herd). When ctx ends first it
// deletes its entry and returns ctx's error. Transient failures are
// retried while ctx lasts; the entry keeps its place in the queue
// meanwhile.
//
// An entry written behind another one is pending: it holds the lock only
// once its owner, having seen every older entry gone, confirms it by
// writing it again (version 2) in a transaction that checks it still
// exists. A candidate killed while queued never confirms, so the waiter
// behind it deletes it (a transaction that checks it is still pending)
// once it has been the oldest entry for the handover window, instead of
// waiting for its lease to expire: a resignation hands over past a dead
// candidate within the window plus a round trip. A live candidate too
// slow to confirm within the window loses its place and queues again at
// the back; safety never depends on the window (only one entry can be
// confirmed while it is the oldest, and only a pending one is deleted).
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if req.Unordered {
		return c.raceLock(ctx, req)
	}
	op := fmt.Sprintf("wait for lock %q", req.Key)
	pfx := c.keys.LockPrefix(req.Key)
	for {
		e := c.newEntry(req.Key)
		resp, err := c.lockTxn(ctx, op,
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(e.Key), "=", 0)},
			[]clientv3.Op{
				clientv3.OpPut(e.Key, req.Member, clientv3.WithLease(c.lease)),
				clientv3.OpGet(pfx, clientv3.WithFirstCreate()...),
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
		first := resp.Responses[1].GetResponseRange().Kvs
		if len(first) > 0 && first[0].CreateRevision == rev {
			// First at creation: it holds the lock at once (no waiter can
			// ever have seen an entry older than it).
			token := uint64(rev)
			c.entries.Remember(token, e)
			return driver.Lease{Token: token}, nil
		}
		// When the entry just before this one goes, this one may be the
		// oldest: waitTurn then confirms it in the same transaction that
		// checks that no older entry is left (one round trip after the
		// release, as a waiter that does not confirm needs to re-read).
		firstConfirm := func() (bool, error) {
			tx, err := c.lockTxn(ctx, op, []clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(e.Key), "=", rev),
				clientv3.Compare(clientv3.CreateRevision(pfx), ">", rev-1).WithPrefix(),
			}, []clientv3.Op{clientv3.OpPut(e.Key, req.Member, clientv3.WithLease(c.lease))})
			return err == nil && tx.Succeeded, err
		}
		confirmed, err := c.waitTurn(ctx, op, pfx, rev, firstConfirm)
		if err != nil {
			c.deleteEntry(ctx, e)
			return driver.Lease{}, err
		}
		if confirmed {
			token := uint64(rev)
			c.entries.Remember(token, e)
			return driver.Lease{Token: token}, nil
		}
		// Confirm: the entry must still exist (the lease may have been
		// lost, the lock broken, or the entry skipped as a dead candidate
		// while this member was too slow).
		tx, err := c.lockTxn(ctx, op,
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(e.Key), "=", rev)},
			[]clientv3.Op{clientv3.OpPut(e.Key, req.Member, clientv3.WithLease(c.lease))})
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
		if err := c.sessionAlive(ctx, op); err != nil {
			return driver.Lease{}, err
		}
		c.log.Debug("lock entry was skipped or broken before it was confirmed; queuing again", zap.String("lock", req.Key))
	}
}

// raceLock takes lock req.Key without queuing (req.Unordered, as
// Campaign asks): it tries TryLock's transaction, whose failure branch
// reads the holder's entry, and while the lock is held it watches that
// entry and tries again when it changes. A losing try writes nothing, so
// nothing of this member is on the server while it waits: a candidate
// killed while waiting is no obstacle to the others, and a release hands
// over within one round trip of its notification (every live waiter
// tries; the first transaction wins). Transient failures end the call
// with their error; the backend tries again.
func (c *conn) raceLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	b := newBackoff()
	for {
		lease, ok, holder, rev, err := c.tryLock(ctx, op, req)
		if err != nil || ok {
			return lease, err
		}
		if holder == "" {
			continue
		}
		// Re-read at least every third of the TTL, as waitTurn does.
		if err := c.waitChange(ctx, []string{holder}, rev, c.clock.Now().Add(c.ttl/3)); err != nil {
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

// sessionAlive checks the session lease after an entry vanished: CodeLost
// when the lease is gone.
func (c *conn) sessionAlive(ctx context.Context, op string) error {
	resp, err := c.get(ctx, op, c.keys.Session(int64(c.lease)), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if resp.Count == 0 {
		return driver.Errorf(driver.CodeLost, "%s: the entry vanished while waiting: session lease %x lost", op, int64(c.lease))
	}
	return nil
}

// handoverWindow is how long a pending entry may be the oldest without
// being confirmed before a waiter behind it deletes it as a dead
// candidate's: eight of this connection's lock-transaction round trips,
// at least 10 ms (internal/handover), and at most a thirtieth of the
// lease TTL bounded to 50..250 ms, the window before round trips are
// known.
func (c *conn) handoverWindow() time.Duration {
	return c.rtt.Window(min(max(c.ttl/30, 50*time.Millisecond), 250*time.Millisecond))
}

// waitTurn returns when no entry older than rev is left under pfx, or
// with ctx's error. It reads the (at most) two entries just before rev and
// watches them (re-reading at least every third of the TTL); an entry
// seen with an older one before it was written
// behind it, hence is pending until confirmed (version 2): once it is the
// oldest and still pending after the handover window, waitTurn deletes it.
// When the entry just before rev was the oldest and changes, it calls
// confirmFirst, which confirms rev's entry if no older one is left:
// confirmed is then true (a failed or refused try changes nothing, the
// queue is read again).
func (c *conn) waitTurn(ctx context.Context, op, pfx string, rev int64, confirmFirst func() (bool, error)) (confirmed bool, err error) {
	b := newBackoff()
	opts := []clientv3.OpOption{
		clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend),
		clientv3.WithLimit(2), clientv3.WithMaxCreateRev(rev - 1), clientv3.WithKeysOnly(),
	}
	behind := map[string]int64{} // entries seen with an older entry: key -> create revision
	var head string              // the pending oldest entry being timed
	var headSince time.Time
	for {
		resp, err := c.get(ctx, op, pfx, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return false, err
			}
			if !b.wait(ctx) {
				return false, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		kvs := resp.Kvs
		if len(kvs) == 0 {
			return false, nil
		}
		pred := kvs[0]
		watch := []string{string(pred.Key)}
		var deadline time.Time
		if len(kvs) == 2 {
			behind[string(pred.Key)] = pred.CreateRevision
			watch = append(watch, string(kvs[1].Key))
			head = ""
		} else if crev, ok := behind[string(pred.Key)]; ok && crev == pred.CreateRevision && pred.Version == 1 {
			// A pending entry is the oldest: its owner must confirm it.
			id := fmt.Sprintf("%s@%d", pred.Key, pred.CreateRevision)
			if head != id {
				head, headSince = id, c.clock.Now()
			}
			deadline = headSince.Add(c.handoverWindow())
			if !c.clock.Now().Before(deadline) {
				if _, err := c.lockTxn(ctx, op, []clientv3.Cmp{
					clientv3.Compare(clientv3.CreateRevision(string(pred.Key)), "=", pred.CreateRevision),
					clientv3.Compare(clientv3.Version(string(pred.Key)), "=", 1),
				}, []clientv3.Op{clientv3.OpDelete(string(pred.Key))}); err != nil && ctx.Err() != nil {
					return false, err
				}
				c.log.Debug("skipped a queued candidate that did not confirm its turn", zap.String("entry", string(pred.Key)))
				continue
			}
		}
		// Re-read at least every third of the TTL: a watch stream opened on
		// a member that froze delivers nothing until the keep-alive gives
		// up on it, while a read moves to a live member.
		if poll := c.clock.Now().Add(c.ttl / 3); deadline.IsZero() || poll.Before(deadline) {
			deadline = poll
		}
		if err := c.waitChange(ctx, watch, resp.Header.Revision, deadline); err != nil {
			if ctx.Err() != nil {
				return false, classify(ctx, nil, op, err)
			}
			if !b.wait(ctx) {
				return false, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		b.reset()
		if len(kvs) == 1 && c.clock.Now().Before(deadline) {
			// The oldest entry, just before this one, changed (most
			// likely released): confirm at once if it is gone.
			if ok, _ := confirmFirst(); ok {
				return true, nil
			}
		}
	}
}

// waitChange returns nil once one of keys changes (deleted or written)
// after rev, or when deadline (if not zero) passes; an error when a
// watch broke (the caller re-reads and watches again).
//
// The watches start at the server's current revision, not at rev+1: a
// watch from a revision the store has already passed (other clients
// wrote meanwhile, as they do on a contended lock) is served by the
// server's catch-up loop, which runs every 100 ms, so its events would
// come up to 100 ms late. Once every watch is created, one transaction
// checks that no key changed between rev and the watches' start.
func (c *conn) waitChange(ctx context.Context, keys []string, rev int64, deadline time.Time) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	changed := make(chan error, len(keys))
	created := make(chan struct{}, len(keys))
	for _, k := range keys {
		wch := c.cli.Watch(wctx, k, clientv3.WithCreatedNotify())
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Not "range wch": a stream stuck on a frozen member closes its
			// channel only when the connection is abandoned, and this
			// goroutine must end with waitChange.
			for {
				var wr clientv3.WatchResponse
				var ok bool
				select {
				case wr, ok = <-wch:
				case <-wctx.Done():
					return
				}
				if !ok {
					changed <- errors.New("watch closed")
					return
				}
				if err := wr.Err(); err != nil {
					if isCompacted(err) {
						changed <- nil // re-read: the change may be what was compacted
					} else {
						changed <- err
					}
					return
				}
				if len(wr.Events) > 0 {
					changed <- nil
					return
				}
				if wr.Created {
					created <- struct{}{}
				}
			}
		}()
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := c.clock.NewTimer(deadline.Sub(c.clock.Now()))
		defer t.Stop()
		timeout = t.C()
	}
	for range keys {
		select {
		case <-created:
		case err := <-changed:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case <-timeout:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cmps := make([]clientv3.Cmp, 0, 2*len(keys))
	for _, k := range keys {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0), clientv3.Compare(clientv3.ModRevision(k), "<", rev+1))
	}
	tx, err := c.cli.Txn(wctx).If(cmps...).Commit()
	switch {
	case err != nil:
		return err
	case !tx.Succeeded:
		return nil // changed before the watches started
	}
	select {
	case err := <-changed:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	case <-timeout:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock deletes the grant's own entry, compared by its create revision
// (the token), so a repeated attempt can never delete anything else. An
// entry key belongs to one attempt until it is known to be deleted (see
// etcdproto.Entry). Attempts are repeated on the endpoints until one
// answers (see idempotent): a release interrupted by a leader change
// completes on another member instead of leaving the lock held until
// the lease expires. CodeNotHeld when the grant is unknown to this
// connection or its entry is gone (lease lost, lock broken). When no
// member answers in time the entry is deleted later, by Renew.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	op := fmt.Sprintf("unlock %q", key)
	e, ok := c.entries.Forget(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	deleted, ambiguous := false, false
	err := c.idempotent(ctx, op, func(actx context.Context) error {
		tx, err := c.cli.Txn(actx).
			If(clientv3.Compare(clientv3.CreateRevision(e.Key), "=", int64(token))).
			Then(clientv3.OpDelete(e.Key)).
			Commit()
		if err != nil {
			ambiguous = true
			return err
		}
		// After an attempt whose reply was lost, "not found" may be that
		// attempt's own deletion.
		deleted = tx.Succeeded || ambiguous
		return nil
	})
	if err != nil {
		c.entries.Orphan(e)
		return err
	}
	c.entries.Release(e)
	if !deleted {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
	}
	return nil
}

// RefreshLock is never called for session-bound grants; it reports
// whether the grant's entry still exists.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	op := fmt.Sprintf("refresh lock %q", key)
	e, ok := c.entries.Granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	resp, err := c.get(ctx, op, e.Key, clientv3.WithKeysOnly())
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
	resp, err := c.get(ctx, op, c.keys.LockPrefix(key), clientv3.WithFirstCreate()...)
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
	resp, err := c.get(ctx, op, c.keys.LockPrefix(key), append(clientv3.WithFirstCreate(), clientv3.WithKeysOnly())...)
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

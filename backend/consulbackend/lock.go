package consulbackend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend/driver"
)

// A lock is the set of keys under <ns>/locks/<lock>/: "x", the exclusive
// holder, and "s/<session>.<slot>", one per shared grant, each acquired
// with the holder's session (so each vanishes with it). An exclusive
// acquisition is one transaction "x does not exist; lock x with my
// session; list the shared holders"; it backs off (deletes x again) when
// the listing, taken atomically with the lock, shows a shared holder. A
// shared acquisition is one transaction "x does not exist; lock my shared
// key". Whichever of two conflicting transactions Raft applies first
// wins: a later exclusive one sees the shared key, a later shared one
// finds x. The fencing token is the ModifyIndex of the acquiring write:
// the Raft index at which it was applied, which only grows.

// TryLock takes lock req.Key exclusively if nobody holds it (shared
// holders included). The grant is bound to the session (Lease.TTL is 0);
// req.TTL is ignored. Not reentrant: a second TryLock through this
// connection fails while the first grant holds.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	op := fmt.Sprintf("try lock %q", req.Key)
	if c.lockDelay > 0 {
		return c.tryLockAcquire(ctx, op, req)
	}
	x := c.keys.exclusive(req.Key)
	c.cleanOrphans(ctx, x)
	defer c.acquiring(x)()
	// One attempt, bounded: a write the agent forwarded to a leader that
	// died with it is held for seconds (rpc_hold_timeout); the Backend
	// tries again, and the orphan cleanup undoes a commit whose answer was
	// lost.
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout())
	defer cancel()
	ok, resp, err := c.txn(actx, op, api.TxnOps{
		kvOp(api.KVCheckNotExists, x),
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: x, Value: []byte(req.Member), Session: c.session}},
		kvOp(api.KVGetTree, c.keys.sharedPrefix(req.Key)),
	})
	if err != nil {
		c.addOrphan(x) // it may have been committed
		if ctx.Err() == nil {
			err = driver.Errorf(driver.CodeUnavailable, "%s: no answer within %v: %w", op, c.attemptTimeout(), err)
		}
		return driver.Lease{}, false, err
	}
	if !ok {
		if err := c.lostIf(op, resp); err != nil {
			return driver.Lease{}, false, err
		}
		return driver.Lease{}, false, nil
	}
	if len(resp.Results) == 0 || resp.Results[0].KV == nil {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "%s: the transaction returned no entry", op)
	}
	token := resp.Results[0].KV.ModifyIndex
	if len(resp.Results) > 1 {
		// Shared holders: step back.
		return driver.Lease{}, false, c.backOff(ctx, op, x, token)
	}
	c.remember(req.Key, token, x)
	return driver.Lease{Token: token}, true, nil
}

// tryLockAcquire is TryLock with a lock-delay: only Consul's acquire
// endpoint (PUT ?acquire) enforces the lock-delay of a session that held
// the key, so the lock is taken there and then read back, with the
// shared holders, for its token.
func (c *conn) tryLockAcquire(ctx context.Context, op string, req driver.LockRequest) (driver.Lease, bool, error) {
	if c.holdsExclusive(req.Key) {
		return driver.Lease{}, false, nil // Consul would let the session take it again
	}
	x := c.keys.exclusive(req.Key)
	c.cleanOrphans(ctx, x)
	defer c.acquiring(x)()
	rctx, cancel := c.reqCtx(ctx)
	got, _, err := c.cli.KV().Acquire(&api.KVPair{Key: x, Value: []byte(req.Member), Session: c.session}, (&api.WriteOptions{}).WithContext(rctx))
	err = classify(ctx, rctx, op, err)
	cancel()
	if err != nil {
		if containsAny(err.Error(), "invalid session") {
			return driver.Lease{}, false, driver.Wrap(driver.CodeLost, fmt.Errorf("%s: %w", op, errSessionGone))
		}
		c.addOrphan(x) // it may have been committed
		return driver.Lease{}, false, err
	}
	if !got {
		return driver.Lease{}, false, nil
	}
	pairs, _, err := c.list(ctx, op, c.keys.lockPrefix(req.Key))
	if err != nil {
		c.addOrphan(x) // taken, but its token is unknown
		return driver.Lease{}, false, err
	}
	var token uint64
	shared := false
	for _, p := range pairs {
		switch {
		case p.Key == x && p.Session == c.session:
			token = p.ModifyIndex
		case p.Key != x && p.Session != "":
			shared = true
		}
	}
	if token == 0 {
		return driver.Lease{}, false, nil // broken before it could be read
	}
	if shared {
		return driver.Lease{}, false, c.backOff(ctx, op, x, token)
	}
	c.remember(req.Key, token, x)
	return driver.Lease{Token: token}, true, nil
}

// backOff deletes an exclusive key this connection just wrote at index
// while a shared holder held the lock.
func (c *conn) backOff(ctx context.Context, op, x string, index uint64) error {
	_, _, err := c.txn(context.WithoutCancel(ctx), op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: x, Index: index}}})
	return err
}

// TryLockShared takes a shared grant of req.Key unless it is held
// exclusively: one key per grant, so one connection may hold several.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	op := fmt.Sprintf("try shared lock %q", req.Key)
	key := c.keys.shared(req.Key, c.session, c.slot.Add(1))
	ok, resp, err := c.txn(ctx, op, api.TxnOps{
		kvOp(api.KVCheckNotExists, c.keys.exclusive(req.Key)),
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: key, Value: []byte(req.Member), Session: c.session}},
	})
	if err != nil {
		return driver.Lease{}, false, err
	}
	if !ok {
		if err := c.lostIf(op, resp); err != nil {
			return driver.Lease{}, false, err
		}
		return driver.Lease{}, false, nil
	}
	if len(resp.Results) == 0 || resp.Results[0].KV == nil {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "%s: the transaction returned no entry", op)
	}
	token := resp.Results[0].KV.ModifyIndex
	c.remember(req.Key, token, key)
	return driver.Lease{Token: token}, true, nil
}

// WaitLock blocks until req.Key is granted exclusively or ctx ends. It
// tries, and while the lock is held it waits with a blocking query on the
// lock's prefix, which returns as soon as a holder key changes or goes:
// a waiter tries again within a round trip of the release. When the lock
// looks free but cannot be taken (a lock-delay), it retries with backoff.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	op := fmt.Sprintf("wait for lock %q", req.Key)
	pfx := c.keys.lockPrefix(req.Key)
	b := newBackoff()
	free := 0 // consecutive tries that failed while the lock looked free
	for {
		sent := c.clock.Now()
		lease, ok, err := c.TryLock(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			lease.Sent = sent
			return lease, nil
		}
		pairs, index, err := c.list(ctx, op, pfx)
		if err != nil {
			return driver.Lease{}, err
		}
		if !anyHeld(pairs) {
			// Free, yet not taken: released in between (try again at
			// once), or a lock-delay (try again with backoff).
			free++
			if free > 1 && !b.wait(ctx, c.clock) {
				return driver.Lease{}, classify(ctx, nil, op, ctx.Err())
			}
			continue
		}
		free = 0
		b.reset()
		index = max(index, 1)
		for anyHeld(pairs) {
			var got uint64
			pairs, got, err = c.block(ctx, op, pfx, index)
			if err != nil {
				return driver.Lease{}, err
			}
			index, _ = nextIndex(index, got)
		}
	}
}

// anyHeld reports whether a listing of a lock prefix has a holder.
func anyHeld(pairs api.KVPairs) bool {
	for _, p := range pairs {
		if p.Session != "" {
			return true
		}
	}
	return false
}

// Unlock deletes the grant's key if it is still the one the grant wrote
// (delete-cas on the token, its ModifyIndex): CodeNotHeld otherwise.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	op := fmt.Sprintf("unlock %q", key)
	k, ok := c.forget(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d was not granted by this connection or was released", op, token)
	}
	// A delete-cas on the token is safe to repeat: a release that gets no
	// answer within an attempt (a leader change, a frozen server) is sent
	// again until it is answered or ctx ends, rather than left to the
	// session's end.
	pause := 10 * time.Millisecond
	ambiguous := false
	for {
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout())
		done, _, err := c.txn(actx, op, api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: k, Index: token}}})
		cancel()
		switch {
		case err == nil && done:
			return nil
		case err == nil && ambiguous:
			return nil // an earlier attempt deleted it
		case err == nil:
			return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone (session lost or lock broken)", op, token)
		}
		code, _ := driver.CodeOf(err)
		if ctx.Err() != nil || (code != driver.CodeUnavailable && code != driver.CodeDeadlineExceeded) {
			c.remember(key, token, k) // may be retried
			return err
		}
		ambiguous = true
		t := c.clock.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			c.remember(key, token, k)
			return err
		case <-t.C():
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// RefreshLock is never called for session-bound grants; it reports
// whether the grant's key still exists as written.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	op := fmt.Sprintf("refresh lock %q", key)
	k, ok := c.granted(key, token)
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "%s: token %d is not held", op, token)
	}
	p, err := c.get(ctx, op, k)
	if err != nil {
		return err
	}
	if p == nil || p.ModifyIndex != token || p.Session != c.session {
		return driver.Errorf(driver.CodeNotHeld, "%s: grant %d is gone", op, token)
	}
	return nil
}

// holderOf returns the holder a lock-prefix listing shows: the exclusive
// holder, else the oldest shared holder. An exclusive key beside shared
// keys is an acquisition about to step back: the shared holders hold.
func (c *conn) holderOf(lock string, pairs api.KVPairs) (driver.Holder, bool) {
	x := c.keys.exclusive(lock)
	var ex, sh *api.KVPair
	for _, p := range pairs {
		if p.Session == "" {
			continue
		}
		if p.Key == x {
			ex = p
		} else if sh == nil || p.ModifyIndex < sh.ModifyIndex {
			sh = p
		}
	}
	if sh != nil {
		ex = sh
	}
	if ex == nil {
		return driver.Holder{}, false
	}
	return driver.Holder{Member: string(ex.Value), Token: ex.ModifyIndex}, true
}

// Holder reads the lock's keys (consistently).
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	op := fmt.Sprintf("holder of %q", key)
	pairs, _, err := c.list(ctx, op, c.keys.lockPrefix(key))
	if err != nil {
		return driver.Holder{}, err
	}
	h, ok := c.holderOf(key, pairs)
	if !ok {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%s: not held", op)
	}
	return h, nil
}

// BreakLock deletes every holder key of the lock, whoever wrote it, each
// only if unchanged since read. It reports false when nobody held it. A
// former holder is not told: its Unlock reports CodeNotHeld.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("break lock %q", key)
	pairs, _, err := c.list(ctx, op, c.keys.lockPrefix(key))
	if err != nil {
		return false, err
	}
	var ops api.TxnOps
	for _, p := range pairs {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: p.Key, Index: p.ModifyIndex}})
	}
	if len(ops) == 0 {
		return false, nil
	}
	ok, _, err := c.txn(ctx, op, ops)
	return ok && err == nil, err
}

// WatchHolder follows the lock's keys with blocking queries and emits
// the holder first and after every change, until ctx ends.
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(driver.Holder, bool)) error {
	op := fmt.Sprintf("watch holder of %q", key)
	pfx := c.keys.lockPrefix(key)
	pairs, index, err := c.list(ctx, op, pfx)
	if err != nil {
		return err
	}
	last, held := c.holderOf(key, pairs)
	emit(last, held)
	index = max(index, 1)
	for {
		var got uint64
		pairs, got, err = c.block(ctx, op, pfx, index)
		if err != nil {
			return err
		}
		index, _ = nextIndex(index, got)
		h, ok := c.holderOf(key, pairs)
		if ok != held || h != last {
			last, held = h, ok
			emit(h, ok)
		}
	}
}

// kvOp is a transaction operation on key without value or index.
func kvOp(verb api.KVOp, key string) *api.TxnOp {
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: verb, Key: key}}
}

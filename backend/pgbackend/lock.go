package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend/driver"
)

// TryLock takes the exclusive lock req.Key in one statement: the lock's
// row, when it is free or its holders' sessions ended, is updated with
// this session as holder and its counter (the fencing token) bumped; a
// name never taken before gets its row inserted (a second statement).
// Locks live as long as the session (Lease.TTL 0).
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if name, ok := c.toozName(req.Key); ok {
		return c.toozTryLock(ctx, c.q.tryLock, name, req, false)
	}
	return c.tryLock(ctx, c.q.tryLock, req, 0)
}

// TryLockShared takes a shared hold of req.Key: it coexists with other
// shared holds and excludes exclusive ones.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if name, ok := c.toozName(req.Key); ok {
		return c.toozTryLock(ctx, c.q.tryLockShared, name, req, true)
	}
	return c.tryLock(ctx, c.q.tryLockShared, req, -1)
}

// tryLock runs an acquisition; waiting (0 or 1) is how many waiters the
// grant takes off the row's count (-1: the shared form, which has none).
func (c *conn) tryLock(ctx context.Context, sql string, req driver.LockRequest, waiting int) (driver.Lease, bool, error) {
	lease, ok, _, err := c.grant(ctx, func(actx context.Context) (int64, int32, error) {
		var token int64
		args := []any{req.Key, c.sid, req.Member}
		if waiting >= 0 {
			args = append(args, int32(waiting))
		}
		err := c.queryRow(actx, sql, args, &token)
		if errors.Is(err, pgx.ErrNoRows) && waiting == 0 {
			// Held, or never taken: the row does not exist yet (a waiter
			// counted itself on the row, which therefore exists).
			err = c.queryRow(actx, c.q.createLock, []any{req.Key, c.sid, req.Member}, &token)
		}
		return token, 0, err
	}, req.Key)
	return lease, ok, err
}

// tryLockWaiting is a counted waiter's try: the grant (taking the waiter
// off the row's count), or else the session of a holder (0 if none was
// read), whose end the session watcher can wait for.
func (c *conn) tryLockWaiting(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, int32, error) {
	return c.grant(ctx, func(actx context.Context) (int64, int32, error) {
		var token *int64
		var holder *int32
		err := c.queryRow(actx, c.q.tryLockWaiting, []any{req.Key, c.sid, req.Member}, &token, &holder)
		switch {
		case err != nil:
			return 0, 0, err
		case token == nil && holder != nil:
			return 0, *holder, pgx.ErrNoRows
		case token == nil:
			return 0, 0, pgx.ErrNoRows
		}
		return *token, 0, nil
	}, req.Key)
}

// grant runs an acquisition statement (try): its token, or pgx.ErrNoRows
// and the session of a holder when the lock was not granted.
func (c *conn) grant(ctx context.Context, try func(context.Context) (int64, int32, error), key string) (driver.Lease, bool, int32, error) {
	if err := c.check(); err != nil {
		return driver.Lease{}, false, 0, err
	}
	if err := ctx.Err(); err != nil {
		return driver.Lease{}, false, 0, c.classify(err)
	}
	// The statement runs to its end even if ctx ends meanwhile (bounded
	// by the session timeout): a grant committed by a statement cut off
	// by a cancellation would stay held with nobody knowing its token.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.ttl)
	defer cancel()
	token, holder, err := try(actx)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return driver.Lease{}, false, holder, nil
	case err != nil:
		return driver.Lease{}, false, 0, c.classify(fmt.Errorf("take lock: %w", err))
	}
	if ctx.Err() != nil {
		// Granted as ctx ended: hand it back.
		_ = c.Unlock(actx, key, uint64(token))
		return driver.Lease{}, false, 0, c.classify(ctx.Err())
	}
	return driver.Lease{Token: uint64(token)}, true, 0, nil
}

// WaitLock blocks until req.Key is granted: it tries, and after a failed
// try counts itself as a waiter on the lock's row (so that releases
// notify), tries again, and waits for the release notification (sent by
// the releasing statement, or by a janitor that cleared the hold of an
// ended session) before each further try. A try is also made every
// timeout, in case a notification was lost with the listener connection
// (its reconnection wakes every waiter too). Once no release came for
// watchDelay, a failed try reads the holder's session, whose end the
// session watcher waits for (sesswatch.go): a holder killed or cut off is
// then seen as the server ends its session, not at the janitor's next
// round. The grant takes the waiter off the count in the same statement.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if name, ok := c.toozName(req.Key); ok {
		return c.toozWaitLock(ctx, name, req)
	}
	sent := c.clock.Now()
	lease, ok, err := c.TryLock(ctx, req)
	switch {
	case ctx.Err() != nil:
		return driver.Lease{}, ctx.Err()
	case err != nil:
		return driver.Lease{}, err
	case ok:
		lease.Sent = sent
		return lease, nil
	}
	s := c.hub.subscribeLock(req.Key)
	defer c.hub.remove(s)
	if _, err := c.exec(ctx, c.q.wait, req.Key); err != nil {
		if ctx.Err() != nil {
			return driver.Lease{}, ctx.Err()
		}
		return driver.Lease{}, c.classify(fmt.Errorf("wait for lock: %w", err))
	}
	counted := true
	defer func() {
		if counted {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.ttl)
			_, _ = c.exec(uctx, c.q.unwait, req.Key)
			cancel()
		}
	}()
	var watching int32 // the holder's session whose end wakes s
	defer func() { c.watch.drop(watching, s) }()
	// stalled: the last wait saw no release for watchDelay, so the lock
	// is held for a while: the next try reads its holder's session and
	// the session watcher waits for its end. A lock that changes hands
	// often (contended, held briefly) is never watched: a watcher per
	// holder would cost the server more than it saves.
	stalled := false
	for {
		sent := c.clock.Now()
		var lease driver.Lease
		var ok bool
		var holder int32
		var err error
		if stalled {
			lease, ok, holder, err = c.tryLockWaiting(ctx, req)
		} else {
			lease, ok, err = c.tryLock(ctx, c.q.tryLock, req, 1)
		}
		if ctx.Err() != nil {
			return driver.Lease{}, ctx.Err()
		}
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			counted = false
			lease.Sent = sent
			return lease, nil
		}
		if holder != watching {
			c.watch.drop(watching, s)
			watching = holder
		}
		c.watch.add(holder, s) // again: a watcher that saw it end forgot s
		wait := max(c.s.ttl, 100*time.Millisecond)
		if !stalled {
			wait = watchDelay
		}
		t := c.clock.NewTimer(wait)
		stalled = false
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Lease{}, ctx.Err()
		case <-c.ctx.Done():
			t.Stop()
			if err := c.check(); err != nil {
				return driver.Lease{}, err
			}
			return driver.Lease{}, driver.Errorf(driver.CodeCanceled, "postgresql connection closed")
		case <-s.wake:
		case <-t.C():
			stalled = true
		}
		t.Stop()
		s.drain()
	}
}

// watchDelay is how long a waiter waits without a release before it
// has the session watcher wait for the holder's end.
const watchDelay = 25 * time.Millisecond

// Unlock releases the grant token of key (exclusive or shared) and
// notifies the lock's waiters: CodeNotHeld when that grant no longer
// holds it.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	if name, ok := c.toozName(key); ok {
		return c.toozUnlock(ctx, name, key, token)
	}
	return c.unlockRow(ctx, key, token)
}

// unlockRow releases the grant's row.
func (c *conn) unlockRow(ctx context.Context, key string, token uint64) error {
	if err := c.check(); err != nil {
		return err
	}
	tag, err := c.exec(ctx, c.q.unlock, key, c.sid, int64(token))
	if err != nil {
		return c.classify(fmt.Errorf("release lock: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return driver.Errorf(driver.CodeNotHeld, "lock is not held by grant %d", token)
	}
	return nil
}

// RefreshLock is never called for session-bound leases; it reports
// whether the grant still holds the lock.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	if err := c.check(); err != nil {
		return err
	}
	var held bool
	if err := c.queryRow(ctx, c.q.held, []any{key, c.sid, int64(token)}, &held); err != nil {
		return c.classify(fmt.Errorf("check lock: %w", err))
	}
	if !held {
		return driver.Errorf(driver.CodeNotHeld, "lock is not held by grant %d", token)
	}
	return nil
}

// Holder reports the live holder of key (one of them for a shared hold):
// CodeNotFound when nobody live holds it.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	if name, ok := c.toozName(key); ok {
		return c.toozHolder(ctx, name, key)
	}
	return c.holderRow(ctx, key)
}

// holderRow reports the live holder recorded in key's row.
func (c *conn) holderRow(ctx context.Context, key string) (driver.Holder, error) {
	if err := c.check(); err != nil {
		return driver.Holder{}, err
	}
	var h driver.Holder
	var token int64
	err := c.queryRow(ctx, c.q.holder, []any{key}, &h.Member, &token)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock is free")
	case err != nil:
		return driver.Holder{}, c.classify(fmt.Errorf("read lock holder: %w", err))
	}
	h.Token = uint64(token)
	return h, nil
}

// BreakLock clears every hold of key whoever holds it and wakes its
// waiters; it reports whether a live holder lost it.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	if _, ok := c.toozName(key); ok {
		return false, driver.Errorf(driver.CodeUnimplemented, "compat=tooz: tooz's advisory lock can be released only by the session holding it")
	}
	if err := c.check(); err != nil {
		return false, err
	}
	tag, err := c.exec(ctx, c.q.breakLock, key)
	if err != nil {
		return false, c.classify(fmt.Errorf("break lock: %w", err))
	}
	return tag.RowsAffected() > 0, nil
}

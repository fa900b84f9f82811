package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// LockOptions tune one acquisition.
type LockOptions struct {
	// TTL is the lease on TTL-based stores; zero uses the driver's default
	// (its lock_timeout option). Session-bound stores ignore it.
	TTL time.Duration
	// Margin is the safety margin of the grant; zero uses the Backend's
	// (WithSafetyMargin), else a fifth of the lease.
	Margin time.Duration
	// Shared asks for a shared (read) lock; ErrUnimplemented where the
	// driver has none.
	Shared bool
	// MaxPoll caps the wait between attempts on backends that wait by
	// polling; zero means 250ms where the backend polls, the driver's own
	// default where the driver does (driver.LockRequest.MaxPoll).
	MaxPoll time.Duration
}

// Holder is the current holder of a lock or leadership.
type Holder = driver.Holder

// TryLock tries once to take lock name. It returns ok=false with a nil
// error when someone holds it (including another grant of this Backend:
// locks are not reentrant). It blocks for one round trip.
func (b *Backend) TryLock(ctx context.Context, name string, o LockOptions) (*Grant, bool, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, false, err
	}
	return b.tryGrant(ctx, userLockPrefix+name, name, opName{"lock", name}, o)
}

// Lock takes lock name, waiting until it is free or ctx is done. It waits
// natively where the driver can, otherwise it polls with jittered
// exponential backoff. When ctx ends first it returns ctx's error wrapped
// (errors.Is(err, context.DeadlineExceeded) and ErrDeadlineExceeded both
// hold) and holds nothing.
func (b *Backend) Lock(ctx context.Context, name string, o LockOptions) (*Grant, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	return b.observedWait(ctx, userLockPrefix+name, name, opName{"lock", name}, o)
}

// LockHolder reports who holds lock name; ok is false when nobody does.
func (b *Backend) LockHolder(ctx context.Context, name string) (h Holder, ok bool, err error) {
	if err := checkName("lock name", name); err != nil {
		return Holder{}, false, err
	}
	return b.holder(ctx, userLockPrefix+name, fmt.Sprintf("holder of lock %q", name))
}

// BreakLock force-releases lock name whoever holds it, where the driver
// can (ErrUnimplemented otherwise). It reports whether a grant was broken.
// The holder learns it on its next refresh, or never on stores whose
// locks are not leased: use it only for administration.
func (b *Backend) BreakLock(ctx context.Context, name string) (bool, error) {
	if err := checkName("lock name", name); err != nil {
		return false, err
	}
	if err := b.check(); err != nil {
		return false, err
	}
	lb, ok := b.conn.(driver.LockBreaker)
	if !ok {
		return false, newError(driver.CodeUnimplemented, fmt.Sprintf("break lock %q", name), fmt.Errorf("driver %s cannot break locks", b.cfg.Driver.Name))
	}
	broke, err := lb.BreakLock(ctx, userLockPrefix+name)
	return broke, wrap(fmt.Sprintf("break lock %q", name), err)
}

func (b *Backend) holder(ctx context.Context, key, op string) (Holder, bool, error) {
	if err := b.check(); err != nil {
		return Holder{}, false, err
	}
	h, err := b.conn.Holder(ctx, key)
	if CodeOf(err) == driver.CodeNotFound {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, wrap(op, err)
	}
	return h, true, nil
}

func (b *Backend) lockRequest(key string, o LockOptions, op opName) (driver.LockRequest, error) {
	if o.TTL < 0 || o.Margin < 0 {
		return driver.LockRequest{}, newError(driver.CodeInvalidArgument, op.String(), errors.New("negative TTL or margin"))
	}
	if o.TTL > 0 {
		// Refused before anything is sent; a lease whose TTL the driver
		// chooses is checked when granted (and released when refused).
		if _, err := b.lockTiming(o.TTL, o.Margin); err != nil {
			return driver.LockRequest{}, wrapOp(op, err)
		}
	}
	if err := b.check(); err != nil {
		return driver.LockRequest{}, err
	}
	// Leadership races (driver.LockRequest.Unordered); locks keep their
	// first-come order where the driver queues.
	return driver.LockRequest{Key: key, Member: b.o.memberID, TTL: o.TTL, Unordered: strings.HasPrefix(key, leaderLockPrefix), MaxPoll: o.MaxPoll}, nil
}

func (b *Backend) tryGrant(ctx context.Context, key, name string, op opName, o LockOptions) (*Grant, bool, error) {
	req, err := b.lockRequest(key, o, op)
	if err != nil {
		return nil, false, err
	}
	sent := b.o.clock.Now()
	var lease driver.Lease
	var ok bool
	if o.Shared {
		sl, isSL := b.conn.(driver.SharedLocker)
		if !isSL {
			return nil, false, newError(driver.CodeUnimplemented, op.String(), fmt.Errorf("driver %s has no shared locks", b.cfg.Driver.Name))
		}
		lease, ok, err = sl.TryLockShared(ctx, req)
	} else {
		lease, ok, err = b.conn.TryLock(ctx, req)
	}
	if err != nil || !ok {
		return nil, false, wrapOp(op, err)
	}
	g, err := b.grantOrRelease(key, name, op, lease, sent, o.Margin)
	return g, err == nil, err
}

func (b *Backend) grantOrRelease(key, name string, op opName, lease driver.Lease, sent time.Time, margin time.Duration) (*Grant, error) {
	g, err := b.newGrant(key, name, lease, sent, margin)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		switch uerr := b.conn.Unlock(ctx, key, lease.Token); CodeOf(uerr) {
		case driver.CodeUnavailable, driver.CodeDeadlineExceeded:
			// Unanswered: keep releasing it in the background, or the
			// lock would stay held by this live session.
			b.unlockInBackground(key, lease.Token, [2]zap.Field{zap.String("name", name), zap.Uint64("token", lease.Token)})
		}
		return nil, wrapOp(op, err)
	}
	return g, nil
}

func (b *Backend) waitGrant(ctx context.Context, key, name string, op opName, o LockOptions) (*Grant, error) {
	if w, ok := b.conn.(driver.LockWaiter); ok && !o.Shared {
		req, err := b.lockRequest(key, o, op)
		if err != nil {
			return nil, err
		}
		// A connection blip does not end the wait: like the polling path,
		// it goes on until the lock is granted, ctx ends or the Backend
		// ends.
		retry := 10 * time.Millisecond
		for {
			sent := b.o.clock.Now()
			wctx, cancel := b.opContext(ctx)
			lease, err := w.WaitLock(wctx, req)
			cancel()
			if err == nil {
				return b.grantOrRelease(key, name, op, lease, sent, o.Margin)
			}
			c := CodeOf(err)
			if ctx.Err() != nil || b.ctx.Err() != nil || (c != driver.CodeUnavailable && c != driver.CodeDeadlineExceeded) {
				return nil, b.waitErr(ctx, op, err)
			}
			t := b.o.clock.NewTimer(retry)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, b.waitErr(ctx, op, ctx.Err())
			case <-b.ctx.Done():
				t.Stop()
				return nil, b.Err()
			case <-t.C():
			}
			retry = min(2*retry, time.Second)
		}
	}
	maxPoll := o.MaxPoll
	if maxPoll <= 0 {
		maxPoll = 250 * time.Millisecond
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = min(5*time.Millisecond, maxPoll)
	bo.MaxInterval = maxPoll
	bo.RandomizationFactor = 0.5
	bo.Multiplier = 1.6
	bo.MaxElapsedTime = 0
	bo.Reset()
	for {
		g, ok, err := b.tryGrant(ctx, key, name, op, o)
		if err != nil {
			if ctx.Err() != nil {
				return nil, b.waitErr(ctx, op, ctx.Err())
			}
			if c := CodeOf(err); c != driver.CodeUnavailable {
				return nil, err
			}
		}
		if ok {
			return g, nil
		}
		// The jitter can take an interval past MaxInterval: cap it.
		t := b.o.clock.NewTimer(min(bo.NextBackOff(), maxPoll))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, b.waitErr(ctx, op, ctx.Err())
		case <-b.ctx.Done():
			t.Stop()
			return nil, b.Err()
		case <-t.C():
		}
	}
}

// waitErr turns the end of a wait into the caller's error.
func (b *Backend) waitErr(ctx context.Context, op opName, err error) error {
	if ctx.Err() != nil {
		return newError(CodeOf(ctx.Err()), op.String(), fmt.Errorf("not acquired: %w", ctx.Err()))
	}
	if e := b.Err(); e != nil {
		return e
	}
	return wrapOp(op, err)
}

// opContext returns ctx, additionally cancelled when the Backend ends;
// the caller must call cancel.
func (b *Backend) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(b.ctx, func() { cancel(context.Cause(b.ctx)) })
	return c, func() {
		stop()
		cancel(context.Canceled)
	}
}

// CheckLockOptions validates o against this Backend's timing model
// without acquiring anything: the margin must leave room to renew the
// lease it applies to (the lock's own lease when o.TTL is set, else the
// session's). A lease whose TTL the driver chooses is checked again when
// granted. The feature packages call it at construction.
func (b *Backend) CheckLockOptions(o LockOptions) error {
	if o.TTL < 0 || o.Margin < 0 || o.MaxPoll < 0 {
		return newError(driver.CodeInvalidArgument, "lock options", errors.New("negative TTL, margin or poll cap"))
	}
	if o.TTL == 0 && o.Margin == 0 {
		return nil
	}
	_, err := b.lockTiming(o.TTL, o.Margin)
	return err
}

// opName describes an operation on a name for errors ("lock \"x\""); it
// is formatted only when an error needs it.
type opName struct{ verb, name string }

func (o opName) String() string { return fmt.Sprintf("%s %q", o.verb, o.name) }

// wrapOp is wrap with an op formatted only on error.
func wrapOp(op opName, err error) error {
	if err == nil {
		return nil
	}
	return wrap(op.String(), err)
}

// Package lock provides distributed locks with fencing tokens and a loss
// context, on any baton backend.
//
// A Lock is a handle on a named lock. Handles are not reentrant: a second
// acquire through the same handle, another handle of the same Backend, or
// another process all exclude each other. Every grant carries a fencing
// token that grows with every grant of the name, and a context that is
// cancelled the moment the grant is lost or in doubt; run the protected
// work under Context() and pass Token() to the resources you write, so a
// stale holder is refused.
package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-go/baton/backend"
)

// ErrNotHeld is returned by Release when the handle does not hold the lock
// (never acquired, released already, or lost). It matches
// backend.ErrNotHeld.
var ErrNotHeld = backend.ErrNotHeld

// ErrNotAcquired is matched by the error of an Acquire whose context ended
// before the lock was granted; the error also matches the context's error
// (context.DeadlineExceeded or context.Canceled).
var ErrNotAcquired = errors.New("lock not acquired")

// ErrAlreadyHeld is returned by Acquire on a handle that holds the lock:
// locks are not reentrant, and waiting would deadlock.
var ErrAlreadyHeld = errors.New("lock already held by this handle")

// Lock is a handle on the distributed lock of one name. It is safe for
// concurrent use; at most one grant is held through a handle at a time.
type Lock struct {
	b    *backend.Backend
	name string
	o    options

	mu sync.Mutex
	g  *backend.Grant
}

// New returns a handle on lock name of backend b. It validates the options
// (e.g. the safety margin must be below the TTL) and does no I/O.
func New(b *backend.Backend, name string, opts ...Option) (*Lock, error) {
	if b == nil {
		return nil, fmt.Errorf("lock %q: nil backend: %w", name, backend.ErrInvalidArgument)
	}
	if name == "" {
		return nil, fmt.Errorf("lock: empty name: %w", backend.ErrInvalidArgument)
	}
	o := options{}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	if err := b.CheckLockOptions(o.lockOptions()); err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	return &Lock{b: b, name: name, o: o}, nil
}

// Name returns the lock's name.
func (l *Lock) Name() string { return l.name }

// TryAcquire tries once to take the lock. It returns false, with a nil
// error, when another holder has it — including this very handle (not
// reentrant). It blocks for one round trip to the backend.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.heldLocked() {
		return false, nil
	}
	g, ok, err := l.b.TryLock(ctx, l.name, l.o.lockOptions())
	if err != nil || !ok {
		return false, err
	}
	l.g = g
	return true, nil
}

// Acquire takes the lock, waiting until it is free or ctx is done. It waits
// natively where the backend can (a watch, a blocking query, a blocking
// call), otherwise it polls with jittered exponential backoff capped by
// WithMaxPollInterval. When ctx ends first the error matches ErrNotAcquired
// and ctx's error, and nothing is held.
func (l *Lock) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.heldLocked() {
		l.mu.Unlock()
		return fmt.Errorf("acquire lock %q: %w", l.name, ErrAlreadyHeld)
	}
	l.mu.Unlock()
	g, err := l.b.Lock(ctx, l.name, l.o.lockOptions())
	if err != nil {
		if ctx.Err() != nil {
			return &notAcquiredError{name: l.name, err: err}
		}
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.heldLocked() { // a concurrent TryAcquire won meanwhile; give ours back
		_ = g.Release(context.WithoutCancel(ctx))
		return fmt.Errorf("acquire lock %q: %w", l.name, ErrAlreadyHeld)
	}
	l.g = g
	return nil
}

// heldLocked reports whether the handle holds a live grant; a lost grant
// is dropped (and released best-effort by the backend).
func (l *Lock) heldLocked() bool {
	if l.g == nil {
		return false
	}
	if l.g.Lost() {
		g := l.g
		l.g = nil
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = g.Release(ctx)
		return false
	}
	return true
}

// Release gives the lock up. It returns an error matching ErrNotHeld when
// the handle held nothing or its grant had been lost. It blocks for one
// round trip.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	g := l.g
	l.g = nil
	l.mu.Unlock()
	if g == nil {
		return fmt.Errorf("release lock %q: %w", l.name, ErrNotHeld)
	}
	return g.Release(ctx)
}

// Held reports whether the handle holds the lock and the grant is not
// lost or in doubt.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g != nil && !l.g.Lost()
}

// Token returns the fencing token of the current grant, or 0 when nothing
// is held. Tokens of one name grow with every grant, within the backend's
// fencing strength (backend.Characteristics().Fencing).
func (l *Lock) Token() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		return 0
	}
	return l.g.Token()
}

// Context returns the current grant's context: cancelled when the grant is
// lost, in doubt or released, with the reason available through
// context.Cause. When nothing is held it returns an already cancelled
// context whose cause matches ErrNotHeld.
func (l *Lock) Context() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(fmt.Errorf("lock %q: %w", l.name, ErrNotHeld))
		return ctx
	}
	return l.g.Context()
}

// Valid reports whether this handle holds the lock and its lease cannot
// have expired: it compares the clock with the grant's loss deadline, so
// a process resumed after a pause (SIGSTOP, a long GC, a VM stall) past
// that deadline sees false on its first check, before any timer ran. The
// pattern for a write to the outside world: check Valid right before it,
// and make the write carry Token so the store refuses it if the grant
// ended in between. It does not block.
func (l *Lock) Valid() bool {
	l.mu.Lock()
	g := l.g
	l.mu.Unlock()
	return g != nil && g.Valid()
}

// Holder reports who holds the lock now (any handle, any member); ok is
// false when it is free.
func (l *Lock) Holder(ctx context.Context) (h backend.Holder, ok bool, err error) {
	return l.b.LockHolder(ctx, l.name)
}

// Break force-releases the lock whoever holds it, where the backend can
// (an error matching backend.ErrUnimplemented otherwise). It is an
// administrative tool: the holder is only told on its next refresh.
func (l *Lock) Break(ctx context.Context) (bool, error) {
	return l.b.BreakLock(ctx, l.name)
}

// Do acquires lock name (waiting as Acquire does), runs fn under the
// grant's context with the fencing token, and releases the lock. fn must
// return when its context is cancelled: that is how it learns the lock was
// lost. Do returns fn's error, or the acquire/release error.
func Do(ctx context.Context, b *backend.Backend, name string, fn func(ctx context.Context, token uint64) error, opts ...Option) error {
	l, err := New(b, name, opts...)
	if err != nil {
		return err
	}
	if err := l.Acquire(ctx); err != nil {
		return err
	}
	gctx := l.Context()
	runCtx, cancel := context.WithCancelCause(gctx)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	ferr := fn(runCtx, l.Token())
	stop()
	cancel(nil)
	rerr := l.Release(context.WithoutCancel(ctx))
	if ferr != nil {
		return ferr
	}
	if rerr != nil && errors.Is(rerr, ErrNotHeld) {
		return fmt.Errorf("lock %q was lost while held: %w", name, rerr)
	}
	return rerr
}

type notAcquiredError struct {
	name string
	err  error
}

func (e *notAcquiredError) Error() string {
	return fmt.Sprintf("acquire lock %q: not acquired: %v", e.name, e.err)
}

func (e *notAcquiredError) Unwrap() error { return e.err }

func (e *notAcquiredError) Is(target error) bool { return target == ErrNotAcquired }

package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Grant is a held lock or a held leadership. Its Context is cancelled, with
// a cause matching ErrLost, the moment ownership is lost or in doubt: the
// session was lost or suspended, a refresh found the lock gone, or the
// lease (measured from when the acquiring request was sent) may expire
// within the safety margin. Work done under a grant must run under its
// Context. A Grant is safe for concurrent use.
//
// A timer fires late after a process pause (SIGSTOP, a long GC, a VM
// stall), so Context().Err() and Valid() also compare the clock with the
// loss deadline: a process resumed past it sees the loss on its first
// check. Check Valid (or Context().Err()) right before each write to the
// outside world, and make the write carry Token, so that the store can
// refuse a writer whose grant ended while it was paused after the check.
type Grant struct {
	b      *Backend
	key    string
	name   string
	token  uint64
	ttl    time.Duration // own lease; 0 when bound to the session
	timing Timing        // the lease's timing model (session's when ttl == 0)
	sent   time.Time     // when the acquiring request was sent

	ctx    *grantCtx
	ctxv   grantCtx // what ctx points to, allocated with the grant
	cancel context.CancelCauseFunc

	mu         sync.Mutex
	validUntil time.Time // own lease: last refresh sent + ttl
	lastSent   time.Time
	lastErr    error     // of the last refresh, while they fail
	retryAt    time.Time // own lease: retry of a failed refresh; zero otherwise
	inflight   bool      // own lease: a refresh is under way
	released   bool

	// The refresh scheduler's (see refresh.go), guarded by b.ref.mu.
	hidx int       // index in the scheduler's heap; -1 when not in it
	due  time.Time // when the scheduler next looks at the grant
}

// grantCtx is a grant's context: a cancel-cause context whose Err also
// compares the clock with the loss deadline, so a paused process sees the
// loss before the timer that would report it had a chance to run. Its
// Value exposes the inner context, so children created with the context
// package attach to it directly, without a goroutine.
type grantCtx struct {
	context.Context
	g *Grant
}

// Err returns the context's error; past the loss deadline it first
// cancels the grant (with a cause matching ErrExpired).
func (c *grantCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.g.checkDeadline() {
		return c.Context.Err()
	}
	return nil
}

// String names the context for debugging.
func (c *grantCtx) String() string { return fmt.Sprintf("backend.Grant(%q).Context", c.g.name) }

// errReleased is the cause of a grant's context after Release.
var errReleased = errors.New("released")

// ErrReleased is the context cause of a grant released by its holder (or
// revoked by the program, as the partitioner does with a partition it
// gives up). It is coded canceled, not lost.
var ErrReleased = &Error{Code: driver.CodeCanceled, Op: "grant", Err: errReleased}

// Token returns the grant's fencing token: it is greater than the token of
// every earlier grant of the same name on the same backend, within the
// driver's fencing strength (Characteristics().Fencing).
func (g *Grant) Token() uint64 { return g.token }

// Name returns the lock name or the group of a leadership.
func (g *Grant) Name() string { return g.name }

// Context returns the context that is cancelled when the grant is lost,
// in doubt, or released. context.Cause says why.
func (g *Grant) Context() context.Context { return g.ctx }

// Valid reports whether the grant is still held and its lease cannot
// have expired: false once lost, in doubt or released, and false as soon
// as the clock passes the loss deadline even if no timer has run yet
// (after a process pause). It does not block.
func (g *Grant) Valid() bool { return g.ctx.Err() == nil }

// AcquiredAt returns when the request that acquired the grant was sent.
func (g *Grant) AcquiredAt() time.Time { return g.sent }

// TTL returns the grant's own lease, or 0 when it lives as long as the
// session.
func (g *Grant) TTL() time.Duration { return g.ttl }

// Timing returns the timing model the grant is kept by: its own lease's,
// or the session's when it lives as long as the session.
func (g *Grant) Timing() Timing { return g.timing }

// Deadline returns the instant the grant is cancelled unless its lease is
// renewed or refreshed first; ok is false when it has none (a session
// that cannot expire while the process lives).
func (g *Grant) Deadline() (t time.Time, ok bool) {
	t = g.lossAt()
	return t, !t.IsZero()
}

// Lost reports whether the grant was lost or put in doubt (not released).
func (g *Grant) Lost() bool {
	return g.ctx.Err() != nil && CodeOf(context.Cause(g.ctx)) == driver.CodeLost
}

// lossAt returns the loss deadline: the lease's end minus the margin; zero
// when there is none.
func (g *Grant) lossAt() time.Time {
	if g.ttl > 0 {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.validUntil.Add(-g.timing.Margin)
	}
	if g.timing.TTL == 0 {
		return time.Time{}
	}
	g.b.mu.Lock()
	defer g.b.mu.Unlock()
	return g.b.liveUntil.Add(-g.timing.Margin)
}

// checkDeadline cancels the grant when the clock has passed its loss
// deadline; it reports whether it did.
func (g *Grant) checkDeadline() bool {
	at := g.lossAt()
	if at.IsZero() || g.b.o.clock.Now().Before(at) {
		return false
	}
	g.lose(g.expiry(at))
	return true
}

// expiry builds the cause of a grant whose loss deadline at has passed.
func (g *Grant) expiry(at time.Time) error {
	var last error
	what := "lease"
	if g.ttl > 0 {
		g.mu.Lock()
		last = g.lastErr
		g.mu.Unlock()
	} else {
		what = "session"
		g.b.mu.Lock()
		last = g.b.lastRenewErr
		g.b.mu.Unlock()
	}
	detail := fmt.Sprintf("%s valid until %s, margin %v", what, at.Add(g.timing.Margin).Format(time.RFC3339Nano), g.timing.Margin)
	return lost(g.op(), ErrExpired, detail, last)
}

func (g *Grant) op() string { return fmt.Sprintf("grant %q", g.name) }

// Release gives the grant up. It blocks until the server confirms or ctx
// is done. It returns an error matching ErrNotHeld when the grant was no
// longer held (lost, expired, broken, or released before); the grant's
// Context is cancelled either way. When the server does not answer (an
// error matching ErrUnavailable or ErrDeadlineExceeded: a failover, a
// member that died with the request), the Backend keeps releasing the
// lock in the background until the server confirms, finds it gone, or the
// Backend closes, so a successor does not wait for the lock's TTL.
func (g *Grant) Release(ctx context.Context) error {
	return g.release(ctx, ErrReleased)
}

// release gives the grant up, cancelling its context with cause unless it
// ended already.
func (g *Grant) release(ctx context.Context, cause error) error {
	g.mu.Lock()
	if g.released {
		g.mu.Unlock()
		return newError(driver.CodeNotHeld, fmt.Sprintf("release %q", g.name), errors.New("already released"))
	}
	g.released = true
	g.mu.Unlock()
	lostCause := error(nil)
	if g.ctx.Err() != nil {
		lostCause = context.Cause(g.ctx)
	}
	// Cancel first: a refresh under way then fails quietly, and the
	// unlock need not wait for it.
	g.cancel(cause)
	g.b.unschedule(g)
	g.b.removeGrant(g)
	g.b.observeReleased(g, lostCause)
	if g.b.ctx.Err() != nil {
		// The session is gone (lost or closed): the store dropped the
		// grant with it, and the connection can no longer be used.
		return newError(driver.CodeNotHeld, g.releaseOp(), fmt.Errorf("session ended: %v", context.Cause(g.b.ctx)))
	}
	err := g.b.conn.Unlock(ctx, g.key, g.token)
	if err == nil && lostCause == nil {
		return nil
	}
	switch CodeOf(err) {
	case driver.CodeUnavailable, driver.CodeDeadlineExceeded:
		// No answer (a failover, a member that died with the request):
		// the lock may still be held on the server. Keep releasing it
		// in the background instead of leaving it to its TTL, which a
		// successor would wait out; the error still tells the caller
		// the release was not confirmed.
		g.b.releaseInBackground(g)
	}
	op := g.releaseOp()
	if lostCause != nil {
		// The grant ended before Release whether or not the store still
		// had the lock (a grant in doubt may still be there): report it,
		// so the caller learns that its work may have overlapped.
		switch c := CodeOf(err); {
		case err == nil:
			return newError(driver.CodeNotHeld, op, fmt.Errorf("lost before release: %v", lostCause))
		case c == driver.CodeNotHeld || c == driver.CodeLost:
			return newError(driver.CodeNotHeld, op, fmt.Errorf("%w (lost before: %v)", err, lostCause))
		}
	}
	return wrap(op, err)
}

func (g *Grant) releaseOp() string { return fmt.Sprintf("release %q", g.name) }

// lose cancels the grant's context with cause and, unless the session is
// gone, releases the lock on the server in the background so a successor
// need not wait for a TTL (or, for a lock bound to a session that
// survives, forever).
func (g *Grant) lose(cause error) {
	if g.ctx.Context.Err() != nil {
		return
	}
	g.cancel(cause)
	g.b.unschedule(g)
	if context.Cause(g.ctx) != cause {
		return // someone else ended it first
	}
	g.b.observeLost(g, cause)
	g.b.releaseInBackground(g)
}

// releaseInBackground starts releaseLost for g, unless the Backend is
// closed or its session gone (the store dropped the lock with it).
func (b *Backend) releaseInBackground(g *Grant) {
	b.unlockInBackground(g.key, g.token, grantFields(g))
}

// unlockInBackground starts releaseLost for the lock key granted with
// token (f: its log fields), unless the Backend is closed or its session
// gone.
func (b *Backend) unlockInBackground(key string, token uint64, f [2]zap.Field) {
	b.mu.Lock()
	if b.closed || b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		b.releaseLost(key, token, f)
	}()
}

// releaseLost releases a grant's lock on the server after the grant was
// lost, or after a Release whose unlock got no answer (a failover, a
// member that died with the request). While the session is suspended, or
// the store is unavailable, it retries (the session may survive, and with
// it the lock): until the lock is released or found gone, or the Backend
// ends.
func (b *Backend) releaseLost(key string, token uint64, f [2]zap.Field) {
	wait := 10 * time.Millisecond
	for {
		liveCh, _, suspended := b.liveness()
		if !suspended {
			ctx, cancel := context.WithTimeout(b.ctx, b.attemptTimeout())
			err := b.conn.Unlock(ctx, key, token)
			cancel()
			switch CodeOf(err) {
			case driver.CodeUnavailable, driver.CodeDeadlineExceeded:
				b.log.Debug("release of a lost grant failed; retrying", f[0], f[1], causeField(err))
			default:
				if err != nil && CodeOf(err) != driver.CodeNotHeld && b.ctx.Err() == nil {
					b.log.Debug("release of a lost grant failed", f[0], f[1], causeField(err))
				}
				return
			}
		}
		t := b.o.clock.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-liveCh:
		case <-t.C():
		}
		t.Stop()
		wait = min(2*wait, time.Second)
	}
}

// attemptTimeout bounds one request of the portable layer's own (a
// background release): the renew interval when the session has a TTL,
// else 5s.
func (b *Backend) attemptTimeout() time.Duration {
	if b.timing.Interval > 0 {
		return b.timing.Interval
	}
	return 5 * time.Second
}

// newGrant registers a grant and, for an own lease, schedules its
// refreshes.
func (b *Backend) newGrant(key, name string, lease driver.Lease, sent time.Time, margin time.Duration) (*Grant, error) {
	if !lease.Sent.IsZero() {
		sent = lease.Sent
	}
	timing, err := b.lockTiming(lease.TTL, margin)
	if err != nil {
		return nil, err
	}
	b.heard(sent)
	g := &Grant{
		b: b, key: key, name: name, token: lease.Token, ttl: lease.TTL, timing: timing,
		sent: sent, lastSent: sent, validUntil: sent.Add(lease.TTL), hidx: -1,
	}
	inner, cancel := context.WithCancelCause(b.ctx)
	g.ctxv = grantCtx{Context: inner, g: g}
	g.ctx, g.cancel = &g.ctxv, cancel
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		g.cancel(ErrClosed)
		return nil, ErrClosed
	}
	b.grants[g] = struct{}{}
	suspended := b.suspended
	if lease.TTL == 0 && timing.TTL > 0 && timing.Margin > b.watchMargin {
		b.watchMargin = timing.Margin
		b.notifyLocked() // the watchdog must wake earlier
	}
	startLoop := lease.TTL > 0 && !b.ref.started
	if startLoop {
		b.ref.started = true
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if startLoop {
		go b.refreshLoop()
	}
	if lease.TTL > 0 {
		b.schedule(g)
	}
	b.observeAcquired(g)
	if suspended && lease.TTL == 0 {
		g.lose(lost(g.op(), ErrSuspended, "granted while the session was suspended", nil))
	}
	return g, nil
}

func (b *Backend) removeGrant(g *Grant) {
	b.mu.Lock()
	delete(b.grants, g)
	b.mu.Unlock()
}

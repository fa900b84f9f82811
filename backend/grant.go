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
type Grant struct {
	b      *Backend
	key    string
	name   string
	token  uint64
	ttl    time.Duration // own lease; 0 when bound to the session
	margin time.Duration
	sent   time.Time // when the acquiring request was sent

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // stops the grant's goroutine
	done   chan struct{}

	mu         sync.Mutex
	validUntil time.Time // own lease: last refresh sent + ttl
	lastSent   time.Time
	released   bool
}

// errReleased is the cause of a grant's context after Release.
var errReleased = errors.New("released")

// ErrReleased is the context cause of a grant released by its holder.
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

// AcquiredAt returns when the request that acquired the grant was sent.
func (g *Grant) AcquiredAt() time.Time { return g.sent }

// TTL returns the grant's own lease, or 0 when it lives as long as the
// session.
func (g *Grant) TTL() time.Duration { return g.ttl }

// Lost reports whether the grant was lost or put in doubt (not released).
func (g *Grant) Lost() bool {
	return g.ctx.Err() != nil && !errors.Is(context.Cause(g.ctx), errReleased)
}

// Release gives the grant up. It blocks until the server confirms or ctx
// is done. It returns an error matching ErrNotHeld when the grant was no
// longer held (lost, expired, broken, or released before); the grant's
// Context is cancelled either way.
func (g *Grant) Release(ctx context.Context) error {
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
	// unlock need not wait for the grant's goroutine to exit.
	g.cancel(ErrReleased)
	g.stop()
	defer func() { <-g.done }()
	g.b.removeGrant(g)
	op := fmt.Sprintf("release %q", g.name)
	if g.b.ctx.Err() != nil {
		// The session is gone (lost or closed): the store dropped the
		// grant with it, and the connection can no longer be used.
		return newError(driver.CodeNotHeld, op, fmt.Errorf("session ended: %v", context.Cause(g.b.ctx)))
	}
	err := g.b.conn.Unlock(ctx, g.key, g.token)
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

// lose cancels the grant's context with cause and, unless the session is
// gone, releases the lock on the server in the background so a successor
// need not wait for a TTL (or, for a lock bound to a session that
// survives, forever).
func (g *Grant) lose(cause error) {
	if g.ctx.Err() != nil {
		return
	}
	g.b.log.Warn("grant lost", zap.String("name", g.name), zap.Uint64("token", g.token), zap.Error(cause))
	g.cancel(cause)
	b := g.b
	b.mu.Lock()
	if b.closed || b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		b.releaseLost(g)
	}()
}

// releaseLost releases a lost grant's lock on the server. While the
// session is suspended, or the store is unavailable, it retries (the
// session may survive, and with it the lock): until the lock is released
// or found gone, or the Backend ends.
func (b *Backend) releaseLost(g *Grant) {
	wait := 10 * time.Millisecond
	for {
		liveCh, _, suspended := b.liveness()
		if !suspended {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			err := b.conn.Unlock(ctx, g.key, g.token)
			cancel()
			switch CodeOf(err) {
			case driver.CodeUnavailable, driver.CodeDeadlineExceeded:
				b.log.Debug("release of a lost grant failed; retrying", zap.String("name", g.name), zap.Error(err))
			default:
				if err != nil && CodeOf(err) != driver.CodeNotHeld && b.ctx.Err() == nil {
					b.log.Debug("release of a lost grant failed", zap.String("name", g.name), zap.Error(err))
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

// newGrant registers a grant and starts its goroutine.
func (b *Backend) newGrant(key, name string, lease driver.Lease, sent time.Time, margin time.Duration) (*Grant, error) {
	if !lease.Sent.IsZero() {
		sent = lease.Sent
	}
	g := &Grant{
		b: b, key: key, name: name, token: lease.Token, ttl: lease.TTL,
		sent: sent, lastSent: sent, validUntil: sent.Add(lease.TTL), done: make(chan struct{}),
	}
	ref := lease.TTL
	if ref == 0 && b.session.Liveness == driver.LivenessTTL {
		ref = b.session.TTL
	}
	switch {
	case margin == 0 && b.o.margin > 0:
		margin = b.o.margin
	case margin == 0:
		margin = ref / 5
	}
	if ref > 0 && margin >= ref {
		return nil, newError(driver.CodeInvalidArgument, fmt.Sprintf("grant %q", name),
			fmt.Errorf("safety margin %v is not below the lease %v", margin, ref))
	}
	g.margin = margin
	g.ctx, g.cancel = context.WithCancelCause(b.ctx)
	runCtx, stop := context.WithCancel(g.ctx)
	g.stop = stop
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		stop()
		g.cancel(ErrClosed)
		return nil, ErrClosed
	}
	b.grants[g] = struct{}{}
	suspended := b.suspended
	// A grant bound to a session the driver monitors has nothing to time
	// or refresh: the observer cancels it. Only leases need a goroutine.
	timed := lease.TTL > 0 || b.session.Liveness == driver.LivenessTTL
	if timed {
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if timed {
		go g.run(runCtx)
	} else {
		close(g.done)
	}
	if suspended && lease.TTL == 0 {
		g.lose(newError(driver.CodeLost, "session suspended", errors.New("granted while the session was suspended")))
	}
	return g, nil
}

func (b *Backend) removeGrant(g *Grant) {
	b.mu.Lock()
	delete(b.grants, g)
	b.mu.Unlock()
}

// run watches the grant's lease: it refreshes an own lease every third of
// its TTL and reports the grant lost when the lease (own, or the session's
// for TTL liveness) may expire within the margin.
func (g *Grant) run(ctx context.Context) {
	defer g.b.wg.Done()
	defer close(g.done)
	clock := g.b.o.clock
	retry := time.Time{}
	for {
		if ctx.Err() != nil { // released, lost (also by a refresh), or the Backend ended
			return
		}
		liveCh, liveUntil, _ := g.b.liveness()
		g.mu.Lock()
		validUntil, lastSent := g.validUntil, g.lastSent
		g.mu.Unlock()
		var lossAt, refreshAt time.Time
		switch {
		case g.ttl > 0:
			lossAt = validUntil.Add(-g.margin)
			refreshAt = lastSent.Add(g.ttl / 3)
			if !retry.IsZero() {
				refreshAt = retry
			}
		case g.b.session.Liveness == driver.LivenessTTL:
			lossAt = liveUntil.Add(-g.margin)
		}
		now := clock.Now()
		if !lossAt.IsZero() && !now.Before(lossAt) {
			g.lose(newError(driver.CodeLost, fmt.Sprintf("grant %q", g.name),
				fmt.Errorf("lease may expire within the safety margin %v (valid until %s)", g.margin, lossAt.Add(g.margin).Format(time.RFC3339Nano))))
			return
		}
		if !refreshAt.IsZero() && !now.Before(refreshAt) {
			retry = g.refresh(ctx, lossAt)
			continue
		}
		var timerC <-chan time.Time
		var t Timer
		next := lossAt
		if !refreshAt.IsZero() && refreshAt.Before(next) {
			next = refreshAt
		}
		if !next.IsZero() {
			t = clock.NewTimer(next.Sub(now))
			timerC = t.C()
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-liveCh:
		case <-timerC:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// refresh extends an own lease once. It returns when to retry after a
// transient failure (zero after success).
func (g *Grant) refresh(ctx context.Context, lossAt time.Time) time.Time {
	clock := g.b.o.clock
	sent := clock.Now()
	// lossAt is on the Backend's clock, which need not be the wall clock.
	rctx, cancel := context.WithTimeout(ctx, lossAt.Sub(sent))
	err := g.b.conn.RefreshLock(rctx, g.key, g.token, g.ttl)
	cancel()
	if ctx.Err() != nil {
		return time.Time{}
	}
	switch {
	case err == nil:
		g.mu.Lock()
		g.lastSent, g.validUntil = sent, sent.Add(g.ttl)
		g.mu.Unlock()
		return time.Time{}
	case CodeOf(err) == driver.CodeNotHeld || CodeOf(err) == driver.CodeLost:
		g.lose(newError(driver.CodeLost, fmt.Sprintf("grant %q", g.name), fmt.Errorf("refresh: %w", err)))
		return time.Time{}
	default:
		g.b.log.Warn("lock refresh failed", zap.String("name", g.name), zap.Error(err))
		return clock.Now().Add(max(g.ttl/20, time.Millisecond))
	}
}

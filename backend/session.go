package backend

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// renewLoop keeps a TTL member alive: it calls Renew every RenewInterval,
// and on success extends liveness to the time the call was sent plus the
// TTL. When renewals keep failing until that instant, the session is lost.
func (b *Backend) renewLoop() {
	defer b.wg.Done()
	interval := b.session.RenewInterval
	ttl := b.session.Liveness == driver.LivenessTTL
	wait := interval
	var lastErr error // of the last renewal, while they fail
	for {
		t := b.o.clock.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		sent := b.o.clock.Now()
		b.mu.Lock()
		until := b.liveUntil
		b.mu.Unlock()
		if lastErr != nil && ttl && !sent.Before(until) {
			// Renewals kept failing until liveness ran out: a renewal
			// sent now could only revive a session others saw expire.
			b.lose(fmt.Errorf("liveness expired at %s; last renew error: %w", until.Format(time.RFC3339Nano), lastErr))
			return
		}
		timeout := interval
		if left := until.Sub(sent); ttl && left > 0 && left < timeout {
			timeout = left
		}
		ctx, cancel := context.WithTimeout(b.ctx, timeout)
		err := b.conn.Renew(ctx)
		cancel()
		if b.ctx.Err() != nil {
			return
		}
		if err == nil {
			b.setLiveUntil(sent.Add(b.session.TTL))
			wait, lastErr = interval, nil
			continue
		}
		if CodeOf(err) == driver.CodeLost {
			b.lose(fmt.Errorf("renew: %w", err))
			return
		}
		b.log.Warn("renew failed", zap.Error(err))
		now := b.o.clock.Now()
		if ttl && !now.Before(until) {
			b.lose(fmt.Errorf("liveness expired at %s; last renew error: %w", until.Format(time.RFC3339Nano), err))
			return
		}
		lastErr = err
		// Retry soon, and no later than the instant liveness runs out.
		wait = interval / 4
		if ttl {
			wait = min(wait, until.Sub(now))
		}
		wait = max(wait, time.Millisecond)
	}
}

func (b *Backend) setLiveUntil(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.liveUntil) {
		b.liveUntil = t
	}
	b.notifyLocked()
}

// notifyLocked wakes every grant goroutine waiting on liveness.
func (b *Backend) notifyLocked() {
	close(b.liveCh)
	b.liveCh = make(chan struct{})
}

// liveness returns what grant goroutines need: the channel closed on the
// next change, the instant TTL liveness ends, and whether the session is
// suspended.
func (b *Backend) liveness() (<-chan struct{}, time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.liveCh, b.liveUntil, b.suspended
}

// lose ends the session for good: every grant and watch is cancelled with
// a cause matching ErrLost, and Done is closed.
func (b *Backend) lose(cause error) {
	if b.ctx.Err() != nil {
		return
	}
	err := newError(driver.CodeLost, "session", cause)
	b.log.Warn("session lost", zap.Error(err))
	b.cancel(err)
	b.mu.Lock()
	b.notifyLocked()
	b.mu.Unlock()
}

// observer receives session events from the driver.
type observer struct{ b *Backend }

// Suspended puts every grant bound to the session in doubt: their contexts
// are cancelled now, before the session can expire on the server.
func (o observer) Suspended(cause error) {
	b := o.b
	b.mu.Lock()
	b.suspended = true
	grants := make([]*Grant, 0, len(b.grants))
	for g := range b.grants {
		if g.ttl == 0 {
			grants = append(grants, g)
		}
	}
	b.notifyLocked()
	b.mu.Unlock()
	b.log.Warn("session suspended", zap.Error(cause))
	for _, g := range grants {
		g.lose(newError(driver.CodeLost, "session suspended", cause))
	}
}

// Resumed clears the suspension; grants already lost stay lost.
func (o observer) Resumed() {
	b := o.b
	b.mu.Lock()
	b.suspended = false
	b.notifyLocked()
	b.mu.Unlock()
	b.log.Info("session resumed")
}

// Lost ends the Backend.
func (o observer) Lost(cause error) { o.b.lose(cause) }

package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// renewLoop keeps the member alive: it calls Renew every renew interval
// and, on success, extends liveness to the time the call was sent plus
// the TTL. On a TTL backend, when renewals keep failing until that
// instant, the session is lost; on a session backend the session is then
// suspended (nothing was heard from the server for the whole TTL) until a
// renewal succeeds or the driver reports the session lost. A session
// whose TTL is zero cannot expire: Renew is then only a periodic check.
func (b *Backend) renewLoop() {
	defer b.wg.Done()
	interval := b.timing.Interval
	if interval == 0 {
		interval = b.session.RenewInterval
	}
	ttlLiveness := b.session.Liveness == driver.LivenessTTL
	expires := b.timing.TTL > 0
	wait := interval
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
		until, lastErr := b.liveUntil, b.lastRenewErr
		b.mu.Unlock()
		if expires && lastErr != nil && !sent.Before(until) && b.silent(until, lastErr, ttlLiveness) {
			return
		}
		timeout := interval
		if left := until.Sub(sent); expires && left > 0 && left < timeout {
			timeout = left
		}
		ctx, cancel := context.WithTimeout(b.ctx, max(timeout, time.Millisecond))
		err := b.conn.Renew(ctx)
		cancel()
		if b.ctx.Err() != nil {
			return
		}
		b.observeRenew(sent, err)
		if err == nil {
			b.renewed(sent)
			wait = interval
			continue
		}
		if CodeOf(err) == driver.CodeLost {
			b.loseWith("renew", err)
			return
		}
		b.mu.Lock()
		b.lastRenewErr = err
		b.mu.Unlock()
		b.log.Warn("renew failed", causeField(err))
		b.emit(SessionRenewFailed, err)
		now := b.o.clock.Now()
		if expires && !now.Before(until) && b.silent(until, err, ttlLiveness) {
			return
		}
		// Retry soon, and no later than the instant liveness runs out.
		wait = max(b.timing.RTT, interval/4)
		if expires && until.After(now) {
			wait = min(wait, until.Sub(now))
		}
		wait = max(wait, time.Millisecond)
	}
}

// silent handles a session not heard from until its liveness ran out:
// a TTL session is lost (a renewal sent now could only revive a session
// others saw expire); a session backend's session is suspended. It
// reports whether the loop must end.
func (b *Backend) silent(until time.Time, lastErr error, ttlLiveness bool) bool {
	detail := fmt.Sprintf("nothing heard from the server since the renewal sent at %s",
		until.Add(-b.timing.TTL).Format(time.RFC3339Nano))
	if ttlLiveness {
		b.loseWith("liveness expired: "+detail, lastErr)
		return true
	}
	b.mu.Lock()
	already := b.unheard
	b.unheard = true
	b.mu.Unlock()
	if !already {
		b.suspend(lost("session", ErrSuspended, detail, lastErr))
	}
	return false
}

// heard records that a session backend's server answered a request sent
// at sent (an acquisition, a reconnection): on a session backend that
// proves the session alive then, like a ping. A TTL session's lease is
// extended only by Renew.
func (b *Backend) heard(sent time.Time) {
	if b.session.Liveness != driver.LivenessSession || b.timing.TTL == 0 {
		return
	}
	b.mu.Lock()
	extend := sent.Add(b.timing.TTL).After(b.liveUntil) && !b.unheard
	b.mu.Unlock()
	if extend {
		b.renewed(sent)
	}
}

// renewed records a successful renewal sent at sent.
func (b *Backend) renewed(sent time.Time) {
	b.mu.Lock()
	if sent.After(b.liveUntil.Add(-b.timing.TTL)) {
		b.liveUntil = sent.Add(b.timing.TTL)
	}
	b.lastRenewErr = nil
	wasUnheard := b.unheard
	resumed := wasUnheard && !b.suspended
	b.unheard = false
	if wasUnheard {
		// Only the end of an unheard spell changes what the waiters on
		// liveness act on: a later liveUntil needs no wake-up (the
		// watchdog, woken at the earlier deadline, reads the new one),
		// and waking it on every grant and renewal would cost each
		// acquire a goroutine switch.
		b.notifyLocked()
	}
	b.mu.Unlock()
	if resumed {
		b.log.Info("session heard from again")
		b.emit(SessionResumed, nil)
	}
}

// watchdog cancels every grant bound to the session when the session's
// liveness may end within the grant's margin: one goroutine for all of
// them, woken whenever liveness changes.
func (b *Backend) watchdog() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		liveCh, until, maxMargin := b.liveCh, b.liveUntil, b.watchMargin
		b.mu.Unlock()
		now := b.o.clock.Now()
		if !now.Before(until.Add(-maxMargin)) {
			maxMargin = b.expireSessionGrants(now)
			b.mu.Lock()
			b.watchMargin = maxMargin
			b.mu.Unlock()
		}
		var timerC <-chan time.Time
		var t Timer
		if maxMargin > 0 {
			next := until.Add(-maxMargin)
			if now.Before(next) {
				t = b.o.clock.NewTimer(next.Sub(now))
				timerC = t.C()
			}
		}
		select {
		case <-b.ctx.Done():
		case <-liveCh:
		case <-timerC:
		}
		if t != nil {
			t.Stop()
		}
		if b.ctx.Err() != nil {
			return
		}
	}
}

// expireSessionGrants cancels the session-bound grants whose loss
// deadline has passed; it returns the largest margin among those left.
func (b *Backend) expireSessionGrants(now time.Time) time.Duration {
	b.mu.Lock()
	var due []*Grant
	var maxMargin time.Duration
	for g := range b.grants {
		if g.ttl != 0 || g.ctx.Context.Err() != nil {
			continue
		}
		if !now.Before(b.liveUntil.Add(-g.timing.Margin)) {
			due = append(due, g)
			continue
		}
		maxMargin = max(maxMargin, g.timing.Margin)
	}
	b.mu.Unlock()
	for _, g := range due {
		g.checkDeadline()
	}
	return maxMargin
}

// notifyLocked wakes every goroutine waiting on liveness.
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
	return b.liveCh, b.liveUntil, b.suspended || b.unheard
}

// lose ends the session for good: every grant and watch is cancelled with
// a cause matching ErrSessionLost (and ErrLost), and Done is closed.
func (b *Backend) lose(cause error) { b.loseWith("", cause) }

// loseWith is lose with a description of what was observed.
func (b *Backend) loseWith(detail string, cause error) {
	if b.ctx.Err() != nil {
		return
	}
	err := lost("session", ErrSessionLost, detail, cause)
	b.log.Error("session lost", causeField(err))
	b.emit(SessionLost, err)
	b.cancel(err)
	b.observeSessionLost(err)
	b.mu.Lock()
	b.notifyLocked()
	b.mu.Unlock()
}

// suspend cancels every grant bound to the session with cause (matching
// ErrSuspended): the session may expire on the server before it is heard
// from again.
func (b *Backend) suspend(cause error) {
	b.mu.Lock()
	grants := make([]*Grant, 0, len(b.grants))
	for g := range b.grants {
		if g.ttl == 0 {
			grants = append(grants, g)
		}
	}
	b.notifyLocked()
	b.mu.Unlock()
	b.log.Warn("session suspended", causeField(cause))
	b.emit(SessionSuspended, cause)
	for _, g := range grants {
		g.lose(cause)
	}
}

// observer receives session events from the driver.
type observer struct{ b *Backend }

// Suspended puts every grant bound to the session in doubt: their contexts
// are cancelled now, before the session can expire on the server.
func (o observer) Suspended(cause error) {
	b := o.b
	b.mu.Lock()
	b.suspended = true
	b.mu.Unlock()
	b.suspend(lost("session", ErrSuspended, "the driver lost its connection", cause))
}

// Resumed clears the suspension; grants already lost stay lost.
func (o observer) Resumed() {
	b := o.b
	now := b.o.clock.Now()
	b.mu.Lock()
	b.suspended = false
	b.notifyLocked()
	b.mu.Unlock()
	b.heard(now)
	b.log.Info("session resumed")
	b.emit(SessionResumed, nil)
}

// Lost ends the Backend.
func (o observer) Lost(cause error) { o.b.lose(cause) }

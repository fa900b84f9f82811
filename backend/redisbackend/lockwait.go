package redisbackend

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// WaitLock waits for the lock natively, listening to the lock's channel
// (every release, break and acquire is published there in the same
// script). It returns ctx's error when ctx ends first, holding nothing. A
// failing server is retried with a growing pause.
//
// A plain lock's waiters queue on the server in arrival order (NS:q:KEY),
// each entry with a lease (NS:w:KEY) its waiter refreshes every third of
// the lock's TTL while it waits, so that the entry of a waiter that died
// expires. A release pops the first live entry and names its waiter in
// the message ("R>ID"): that waiter tries at once and the others keep
// waiting, so a handoff costs one acquire script, not one per waiter.
// They do not depend on it: when the lock does not change hands (no
// acquire nor release is published) for a handover window after a
// release naming another waiter (a waiter that died after its last
// refresh), they try too. Messages that need no action (acquires, and
// releases naming another waiter while a window is timed) do not wake the
// waiter: they only count as progress. A named waiter that loses
// the race (to TryLock, or after the window) queues again at its place.
// Every waiter also tries when the subscription is confirmed or
// re-established (a release may have been missed), when a message names
// nobody (a release of a version before queues, or with nobody queued),
// and when the holder's lease runs out (an expiry publishes nothing).
//
// A campaign (req.Unordered) keeps nothing on the server while it waits
// and tries on every message, so a candidate that dies delays nobody.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if req.Unordered {
		return c.waitRace(ctx, req)
	}
	return c.waitQueued(ctx, req)
}

// waitRace waits without queuing: it tries again on every message, when
// the subscription is confirmed or re-established, and when the holder's
// lease runs out.
func (c *conn) waitRace(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	l, err := c.listen(c.ks.lockChannel(req.Key))
	if err != nil {
		return driver.Lease{}, err
	}
	defer l.close()
	if l.readyAtOnce {
		// Subscribed before the first try below: releases from now on
		// are heard, and the evReady asks for no second try.
		l.drain()
	}
	pause := retryPause
	for {
		sent := c.clock.Now()
		lease, ok, pttl, err := c.acquire(ctx, req, false)
		switch {
		case ctx.Err() != nil:
			return driver.Lease{}, ctxError(ctx, nil)
		case ok:
			lease.Sent = sent
			return lease, nil
		}
		d, err := nextTry(err, pttl, &pause)
		if err != nil {
			return driver.Lease{}, err
		}
		if err := waitEvent(ctx, l, d); err != nil {
			return driver.Lease{}, err
		}
	}
}

// retryPause is the first pause after a try the server failed.
const retryPause = 10 * time.Millisecond

// nextTry returns how long a waiter waits, at most, before trying again
// after a try that did not acquire: until the holder's lease (pttl) runs
// out, or, when the try failed with err, a pause that doubles from
// retryPause up to a second while the server keeps failing (pause keeps
// it). An error other than the server's being unavailable ends the wait.
func nextTry(err error, pttl time.Duration, pause *time.Duration) (time.Duration, error) {
	if err != nil {
		if code, _ := driver.CodeOf(err); code != driver.CodeUnavailable {
			return 0, err
		}
		d := *pause
		*pause = min(2*d, time.Second)
		return d, nil
	}
	*pause = retryPause
	if pttl < 0 {
		pttl = time.Second // a lock key without a TTL was not written by baton
	}
	return pttl + time.Millisecond, nil
}

// waitEvent waits until l has an event (other than a gap) or d passes.
func waitEvent(ctx context.Context, l *listener, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctxError(ctx, nil)
		case <-t.C:
			return nil
		case <-l.C():
			for _, ev := range l.drain() {
				if ev.kind != evGap {
					return nil
				}
			}
		}
	}
}

// waiter is one queued wait.
type waiter struct {
	id    string        // its entry in the queue
	place int64         // its arrival in the server's clock (µs); 0 before its first entry
	ttl   time.Duration // the lease of its entry

	// Kept by the hub's goroutine (keep), read by the waiter's.
	progress atomic.Int64 // messages showing the lock changing hands
	armed    atomic.Bool  // the waiter is timing a handover window
}

// keep is the waiter's filter of the lock's messages (listener.keep): it
// wakes the waiter for a release naming it or nobody, and for the first
// release naming another waiter while no handover window is timed. Other
// messages only count as progress: an acquire, or a release (there was a
// holder), shows that the lock changes hands.
func (w *waiter) keep(payload string) bool {
	kind, who, named := parseLockMessage(payload)
	switch {
	case kind == 'A' || kind == 'S':
		w.progress.Add(1)
		return false
	case !named || who == w.id:
		return true
	case who == "":
		w.progress.Add(1)
		return false
	default:
		w.progress.Add(1)
		return w.armed.CompareAndSwap(false, true)
	}
}

// clockTimer is a stoppable timer of the connection's clock, nil when not
// set.
type clockTimer struct{ t driver.Timer }

func (t *clockTimer) set(clk driver.Clock, d time.Duration) {
	t.stop()
	t.t = clk.NewTimer(max(d, 0))
}

func (t *clockTimer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
}

func (t *clockTimer) C() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C()
}

// waitQueued waits in the lock's queue (see WaitLock).
func (c *conn) waitQueued(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	w := &waiter{id: newNonce(), ttl: c.lockTTL(req)}
	l, err := c.listenKeep(c.ks.lockChannel(req.Key), w.keep)
	if err != nil {
		return driver.Lease{}, err
	}
	defer l.close()
	if l.readyAtOnce {
		l.drain()
	}
	acquired := false
	defer func() {
		if !acquired {
			c.withdraw(req.Key, w.id)
		}
	}()
	var hold, refresh clockTimer
	defer hold.stop()
	defer refresh.stop()
	pause := retryPause
	for {
		sent := c.clock.Now()
		lease, ok, pttl, err := c.tryQueued(ctx, req, w)
		switch {
		case ctx.Err() != nil:
			return driver.Lease{}, ctxError(ctx, nil)
		case ok:
			acquired = true
			lease.Sent = sent
			return lease, nil
		case err == nil:
			refresh.set(c.clock, w.ttl/3) // the try refreshed the entry
		}
		d, err := nextTry(err, pttl, &pause)
		if err != nil {
			return driver.Lease{}, err
		}
		hold.set(c.clock, d)
		if err := c.awaitTurn(ctx, req, l, w, &hold, &refresh); err != nil {
			return driver.Lease{}, err
		}
	}
}

// awaitTurn returns when the waiter w should try again: the subscription
// is confirmed, a message names w or nobody, a release named another
// waiter and then the lock did not change hands for a handover window,
// or the holder's lease ran out (hold). It refreshes w's entry meanwhile.
func (c *conn) awaitTurn(ctx context.Context, req driver.LockRequest, l *listener, w *waiter, hold, refresh *clockTimer) error {
	var fallback clockTimer
	defer func() {
		fallback.stop()
		w.armed.Store(false)
	}()
	var mark int64 // w.progress when the window started
	for {
		select {
		case <-ctx.Done():
			return ctxError(ctx, nil)
		case <-hold.C():
			hold.t = nil
			return nil
		case <-fallback.C():
			fallback.t = nil
			if p := w.progress.Load(); p != mark {
				// Acquired or released meanwhile: time a window again.
				mark = p
				fallback.set(c.clock, c.handoverWindow(req))
				continue
			}
			c.log.Debug("no acquire within the handover window after a release naming another waiter", zap.String("key", req.Key))
			return nil
		case <-refresh.C():
			refresh.t = nil
			if err := c.refreshWaiter(ctx, req.Key, w); err != nil && ctx.Err() != nil {
				return ctxError(ctx, nil)
			}
			refresh.set(c.clock, w.ttl/3)
		case <-l.C():
			try := false
			for _, ev := range l.drain() {
				switch ev.kind {
				case evReady:
					try = true
				case evMessage:
					kind, who, named := parseLockMessage(ev.payload)
					switch {
					case kind == 'A' || kind == 'S' || (named && who == ""):
					case !named || who == w.id:
						try = true
					case fallback.t == nil:
						// The first release naming another waiter (keep
						// lets no other through while armed).
						mark = w.progress.Load()
						fallback.set(c.clock, c.handoverWindow(req))
					}
				}
			}
			if try {
				return nil
			}
		}
	}
}

// handoverWindow is how long the waiters not named by a release wait for
// the named one's acquire before trying too: eight of this connection's
// acquire round trips, at least 10 ms (internal/handover), and at most a
// thirtieth of the lock's TTL bounded to 50..250 ms, the window before
// round trips are known.
func (c *conn) handoverWindow(req driver.LockRequest) time.Duration {
	return c.rtt.Window(min(max(c.lockTTL(req)/30, 50*time.Millisecond), 250*time.Millisecond))
}

// tryQueued runs the acquire script of a queued waiter once: it acquires,
// removing w's entry, or adds or refreshes w's entry at its place and
// reports how long the blocking grant has left (negative when its key has
// no TTL).
func (c *conn) tryQueued(ctx context.Context, req driver.LockRequest, w *waiter) (driver.Lease, bool, time.Duration, error) {
	t0 := time.Now()
	lease, ok, pttl, rest, err := c.runAcquire(ctx, req, c.sc.acquireQueued,
		[]string{c.ks.lock(req.Key), c.ks.fence(req.Key), c.ks.readers(req.Key), c.ks.queue(req.Key), c.ks.expiries(req.Key)},
		w.id, w.place, ms(w.ttl))
	if err == nil {
		c.rtt.Observe(time.Since(t0))
	}
	if len(rest) > 0 {
		if place, _ := rest[0].(int64); place > 0 {
			w.place = place
		}
	}
	return lease, ok, pttl, err
}

// refreshWaiter renews w's entry, putting it back at its place when it
// is gone (it expired while the waiter was paused, or a release named the
// waiter and it has not tried yet).
func (c *conn) refreshWaiter(ctx context.Context, key string, w *waiter) error {
	if w.place == 0 {
		return nil
	}
	_, _, err := c.eval(ctx, c.sc.refreshWaiter, []string{c.ks.queue(key), c.ks.expiries(key)}, w.id, w.place, ms(w.ttl))
	return err
}

// withdraw removes, in the background, the entry of a waiter that stopped
// waiting without the lock; if a release named it meanwhile, the next
// waiter is named instead.
func (c *conn) withdraw(key, id string) {
	c.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, c.s.socketTimeout)
		defer cancel()
		if _, _, err := c.eval(ctx, c.sc.withdrawWaiter,
			[]string{c.ks.queue(key), c.ks.expiries(key), c.ks.lock(key), c.ks.readers(key)}, id, c.ks.lockChannel(key)); err != nil {
			c.log.Debug("withdrawal from a lock's queue failed; the entry expires", zap.Error(err))
		}
	})
}

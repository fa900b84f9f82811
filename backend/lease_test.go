package backend_test

// Hermetic tests of the timing paths of the portable layer (the renew
// loop, leases measured from their send time, the safety margin, lock
// refresh, session backends' last-heard deadline, pause-safe validity) on
// mem:// in lease mode, under a fake clock: every renewal, refresh and
// expiry happens exactly when the test steps the clock, and faults are
// injected with membackend.FailNext. Nothing sleeps.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

// leaseURL is a fresh mem:// store in lease mode.
func leaseURL(t testing.TB, query string) string {
	return "mem://" + newStore(t) + "?" + query
}

func failNext(t testing.TB, b *backend.Backend, op membackend.Op, n int) {
	t.Helper()
	must(t, membackend.FailNext(storeOf(b), b.MemberID(), op, n), "inject "+op.String()+" failures")
}

// Renewals extend TTL liveness to their send time plus the TTL; when they
// keep failing until then, the session is lost at exactly that instant,
// with a cause matching ErrSessionLost that wraps the last renewal's
// error.
func TestLeaseRenewLoop(t *testing.T) {
	clk := newFakeClock()
	t0 := clk.Now()
	b := open(t, leaseURL(t, "ttl=30s"), "m1", backend.WithClock(clk))
	if s := b.Session(); s.Liveness != driver.LivenessTTL || s.TTL != 30*time.Second || s.RenewInterval != 10*time.Second {
		t.Fatalf("session %+v; want TTL liveness, TTL 30s, renewed every 10s", s)
	}
	g := tryCampaign(t, b, "g") // bound to the session's lease
	var lastRenew time.Time
	for clk.Now().Before(t0.Add(95 * time.Second)) {
		at := clk.step(t)
		if at.Sub(t0)%(10*time.Second) == 0 {
			lastRenew = at
		}
	}
	if b.Err() != nil || g.Lost() {
		t.Fatalf("after renewing for %v (three TTLs): Err %v, grant lost %v", clk.Now().Sub(t0), b.Err(), g.Lost())
	}
	failNext(t, b, membackend.OpRenew, 1000)
	until := lastRenew.Add(30 * time.Second)
	lossAt := until.Add(-6 * time.Second) // the default margin: TTL/5
	for !isClosed(b.Done()) {
		clk.step(t)
		now := clk.Now()
		if now.Before(lossAt) && g.Lost() {
			t.Fatalf("grant lost at %v, before its loss deadline %v", now.Sub(t0), lossAt.Sub(t0))
		}
		if !now.Before(lossAt) && !g.Lost() {
			t.Fatalf("at %v, past the loss deadline %v, the grant is not lost", now.Sub(t0), lossAt.Sub(t0))
		}
		if !isClosed(b.Done()) && !now.Before(until) {
			t.Fatalf("at %v, past the liveness of the last renewal (%v), the session is not lost", now.Sub(t0), until.Sub(t0))
		}
	}
	if at := clk.Now(); !at.Equal(until) {
		t.Fatalf("lost at %v; want at the last renewal's send time plus the TTL, %v", at.Sub(t0), until.Sub(t0))
	}
	wantErr(t, b.Err(), backend.ErrSessionLost, "Err after failing renewals")
	wantErr(t, b.Err(), backend.ErrLost, "Err after failing renewals")
	wantErr(t, b.Err(), membackend.ErrInjected, "the last renewal's error in Err")
	cause := context.Cause(g.Context())
	wantErr(t, cause, backend.ErrExpired, "grant cause")
	wantErr(t, cause, membackend.ErrInjected, "the last renewal's error in the grant's cause")
}

// A lease is valid from the acquiring request's send time for its TTL; the
// grant is lost the margin before that, when refreshes keep failing, and
// its cause wraps the last refresh error.
func TestLeaseGrantLostAtMargin(t *testing.T) {
	clk := newFakeClock()
	b := open(t, leaseURL(t, "ttl=60s"), "m1", backend.WithClock(clk))
	t0 := clk.Now()
	g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second, Margin: 5 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	if g.TTL() != 30*time.Second || !g.AcquiredAt().Equal(t0) {
		t.Fatalf("grant TTL %v acquired at %v; want 30s at the send time", g.TTL(), g.AcquiredAt().Sub(t0))
	}
	if d, ok := g.Deadline(); !ok || !d.Equal(t0.Add(25*time.Second)) {
		t.Fatalf("deadline %v, %v; want 25s", d.Sub(t0), ok)
	}
	failNext(t, b, membackend.OpRefresh, 1000)
	lossAt := t0.Add(25 * time.Second)
	steps := 0
	for !g.Lost() {
		clk.step(t)
		steps++
		if !g.Lost() && !clk.Now().Before(lossAt) {
			t.Fatalf("at %v the grant is not lost; its lease runs out at 30s with a 5s margin", clk.Now().Sub(t0))
		}
	}
	if !clk.Now().Equal(lossAt) {
		t.Fatalf("lost at %v; want at 25s", clk.Now().Sub(t0))
	}
	if steps < 5 {
		t.Fatalf("only %d clock steps before the loss: the failing refresh was not retried", steps)
	}
	cause := context.Cause(g.Context())
	wantErr(t, cause, backend.ErrLost, "cause")
	wantErr(t, cause, backend.ErrExpired, "cause")
	wantErr(t, cause, membackend.ErrInjected, "the last refresh error in the cause")
	if b.Err() != nil {
		t.Fatalf("Err() = %v: losing a grant must not end the session", b.Err())
	}
	wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "release of a lost grant")
}

// Successful refreshes, every third of the TTL, keep a lease valid
// indefinitely; a refresh that fails for a while is retried, and a later
// success extends the lease from its own send time.
func TestLeaseRefresh(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail first %v", failFirst), func(t *testing.T) {
			// A clock far from the wall clock: deadlines must be taken
			// from it as durations, never as wall-clock instants.
			clk := newFakeClockAt(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
			b := open(t, leaseURL(t, "ttl=60s"), "m1", backend.WithClock(clk))
			t0 := clk.Now()
			g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second, Margin: 5 * time.Second})
			if err != nil || !ok {
				t.Fatalf("try lock: %v %v", ok, err)
			}
			if failFirst {
				failNext(t, b, membackend.OpRefresh, 1)
			}
			for clk.Now().Before(t0.Add(100 * time.Second)) {
				clk.step(t)
				if g.Lost() {
					t.Fatalf("grant lost at %v: %v", clk.Now().Sub(t0), context.Cause(g.Context()))
				}
			}
			h, held, err := b.LockHolder(testCtx(t), "l")
			if err != nil || !held || h.Token != g.Token() {
				t.Fatalf("holder %+v (%v, %v); want the refreshed grant %d", h, held, err, g.Token())
			}
			must(t, g.Release(testCtx(t)), "release")
		})
	}
}

// A refresh that finds the lock gone (broken by an administrator) loses
// the grant at once with ErrNoLongerHeld, and Release then reports
// ErrNotHeld.
func TestLeaseRefreshFindsLockBroken(t *testing.T) {
	clk := newFakeClock()
	u := leaseURL(t, "ttl=60s")
	b := open(t, u, "m1", backend.WithClock(clk))
	admin := open(t, u, "admin", backend.WithClock(clk))
	t0 := clk.Now()
	g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	broke, err := admin.BreakLock(testCtx(t), "l")
	if err != nil || !broke {
		t.Fatalf("break lock: %v %v", broke, err)
	}
	for !g.Lost() {
		clk.step(t)
		if !g.Lost() && !clk.Now().Before(t0.Add(10*time.Second)) {
			t.Fatalf("the refresh at %v did not lose the broken grant", clk.Now().Sub(t0))
		}
	}
	wantErr(t, context.Cause(g.Context()), backend.ErrNoLongerHeld, "cause")
	wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "release of a broken grant")
}

// The timing model refuses, at Open and before anything is acquired, a
// margin that leaves no room to renew: margin + interval + rtt < ttl.
func TestTimingModel(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name    string
		query   string
		opts    []backend.Option
		lock    backend.LockOptions
		wantErr error
	}{
		{name: "defaults", query: "ttl=30s"},
		{name: "margin of the whole TTL", query: "ttl=30s", opts: []backend.Option{backend.WithSafetyMargin(30 * time.Second)}, wantErr: backend.ErrInvalidArgument},
		{name: "margin leaving no room to renew", query: "ttl=30s", opts: []backend.Option{backend.WithSafetyMargin(19 * time.Second)}, wantErr: backend.ErrInvalidArgument},
		{name: "margin leaving room", query: "ttl=30s", opts: []backend.Option{backend.WithSafetyMargin(18 * time.Second)}},
		{name: "rtt allowance too large", query: "ttl=30s", opts: []backend.Option{backend.WithRTTAllowance(15 * time.Second)}, wantErr: backend.ErrInvalidArgument},
		{name: "lock margin leaving no room", query: "ttl=30s", lock: backend.LockOptions{TTL: 3 * time.Second, Margin: 2500 * time.Millisecond}, wantErr: backend.ErrInvalidArgument},
		{name: "lock margin leaving room", query: "ttl=30s", lock: backend.LockOptions{TTL: 3 * time.Second, Margin: time.Second}},
		{name: "Backend margin above a lock's lease", query: "ttl=60s", opts: []backend.Option{backend.WithSafetyMargin(10 * time.Second)}, lock: backend.LockOptions{TTL: 5 * time.Second}, wantErr: backend.ErrInvalidArgument},
		{name: "driver's lease refused after the grant", query: "ttl=60s&lock_ttl=3s", opts: []backend.Option{backend.WithSafetyMargin(2 * time.Second)}, wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := leaseURL(t, tt.query)
			b, err := backend.Open(ctx, u, append(tt.opts, backend.WithMemberID("m1"))...)
			if err != nil {
				wantErr(t, err, tt.wantErr, "open")
				return
			}
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			g, _, err := b.TryLock(ctx, "l", tt.lock)
			wantErr(t, err, tt.wantErr, "try lock")
			other := open(t, u, "m2")
			if _, held, herr := other.LockHolder(ctx, "l"); err != nil && (herr != nil || held) {
				t.Fatalf("a refused lock is held (%v, %v)", held, herr)
			}
			if err == nil {
				must(t, g.Release(ctx), "release")
			}
		})
	}
	tm, err := backend.NewTiming(30*time.Second, 0, 0, 0)
	must(t, err, "default timing")
	if tm.Interval != 10*time.Second || tm.Margin != 6*time.Second || tm.RTT != 1500*time.Millisecond {
		t.Fatalf("default timing %+v; want interval 10s, margin 6s, rtt 1.5s", tm)
	}
}

// A session backend honours the margin too: when nothing was heard from
// the server for TTL − margin, every grant bound to the session is
// cancelled (ErrExpired, wrapping the last ping error) before the server
// could expire the session. A ping that succeeds in time keeps the
// session; when none does, the server expires it and the Backend reports
// the session lost — after the grant was cancelled.
func TestLeaseSessionBackendMargin(t *testing.T) {
	for _, failures := range []int{6, 1000} {
		t.Run(fmt.Sprintf("%d failed pings", failures), func(t *testing.T) {
			clk := newFakeClock()
			t0 := clk.Now()
			b := open(t, leaseURL(t, "ttl=30s&liveness=session"), "m1", backend.WithClock(clk))
			if s := b.Session(); s.Liveness != driver.LivenessSession || s.TTL != 30*time.Second {
				t.Fatalf("session %+v; want session liveness with a 30s timeout", s)
			}
			var events []backend.SessionEvent
			evCh := make(chan backend.SessionEvent, 64)
			stop := b.OnSessionState(func(ev backend.SessionEvent) { evCh <- ev })
			defer stop()
			g := tryLock(t, b, "l")
			failNext(t, b, membackend.OpRenew, failures)
			lossAt := t0.Add(24 * time.Second) // last heard at open: 30s − 6s margin
			for !g.Lost() {
				clk.step(t)
				if !g.Lost() && !clk.Now().Before(lossAt) {
					t.Fatalf("at %v the grant is not lost; nothing was heard since 0s", clk.Now().Sub(t0))
				}
			}
			if !clk.Now().Equal(lossAt) {
				t.Fatalf("lost at %v; want at 24s", clk.Now().Sub(t0))
			}
			cause := context.Cause(g.Context())
			wantErr(t, cause, backend.ErrExpired, "cause")
			wantErr(t, cause, membackend.ErrInjected, "the last ping error in the cause")
			for clk.Now().Before(t0.Add(40*time.Second)) && b.Err() == nil {
				clk.step(t)
			}
			if failures < 100 {
				if b.Err() != nil {
					t.Fatalf("the session ended (%v) though a ping succeeded in time", b.Err())
				}
				g2 := tryLock(t, b, "l2") // usable again
				must(t, g2.Release(testCtx(t)), "release")
			} else {
				// Nothing heard for the whole TTL: suspended, not lost
				// (a session backend leaves that verdict to the server).
				// The next call that reaches the store learns it expired.
				if b.Err() != nil {
					t.Fatalf("the session ended (%v) before the server said so", b.Err())
				}
				_, _, err := b.TryLock(testCtx(t), "l3", backend.LockOptions{})
				wantErr(t, err, backend.ErrLost, "a call after the store expired the session")
				waitClosed(t, b.Done(), "the session to be lost")
				wantErr(t, b.Err(), backend.ErrSessionLost, "Err")
			}
			want := []backend.SessionState{backend.SessionConnected, backend.SessionRenewFailed}
			if failures >= 100 {
				want = append(want, backend.SessionSuspended, backend.SessionLost)
			}
			eventually(t, "the session events", func() bool {
				drainEvents(evCh, &events)
				for _, s := range want {
					if !hasState(events, s) {
						return false
					}
				}
				return true
			})
			for _, ev := range events {
				switch ev.State {
				case backend.SessionRenewFailed:
					wantErr(t, ev.Cause, membackend.ErrInjected, "renew failure cause")
				case backend.SessionSuspended:
					wantErr(t, ev.Cause, backend.ErrSuspended, "suspension cause")
				}
			}
		})
	}
}

func drainEvents(ch <-chan backend.SessionEvent, into *[]backend.SessionEvent) {
	for {
		select {
		case ev := <-ch:
			*into = append(*into, ev)
		default:
			return
		}
	}
}

func hasState(evs []backend.SessionEvent, s backend.SessionState) bool {
	for _, ev := range evs {
		if ev.State == s {
			return true
		}
	}
	return false
}

func states(evs []backend.SessionEvent) []backend.SessionState {
	out := make([]backend.SessionState, len(evs))
	for i, ev := range evs {
		out[i] = ev.State
	}
	return out
}

// A process paused past its grant's deadline sees the loss on its first
// check after resuming, before any timer ran: Valid and Context().Err()
// compare the clock with the loss deadline.
func TestPauseSafeValidity(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("own lease %v", own), func(t *testing.T) {
			clk := newFakeClock()
			b := open(t, leaseURL(t, "ttl=30s"), "m1", backend.WithClock(clk))
			o := backend.LockOptions{}
			if own {
				o.TTL = 30 * time.Second
			}
			g, ok, err := b.TryLock(testCtx(t), "l", o)
			if err != nil || !ok {
				t.Fatalf("try lock: %v %v", ok, err)
			}
			child, cancel := context.WithCancel(g.Context())
			defer cancel()
			settle(t)
			// The pause: the clock jumps past the deadline while no
			// timer fires (every goroutine of the process was stopped).
			clk.jump(25 * time.Second)
			if g.Valid() {
				t.Fatal("Valid after a pause past the loss deadline")
			}
			if g.Context().Err() == nil {
				t.Fatal("Context().Err() is nil after a pause past the loss deadline")
			}
			wantErr(t, context.Cause(g.Context()), backend.ErrExpired, "cause")
			if !isClosed(g.Context().Done()) || !isClosed(child.Done()) {
				t.Fatal("Err reported the loss but Done (of the context or a child) is open")
			}
		})
	}
}

// Property: for random TTLs, margins, renewal and refresh failure
// schedules, a grant's context is always cancelled before the store
// could grant its name to another member.
func TestLeasePropertyNeverTwoHolders(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 25 {
		ttl := time.Duration(3+r.IntN(30)) * time.Second
		ownTTL := time.Duration(0)
		if r.IntN(2) == 0 {
			ownTTL = time.Duration(3+r.IntN(30)) * time.Second
		}
		ref := ttl
		if ownTTL > 0 {
			ref = ownTTL
		}
		margin := time.Duration(r.Int64N(int64(ref/2))) + time.Millisecond
		name := fmt.Sprintf("case %d ttl %v own %v margin %v", i, ttl, ownTTL, margin)
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			u := leaseURL(t, fmt.Sprintf("ttl=%s", ttl))
			b, err := backend.Open(testCtx(t), u, backend.WithMemberID("m1"), backend.WithClock(clk))
			if err != nil {
				wantErr(t, err, backend.ErrInvalidArgument, "open")
				return
			}
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			other := open(t, u, "m2", backend.WithClock(clk))
			g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: ownTTL, Margin: margin})
			if err != nil {
				wantErr(t, err, backend.ErrInvalidArgument, "try lock")
				return
			}
			if !ok {
				t.Fatal("lock not acquired")
			}
			failNext(t, b, membackend.OpRenew, r.IntN(8))
			failNext(t, b, membackend.OpRefresh, r.IntN(8))
			// m2's renewals never fail, so its session outlives m1's.
			end := clk.Now().Add(3 * max(ttl, ownTTL))
			for clk.Now().Before(end) {
				clk.step(t)
				live := !g.Lost() && g.Context().Err() == nil
				og, taken, err := other.TryLock(testCtx(t), "l", backend.LockOptions{TTL: ownTTL})
				if err != nil {
					t.Fatalf("other try lock: %v", err)
				}
				if taken {
					if live {
						t.Fatalf("at %v m2 was granted the lock while m1's grant is live", clk.Now())
					}
					must(t, og.Release(testCtx(t)), "release")
				}
				if b.Err() != nil || g.Lost() {
					return
				}
			}
		})
	}
}

// A polled watch and a polled leader observation whose source keeps
// failing end, after the retry budget, with the last error (coded
// unavailable), instead of retrying forever with only a log line.
func TestWatchRetryBudget(t *testing.T) {
	clk := newFakeClock()
	u := pollScheme + "://" + newStore(t)
	b := open(t, u, "watcher", backend.WithClock(clk))
	other := open(t, u, "other")
	must(t, other.CreateGroup(testCtx(t), "g"), "create group")
	w, err := b.WatchGroup(testCtx(t), "g")
	must(t, err, "watch")
	lw, err := b.ObserveLeader(testCtx(t), "g")
	must(t, err, "observe leader")
	<-lw.Changes() // the initial state
	t0 := clk.Now()
	must(t, membackend.SetUnreachable(storeOf(b), b.MemberID(), true), "cut off")
	t.Cleanup(func() { _ = membackend.SetUnreachable(storeOf(b), b.MemberID(), false) })
	for !isClosed(w.Done()) || !isClosed(lw.Done()) {
		clk.step(t)
		if clk.Now().Sub(t0) > backend.MinWatchRetryBudget+5*time.Second {
			t.Fatalf("after %v of failing polls: watch ended %v, observation ended %v", clk.Now().Sub(t0), isClosed(w.Done()), isClosed(lw.Done()))
		}
	}
	if d := clk.Now().Sub(t0); d < backend.MinWatchRetryBudget {
		t.Fatalf("ended after %v, before the retry budget %v", d, backend.MinWatchRetryBudget)
	}
	for range w.Events() {
	}
	wantErr(t, w.Err(), backend.ErrUnavailable, "watch Err")
	wantErr(t, w.Err(), membackend.ErrUnreachable, "watch Err")
	wantErr(t, lw.Err(), backend.ErrUnavailable, "observation Err")
}

// A Release whose unlock gets no answer (a failover, a member that died
// with the request) returns the error, and the Backend keeps releasing
// the lock in the background: the successor gets it without waiting for
// a TTL.
func TestReleaseUnansweredIsRetriedInBackground(t *testing.T) {
	clk := newFakeClock()
	url := leaseURL(t, "ttl=30s")
	a := open(t, url, "a", backend.WithClock(clk))
	b := open(t, url, "b", backend.WithClock(clk))
	ctx := context.Background()
	g, err := a.Lock(ctx, "job", backend.LockOptions{})
	must(t, err, "lock")
	failNext(t, a, membackend.OpUnlock, 2) // the Release and the first retry
	err = g.Release(ctx)
	wantErr(t, err, backend.ErrUnavailable, "Release without an answer")
	wantErr(t, err, membackend.ErrInjected, "Release's cause")
	if g.Context().Err() == nil {
		t.Fatal("the grant's context is not cancelled after Release")
	}
	t0 := clk.Now()
	for {
		if _, held, err := b.LockHolder(ctx, "job"); err == nil && !held {
			break
		}
		if clk.Now().Sub(t0) > time.Second {
			t.Fatal("the lock is still held a second after the unanswered Release: not retried in the background")
		}
		clk.step(t)
	}
	if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("successor's TryLock: %v %v", ok, err)
	}
}

// A lock granted by the store but refused by the Backend (here: the
// lease the driver chose leaves the margin no room to refresh) is handed
// back; when that unlock gets no answer, the Backend keeps releasing it
// in the background, so the live session does not keep it.
func TestRefusedGrantUnansweredUnlockIsRetried(t *testing.T) {
	clk := newFakeClock()
	// The lock's own lease is long (30s): only the retry can free it
	// within the second the test waits.
	url := leaseURL(t, "ttl=30s&lock_ttl=30s")
	a := open(t, url, "a", backend.WithClock(clk))
	b := open(t, url, "b", backend.WithClock(clk))
	ctx := context.Background()
	failNext(t, a, membackend.OpUnlock, 2) // the hand-back and the first retry
	_, ok, err := a.TryLock(ctx, "job", backend.LockOptions{Margin: 25 * time.Second})
	if !errors.Is(err, backend.ErrInvalidArgument) || ok {
		t.Fatalf("TryLock with a margin the 30s lease cannot hold = %v, %v; want a refusal", ok, err)
	}
	if _, held, err := b.LockHolder(ctx, "job"); err != nil || !held {
		t.Fatalf("the refused grant's lock is not held after its unanswered hand-back: %v %v", held, err)
	}
	t0 := clk.Now()
	for {
		if _, held, err := b.LockHolder(ctx, "job"); err == nil && !held {
			break
		}
		if clk.Now().Sub(t0) > time.Second {
			t.Fatal("the refused grant's lock is still held a second later: its unanswered unlock was not retried")
		}
		clk.step(t)
	}
	if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("another member's TryLock: %v %v", ok, err)
	}
}

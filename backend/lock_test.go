package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// LockOptions are checked before anything is acquired.
func TestLockOptionsValidation(t *testing.T) {
	tests := []struct {
		name    string
		give    backend.LockOptions
		wantErr error
	}{
		{name: "zero", give: backend.LockOptions{}},
		{name: "margin leaving room to refresh", give: backend.LockOptions{TTL: time.Second, Margin: 600 * time.Millisecond}},
		{name: "margin leaving no room to refresh", give: backend.LockOptions{TTL: time.Second, Margin: 700 * time.Millisecond}, wantErr: backend.ErrInvalidArgument},
		{name: "margin below TTL but above TTL minus interval", give: backend.LockOptions{TTL: time.Second, Margin: time.Second - 1}, wantErr: backend.ErrInvalidArgument},
		{name: "margin equal to TTL", give: backend.LockOptions{TTL: time.Second, Margin: time.Second}, wantErr: backend.ErrInvalidArgument},
		{name: "margin above TTL", give: backend.LockOptions{TTL: time.Second, Margin: time.Hour}, wantErr: backend.ErrInvalidArgument},
		{name: "negative TTL", give: backend.LockOptions{TTL: -time.Second}, wantErr: backend.ErrInvalidArgument},
		{name: "negative margin", give: backend.LockOptions{Margin: -time.Second}, wantErr: backend.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newStore(t)
			b, other := open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
			ctx := testCtx(t)
			calls := []struct {
				name string
				call func() (*backend.Grant, error)
			}{
				{"TryLock", func() (*backend.Grant, error) { g, _, err := b.TryLock(ctx, "l", tt.give); return g, err }},
				{"Lock", func() (*backend.Grant, error) { return b.Lock(ctx, "l", tt.give) }},
				{"TryCampaign", func() (*backend.Grant, error) { g, _, err := b.TryCampaign(ctx, "l", tt.give); return g, err }},
				{"Campaign", func() (*backend.Grant, error) { return b.Campaign(ctx, "l", tt.give) }},
			}
			for _, c := range calls {
				g, err := c.call()
				wantErr(t, err, tt.wantErr, c.name)
				if err != nil {
					if _, held, herr := other.LockHolder(ctx, "l"); herr != nil || held {
						t.Fatalf("%s refused the options but the lock is held (%v, %v)", c.name, held, herr)
					}
					continue
				}
				must(t, g.Release(ctx), "release")
			}
		})
	}
}

// Lock waits until the lock is free, natively (mem) or by polling
// (mempoll); when its context ends first it returns an error matching both
// the context's error and the sentinel, and it holds nothing.
func TestLockWait(t *testing.T) {
	for _, scheme := range []string{"mem", pollScheme} {
		t.Run(scheme, func(t *testing.T) {
			t.Run("acquires when released", func(t *testing.T) {
				store := newStore(t)
				holder, waiter := open(t, "mem://"+store, "m1"), open(t, scheme+"://"+store, "m2")
				g1 := tryLock(t, holder, "l")
				type result struct {
					g   *backend.Grant
					err error
				}
				res := make(chan result, 1)
				go func() {
					g, err := waiter.Lock(testCtx(t), "l", backend.LockOptions{MaxPoll: 5 * time.Millisecond})
					res <- result{g, err}
				}()
				must(t, g1.Release(testCtx(t)), "release")
				select {
				case r := <-res:
					must(t, r.err, "lock")
					if r.g.Token() <= g1.Token() {
						t.Fatalf("token %d not above %d", r.g.Token(), g1.Token())
					}
					must(t, r.g.Release(testCtx(t)), "release")
				case <-time.After(wait):
					t.Fatal("Lock did not acquire the released lock")
				}
			})
			for _, tc := range []struct {
				name    string
				ctx     func() (context.Context, context.CancelFunc)
				wantCtx error
				want    error
			}{
				{
					name: "deadline",
					ctx: func() (context.Context, context.CancelFunc) {
						return context.WithTimeout(context.Background(), 50*time.Millisecond)
					},
					wantCtx: context.DeadlineExceeded, want: backend.ErrDeadlineExceeded,
				},
				{
					name: "cancel",
					ctx: func() (context.Context, context.CancelFunc) {
						ctx, cancel := context.WithCancel(context.Background())
						time.AfterFunc(50*time.Millisecond, cancel)
						return ctx, cancel
					},
					wantCtx: context.Canceled, want: backend.ErrCanceled,
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					store := newStore(t)
					holder, waiter := open(t, "mem://"+store, "m1"), open(t, scheme+"://"+store, "m2")
					g1 := tryLock(t, holder, "l")
					ctx, cancel := tc.ctx()
					defer cancel()
					g, err := waiter.Lock(ctx, "l", backend.LockOptions{MaxPoll: 5 * time.Millisecond})
					if g != nil {
						t.Fatalf("Lock returned a grant (%v) though the lock was held", err)
					}
					wantErr(t, err, tc.wantCtx, "Lock")
					wantErr(t, err, tc.want, "Lock")
					wantOnce(t, err, "Lock")
					must(t, g1.Release(testCtx(t)), "release")
					if h, held, err := holder.LockHolder(testCtx(t), "l"); err != nil || held {
						t.Fatalf("after the holder released, the lock is held by %+v (%v, %v): the timed-out Lock kept waiting", h, held, err)
					}
				})
			}
		})
	}
}

// Without a native wait, Lock polls TryLock on the Backend's clock: a
// released lock is taken at the next attempt, and attempts never come
// more than MaxPoll apart.
func TestLockPollsOnTheClock(t *testing.T) {
	store := newStore(t)
	clk := newFakeClock()
	holder := open(t, "mem://"+store, "m1")
	waiter := open(t, pollScheme+"://"+store, "m2", backend.WithClock(clk))
	g1 := tryLock(t, holder, "l")
	const maxPoll = time.Minute
	res := make(chan *backend.Grant, 1)
	errc := make(chan error, 1)
	go func() {
		g, err := waiter.Lock(testCtx(t), "l", backend.LockOptions{MaxPoll: maxPoll})
		errc <- err
		res <- g
	}()
	start := clk.Now()
	// Several attempts while held: each waits at most MaxPoll.
	for range 40 {
		at := clk.step(t)
		if d := at.Sub(start); d > maxPoll {
			t.Fatalf("an attempt waited %v; MaxPoll is %v", d, maxPoll)
		}
		start = at
	}
	must(t, g1.Release(testCtx(t)), "release")
	clk.step(t)
	select {
	case err := <-errc:
		must(t, err, "lock")
		g := <-res
		if !g.AcquiredAt().Equal(clk.Now()) {
			t.Errorf("AcquiredAt %v; want the clock's time of the successful attempt %v", g.AcquiredAt(), clk.Now())
		}
		must(t, g.Release(testCtx(t)), "release")
	case <-time.After(wait):
		t.Fatal("Lock did not take the released lock at its next attempt")
	}
}

// Shared locks coexist and exclude an exclusive grant; a driver without
// them says so.
func TestSharedLocks(t *testing.T) {
	store := newStore(t)
	b1, b2 := open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
	ctx := testCtx(t)
	shared := backend.LockOptions{Shared: true}
	g1, ok1, err1 := b1.TryLock(ctx, "l", shared)
	g2, ok2, err2 := b2.TryLock(ctx, "l", shared)
	if err1 != nil || err2 != nil || !ok1 || !ok2 {
		t.Fatalf("two shared grants: %v %v %v %v", ok1, err1, ok2, err2)
	}
	if _, ok, err := b1.TryLock(ctx, "l", backend.LockOptions{}); ok || err != nil {
		t.Fatalf("exclusive grant beside shared ones: %v %v", ok, err)
	}
	must(t, g1.Release(ctx), "release")
	must(t, g2.Release(ctx), "release")
	tryLock(t, b1, "l")
	_, err := b2.Lock(ctx, "x", shared)
	must(t, err, "shared Lock")
}

// BreakLock frees a lock whoever holds it, where the driver can.
func TestBreakLock(t *testing.T) {
	store := newStore(t)
	b1, b2 := open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
	ctx := testCtx(t)
	broke, err := b2.BreakLock(ctx, "l")
	if err != nil || broke {
		t.Fatalf("BreakLock of a free lock: %v %v", broke, err)
	}
	g := tryLock(t, b1, "l")
	broke, err = b2.BreakLock(ctx, "l")
	if err != nil || !broke {
		t.Fatalf("BreakLock of a held lock: %v %v", broke, err)
	}
	g2 := tryLock(t, b2, "l")
	if g2.Token() <= g.Token() {
		t.Fatalf("token after a break %d not above %d", g2.Token(), g.Token())
	}
	wantErr(t, g.Release(ctx), backend.ErrNotHeld, "release of a broken grant")
	if h, held, err := b1.LockHolder(ctx, "l"); err != nil || !held || h.Member != "m2" {
		t.Fatalf("releasing the broken grant touched the new holder: %+v %v %v", h, held, err)
	}
}

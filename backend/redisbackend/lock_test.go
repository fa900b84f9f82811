package redisbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// urls are the two ways to reach the server: directly and through the
// sentinels.
func urls(t *testing.T) map[string]string {
	return map[string]string{"plain": plainURL(t), "sentinel": sentinelURL(t)}
}

func TestLockTokensIncrease(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base)
			a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
			ctx := testCtx(t)
			var last uint64
			for i, be := range []*backend.Backend{a, b, a, b} {
				g, ok, err := be.TryLock(ctx, "job", backend.LockOptions{})
				if err != nil || !ok {
					t.Fatalf("try %d: ok=%v err=%v", i, ok, err)
				}
				if g.Token() <= last {
					t.Fatalf("token %d after %d", g.Token(), last)
				}
				last = g.Token()
				h, held, err := a.LockHolder(ctx, "job")
				if err != nil || !held || h.Member != be.MemberID() || h.Token != g.Token() {
					t.Fatalf("holder = %+v, %v, %v; want %s/%d", h, held, err, be.MemberID(), g.Token())
				}
				if err := g.Release(ctx); err != nil {
					t.Fatalf("release: %v", err)
				}
			}
			if _, held, err := a.LockHolder(ctx, "job"); err != nil || held {
				t.Fatalf("holder after release: held=%v err=%v", held, err)
			}
		})
	}
}

func TestLockNotReentrant(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a := openBackend(t, u, "a")
	ctx := testCtx(t)
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("first: %v %v", ok, err)
	}
	if _, ok, err := a.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("second: ok=%v err=%v; want refused", ok, err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("second release: %v; want ErrNotHeld", err)
	}
}

func TestUnlockWrongToken(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a := openBackend(t, u, "a")
	c := openConn(t, u, "c")
	ctx := testCtx(t)
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	tests := []struct {
		name  string
		token uint64
	}{
		{name: "older", token: g.Token() - 1},
		{name: "newer", token: g.Token() + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Unlock(ctx, "l/x", tt.token); codeOf(err) != driver.CodeNotHeld {
				t.Fatalf("unlock: %v; want not held", err)
			}
			if err := c.RefreshLock(ctx, "l/x", tt.token, time.Second); codeOf(err) != driver.CodeNotHeld {
				t.Fatalf("refresh: %v; want not held", err)
			}
		})
	}
	if h, held, err := a.LockHolder(ctx, "x"); err != nil || !held || h.Token != g.Token() {
		t.Fatalf("holder after foreign unlocks: %+v %v %v", h, held, err)
	}
}

func TestLockWaitWokenByRelease(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base)
			a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
			ctx := testCtx(t)
			g, err := a.Lock(ctx, "job", backend.LockOptions{TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan *backend.Grant, 1)
			errc := make(chan error, 1)
			go func() {
				g, err := b.Lock(ctx, "job", backend.LockOptions{TTL: time.Minute})
				if err != nil {
					errc <- err
					return
				}
				got <- g
			}()
			waitSubscribed(t, a, func(ks keyspace) string { return ks.lockChannel("l/job") })
			start := time.Now()
			if err := g.Release(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case g2 := <-got:
				// The holder's lease was a minute: only the published
				// release can have woken the waiter this soon.
				if d := time.Since(start); d > 5*time.Second {
					t.Fatalf("waiter woke after %v", d)
				}
				if g2.Token() <= g.Token() {
					t.Fatalf("token %d after %d", g2.Token(), g.Token())
				}
				_ = g2.Release(ctx)
			case err := <-errc:
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatal("waiter never acquired")
			}
		})
	}
}

func TestLockWaitNoticesExpiredHolder(t *testing.T) {
	u := freshURL(t, plainURL(t))
	b := openBackend(t, u, "b")
	rdb, ks := rawClient(t, b.Config())
	defer rdb.Close()
	ctx := testCtx(t)
	// A holder that died: its key expires, nothing is published.
	if err := rdb.Set(ctx, ks.lock("l/job"), "7:00:dead", 400*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g, err := b.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("acquired after %v; want soon after the 400ms lease ran out", d)
	}
	_ = g.Release(ctx)
}

func TestLockWaitCanceled(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	if _, err := a.Lock(ctx, "job", backend.LockOptions{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := b.Lock(wctx, "job", backend.LockOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrDeadlineExceeded) {
		t.Fatalf("err = %v; want deadline exceeded", err)
	}
	if h, _, _ := a.LockHolder(ctx, "job"); h.Member != "a" {
		t.Fatalf("holder %+v; want a", h)
	}
}

func TestLockRefreshKeepsLease(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	g, err := a.Lock(ctx, "job", backend.LockOptions{TTL: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Three leases later the backend's refreshes still hold it.
	deadline := time.Now().Add(1800 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("b took a refreshed lock: ok=%v err=%v", ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if g.Context().Err() != nil {
		t.Fatalf("grant lost: %v", context.Cause(g.Context()))
	}
	_ = g.Release(ctx)
}

func TestBreakLockReportsLoss(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	g, err := a.Lock(ctx, "job", backend.LockOptions{TTL: 900 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	broke, err := b.BreakLock(ctx, "job")
	if err != nil || !broke {
		t.Fatalf("break: %v %v", broke, err)
	}
	select {
	case <-g.Context().Done():
		if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
			t.Fatalf("cause %v; want ErrLost", context.Cause(g.Context()))
		}
	case <-ctx.Done():
		t.Fatal("the holder of a broken lock was never told")
	}
	if broke, err := b.BreakLock(ctx, "job"); err != nil || broke {
		t.Fatalf("break of a free lock: %v %v", broke, err)
	}
}

func TestObserveLeaderPushed(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base)
			a, b, o := openBackend(t, u, "a"), openBackend(t, u, "b"), openBackend(t, u, "o")
			ctx := testCtx(t)
			w, err := o.ObserveLeader(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			next := func(want string) backend.LeaderChange {
				t.Helper()
				for {
					select {
					case c, ok := <-w.Changes():
						if !ok {
							t.Fatalf("watch ended: %v", w.Err())
						}
						if c.Leader.Member == want && c.Held == (want != "") {
							return c
						}
					case <-ctx.Done():
						t.Fatalf("no leader %q", want)
					}
				}
			}
			next("")
			ga, err := a.Campaign(ctx, "g", backend.LockOptions{TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if c := next("a"); c.Leader.Token != ga.Token() {
				t.Fatalf("token %d; want %d", c.Leader.Token, ga.Token())
			}
			_ = ga.Release(ctx)
			next("")
			gb, err := b.Campaign(ctx, "g", backend.LockOptions{TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			next("b")
			_ = gb.Release(ctx)
			next("")
		})
	}
}

func TestSharedLockLeaseRefreshedAndExpired(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	s1, ok, err := a.TryLock(ctx, "job", backend.LockOptions{Shared: true, TTL: 600 * time.Millisecond})
	if err != nil || !ok {
		t.Fatalf("shared: %v %v", ok, err)
	}
	s2, ok, err := b.TryLock(ctx, "job", backend.LockOptions{Shared: true, TTL: time.Minute})
	if err != nil || !ok || s2.Token() <= s1.Token() {
		t.Fatalf("second shared: %v %v (token %d after %d)", ok, err, s2.Token(), s1.Token())
	}
	// Three short leases later the backend's refreshes keep a's grant.
	deadline := time.Now().Add(1800 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("exclusive over shared grants: ok=%v err=%v", ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s1.Context().Err() != nil {
		t.Fatalf("refreshed shared grant lost: %v", context.Cause(s1.Context()))
	}
	if err := s1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A reader that died: its entry expires in the server's clock and
	// nothing is published; a blocked exclusive Lock notices.
	rdb, ks := rawClient(t, a.Config())
	defer rdb.Close()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, ks.readers("l/job"), redis.Z{Score: float64(now.UnixMilli() + 400), Member: "99:00:dead"}).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g, err := b.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("exclusive after %v; want soon after the dead reader's 400ms", d)
	}
	_ = g.Release(ctx)
}

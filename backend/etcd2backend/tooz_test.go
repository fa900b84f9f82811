package etcd2backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
)

// Mixed fleets: baton (compat=tooz) and a real tooz member (python3-tooz's
// etcd driver, over requests) on one etcd with the v2 API. tooz's etcd
// driver has locks only; its lock keys sit at the top of the keyspace, so
// each test uses lock names of its own.

// toozWait bounds every wait on the other side (a busy machine).
const toozWait = 30 * time.Second

// toozURLs returns a compat=tooz baton URL and the tooz URL of the same
// server, both with lock_timeout=3 (a dead holder's lock expires in 3 s).
func toozURLs(t *testing.T) (batonURL, toozURL string) {
	base := singleURL(t)
	return nsURL(base, "compat=tooz", "lock_timeout=3"), base + "?lock_timeout=3"
}

// toozLockName is a lock name no other test uses.
func toozLockName() string { return "mixed-" + randomID() }

func TestToozLock(t *testing.T) {
	bu, tu := toozURLs(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t)
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := toozLockName()
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton try lock: %v, %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz took the lock baton holds")
		}
		got := make(chan bool, 1)
		go func() { got <- p.AcquireWithin(name, toozWait) }()
		time.Sleep(200 * time.Millisecond) // let tooz long-poll
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !<-got {
			t.Fatal("tooz did not get the lock baton released")
		}
		// tooz's key stores no member: a holder with an empty member ID.
		if h, ok, err := b.LockHolder(ctx, name); err != nil || !ok || h.Member != "" || h.Token == 0 {
			t.Fatalf("baton sees holder %+v (%v, %v), want tooz's (no member ID, a token)", h, ok, err)
		}
		if !p.Release(name) {
			t.Fatal("tooz release failed")
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		name := toozLockName()
		if !p.Acquire(name) {
			t.Fatal("tooz could not take a free lock")
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton try lock held by tooz: %v, %v; want refused", ok, err)
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{Shared: true}); err != nil || ok {
			t.Fatalf("baton shared try lock held by tooz: %v, %v; want refused", ok, err)
		}
		got := make(chan error, 1)
		go func() {
			g, err := b.Lock(ctx, name, backend.LockOptions{})
			if err == nil {
				if p.Acquire(name) {
					t.Error("tooz took the lock baton got")
				}
				err = g.Release(ctx)
			}
			got <- err
		}()
		time.Sleep(200 * time.Millisecond) // let baton queue
		if !p.Release(name) {
			t.Fatal("tooz release failed")
		}
		if err := <-got; err != nil {
			t.Fatalf("baton lock after tooz released: %v", err)
		}
	})
	t.Run("ToozSeesBatonShared", func(t *testing.T) {
		name := toozLockName()
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{Shared: true})
		if err != nil || !ok {
			t.Fatalf("baton shared try lock: %v, %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz took a lock baton holds shared")
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !p.AcquireWithin(name, toozWait) {
			t.Fatal("tooz did not get the lock after baton's shared grant ended")
		}
		p.Release(name)
	})
}

func TestToozKill(t *testing.T) {
	bu, tu := toozURLs(t)
	ctx := testCtx(t)
	t.Run("BatonSeesTooz", func(t *testing.T) {
		b := openBackend(t, bu, "baton-1")
		p := tooztest.Start(t, tu, "tooz-dies")
		name := toozLockName()
		if !p.Acquire(name) {
			t.Fatal("tooz could not take a free lock")
		}
		start := time.Now()
		p.Kill()
		g, err := b.Lock(ctx, name, backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton lock after tooz was killed: %v", err)
		}
		t.Logf("killed tooz holder's lock taken by baton after %v (lock_timeout 3 s)", time.Since(start).Round(time.Millisecond))
		_ = g.Release(ctx)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		direct := singleURL(t)
		px := testutil.StartProxy(t, strings.TrimPrefix(direct, "etcd://"))
		viaProxy := strings.Replace(bu, strings.TrimPrefix(direct, "etcd://"), px.Addr(), 1)
		dying := openBackend(t, viaProxy, "baton-dies")
		p := tooztest.Start(t, tu, "tooz-1")
		name := toozLockName()
		if _, ok, err := dying.TryLock(ctx, name, backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("baton try lock: %v, %v", ok, err)
		}
		// The baton process is cut off as a crash would: no refresh, no
		// release reaches the server.
		start := time.Now()
		px.Blackhole(true)
		if !p.AcquireWithin(name, toozWait) {
			t.Fatal("tooz could not take the crashed baton member's lock")
		}
		t.Logf("cut-off baton holder's lock taken by tooz after %v (lock_timeout 3 s)", time.Since(start).Round(time.Millisecond))
		p.Release(name)
		px.Close()
		cctx, cancel := context.WithTimeout(ctx, toozWait)
		defer cancel()
		_ = dying.Close(cctx)
	})
}

// TestConformanceTooz runs the suite in compat=tooz mode; each subtest's
// tooz lock keys go below a directory of its own (tooz_lock_dir).
func TestConformanceTooz(t *testing.T) {
	h := harness(singleURL)
	h.NewURL = func(t testing.TB) string {
		return nsURL(singleURL(t), "compat=tooz", "tooz_lock_dir=tl-"+randomID())
	}
	drivertest.Run(t, h)
}

// BenchmarkToozLock measures an uncontended acquire and release through a
// Backend with baton's lock key and with tooz's, side by side (both: PUT
// prevExist=false, then DELETE prevValue=).
func BenchmarkToozLock(b *testing.B) {
	for _, compat := range []string{"baton", "tooz"} {
		b.Run("compat="+compat, func(b *testing.B) {
			ctx := context.Background()
			be := openBackend(b, nsURL(singleURL(b), "compat="+compat), "bench")
			name := toozLockName()
			for b.Loop() {
				g, ok, err := be.TryLock(ctx, name, backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("TryLock = %v, %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

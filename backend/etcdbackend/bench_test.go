package etcdbackend

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// BenchmarkLock measures an uncontended lock round trip through the
// Backend: TryLock (one transaction) and Release (one transaction).
func BenchmarkLock(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, nsURL(singleURL(b)), "bench")
	b.ReportAllocs()
	for b.Loop() {
		g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := g.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockWait is BenchmarkLock with the blocking Lock (the
// LockWaiter path: one transaction that queues and reads the holder).
func BenchmarkLockWait(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, nsURL(singleURL(b)), "bench")
	b.ReportAllocs()
	for b.Loop() {
		g, err := be.Lock(ctx, "bench", backend.LockOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockConn measures the driver alone.
func BenchmarkLockConn(b *testing.B) {
	ctx := context.Background()
	c, _ := openConn(b, nsURL(singleURL(b)), "bench")
	req := driver.LockRequest{Key: "bench", Member: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		l, ok, err := c.TryLock(ctx, req)
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := c.Unlock(ctx, req.Key, l.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockConcurrencyMutex is the peer: etcd's concurrency.Mutex,
// Lock and Unlock on one session, against the same server.
func BenchmarkLockConcurrencyMutex(b *testing.B) {
	ctx := context.Background()
	cli := etcdtest.AdminClient(b, singleURL(b))
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := concurrency.NewMutex(s, "bench-mutex/"+testutil.Unique())
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockVsMutex alternates one Backend lock round trip and one
// concurrency.Mutex round trip on the same server, so that both see the
// same load, and reports each one's ops/s and their ratio.
func BenchmarkLockVsMutex(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, nsURL(singleURL(b)), "bench")
	cli := etcdtest.AdminClient(b, singleURL(b))
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := concurrency.NewMutex(s, "bench-mutex/"+testutil.Unique())
	var ours, theirs time.Duration
	for b.Loop() {
		t0 := time.Now()
		g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := g.Release(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
		theirs += time.Since(t1)
		ours += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(n/ours.Seconds(), "baton-ops/s")
	b.ReportMetric(n/theirs.Seconds(), "mutex-ops/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio")
}

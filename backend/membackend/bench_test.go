package membackend_test

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkLock measures an uncontended TryLock and Release through the
// Backend: the whole cost of a grant (token, grant goroutine, release).
func BenchmarkLock(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, newStore(b), "bench")
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

// BenchmarkLockParallel measures uncontended lock round trips of many
// goroutines, each on its own lock of one store.
func BenchmarkLockParallel(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, newStore(b), "bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		name := newStore(b) // a unique lock name per goroutine
		for pb.Next() {
			g, ok, err := be.TryLock(ctx, name, backend.LockOptions{})
			if err != nil || !ok {
				b.Errorf("TryLock = %v, %v", ok, err)
				return
			}
			if err := g.Release(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkConnLock measures the driver alone: an uncontended TryLock and
// Unlock on a raw connection.
func BenchmarkConnLock(b *testing.B) {
	ctx := context.Background()
	c := openConn(b, newStore(b), "bench", nil)
	r := req("bench", "bench")
	b.ReportAllocs()
	for b.Loop() {
		l, ok, err := c.TryLock(ctx, r)
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := c.Unlock(ctx, r.Key, l.Token); err != nil {
			b.Fatal(err)
		}
	}
}

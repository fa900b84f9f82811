package redisbackend

import (
	"context"
	"testing"
	"time"

	"github.com/bsm/redislock"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// BenchmarkLock measures an uncontended lock acquire and release through
// *backend.Backend (two round trips: the acquire and the release script),
// through the driver alone (the same two scripts, without the Backend's
// grant tracking), and, side by side on the same server, bsm/redislock's
// Obtain and Release (also two scripts, without fencing tokens, pushed
// waits or loss contexts).
func BenchmarkLock(b *testing.B) {
	for name, base := range map[string]string{"plain": plainURL(b), "sentinel": sentinelURL(b)} {
		b.Run("baton/"+name, func(b *testing.B) {
			be := openBackend(b, freshURL(b, base), "bench")
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("lock: %v %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatalf("release: %v", err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
	b.Run("driver/plain", func(b *testing.B) {
		c := openConn(b, freshURL(b, plainURL(b)), "bench")
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			l, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "bench", Member: "bench"})
			if err != nil || !ok {
				b.Fatalf("lock: %v %v", ok, err)
			}
			if err := c.Unlock(ctx, "bench", l.Token); err != nil {
				b.Fatalf("release: %v", err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("redislock/plain", func(b *testing.B) {
		u := freshURL(b, plainURL(b))
		cfg, err := backend.ParseURL(u)
		if err != nil {
			b.Fatal(err)
		}
		rdb, ks := rawClient(b, cfg)
		defer rdb.Close()
		locker := redislock.New(rdb)
		ctx := context.Background()
		key := ks.lock("redislock")
		b.ResetTimer()
		for b.Loop() {
			l, err := locker.Obtain(ctx, key, 30*time.Second, nil)
			if err != nil {
				b.Fatalf("obtain: %v", err)
			}
			if err := l.Release(ctx); err != nil {
				b.Fatalf("release: %v", err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

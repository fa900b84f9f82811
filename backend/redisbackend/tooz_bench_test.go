package redisbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkLockCompat measures an uncontended lock acquire and release
// through *backend.Backend with the driver's own layout (compat=baton) and
// with tooz's (compat=tooz), side by side on the same server: each is two
// scripts, so the ratio shows what the tooz layout costs.
func BenchmarkLockCompat(b *testing.B) {
	for _, mode := range []string{"baton", "tooz"} {
		b.Run("compat="+mode, func(b *testing.B) {
			u := freshURL(b, plainURL(b))
			if mode == "tooz" {
				u = newMixedFleet(b, plainURL(b)).baton
			}
			be := openBackend(b, u, "bench")
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
}

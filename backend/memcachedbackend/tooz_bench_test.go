package memcachedbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkLockCompat measures an uncontended lock acquire and release
// through *backend.Backend with the driver's own layout (compat=baton) and
// with tooz's (compat=tooz), side by side on the same server.
func BenchmarkLockCompat(b *testing.B) {
	for _, mode := range []string{"baton", "tooz"} {
		b.Run("compat="+mode, func(b *testing.B) {
			be := openBackend(b, withOptions(freshURL(b, serverURL(b)), "compat="+mode), "bench")
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

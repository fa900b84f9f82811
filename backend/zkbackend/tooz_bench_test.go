package zkbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkToozLock measures an uncontended acquire and release through a
// Backend with baton's layout and with compat=tooz (kazoo's Lock recipe),
// side by side on one server: a multi that creates the request and
// reports it alone, then a delete, in both layouts. Run: go test -bench
// ToozLock -run '^$'.
func BenchmarkToozLock(b *testing.B) {
	for _, compat := range []string{"baton", "tooz"} {
		b.Run("compat="+compat, func(b *testing.B) {
			be := openBackend(b, isolate(b, standaloneURL(b), "compat", compat), "bench")
			ctx := context.Background()
			once := func() {
				g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("try lock: %v, %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			for range warmUp {
				once()
			}
			for b.Loop() {
				once()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

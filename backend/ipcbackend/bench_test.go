//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkLockUncontended measures an uncontended TryLock plus Release
// through *backend.Backend.
func BenchmarkLockUncontended(b *testing.B) {
	ctx := context.Background()
	be, err := backend.Open(ctx, newURL(b, ""))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
		if err != nil || !ok {
			b.Fatalf("try lock: %v %v", ok, err)
		}
		if err := g.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

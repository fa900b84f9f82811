package backend_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// BenchmarkRefresh measures what keeping own leases costs the process:
// grants (1 or 1000) on mem:// in lease mode with a 600ms lease (refreshed
// every 200ms) are held for b.N renewal periods; it reports the heap
// allocations per lease refresh (the whole process: scheduler, driver and
// runtime) and the refresh requests per period.
func BenchmarkRefresh(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			be := open(b, leaseURL(b, "ttl=60s"), "m1")
			ctx := context.Background()
			for i := range n {
				if _, ok, err := be.TryLock(ctx, fmt.Sprintf("l%d", i), backend.LockOptions{TTL: 600 * time.Millisecond}); err != nil || !ok {
					b.Fatalf("try lock: %v %v", ok, err)
				}
			}
			time.Sleep(time.Second) // the first refreshes, in phase
			var m0, m1 runtime.MemStats
			s0 := be.RefreshStats()
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for range b.N {
				time.Sleep(200 * time.Millisecond)
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			s1 := be.RefreshStats()
			if s1.Leases == s0.Leases {
				b.Fatal("no refresh")
			}
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(s1.Leases-s0.Leases), "allocs/refresh")
			b.ReportMetric(float64(s1.Requests-s0.Requests)/float64(b.N), "requests/period")
			b.ReportMetric(float64(s1.Leases-s0.Leases)/float64(b.N), "refreshes/period")
		})
	}
}

package memcachedbackend

import (
	"context"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// BenchmarkLock measures an uncontended lock acquire and release through
// *backend.Backend (two round trips: a compare-and-set to held, one to
// free), through the driver alone (the same two, without the Backend's
// grant tracking), and, side
// by side on the same server, the raw gomemcache recipe: add with a TTL,
// then a blind delete (two round trips, no token, no compare).
func BenchmarkLock(b *testing.B) {
	b.Run("baton", func(b *testing.B) {
		be := openBackend(b, freshURL(b, serverURL(b)), "bench")
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
	b.Run("driver", func(b *testing.B) {
		c := openConn(b, freshURL(b, serverURL(b)), "bench")
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
	b.Run("gomemcache", func(b *testing.B) {
		s := settingsOf(b, mustParse(b, freshURL(b, serverURL(b))))
		mc := rawClient(s)
		defer mc.Close()
		key := keyspace{ns: s.namespace}.lock("gomemcache")
		b.ResetTimer()
		for b.Loop() {
			if err := mc.Add(&memcache.Item{Key: key, Value: []byte("bench"), Expiration: 30}); err != nil {
				b.Fatalf("add: %v", err)
			}
			if err := mc.Delete(key); err != nil {
				b.Fatalf("delete: %v", err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

func mustParse(t testing.TB, u string) *backend.Config {
	t.Helper()
	cfg, err := backend.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

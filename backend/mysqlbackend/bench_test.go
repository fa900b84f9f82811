package mysqlbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// BenchmarkLock is uncontended acquire+release through the Backend and
// through the driver connection alone (bench/ compares with the peers).
func BenchmarkLock(b *testing.B) {
	u := isolate(b, mysqlURL(b))
	be := openBackend(b, u, "bench")
	ctx := context.Background()
	b.Run("backend", func(b *testing.B) {
		for b.Loop() {
			g, ok, err := be.TryLock(ctx, "l", backend.LockOptions{})
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
			if err := g.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("driver", func(b *testing.B) {
		c := connOf(b, be)
		for b.Loop() {
			l, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "d", Member: "bench"})
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
			if err := c.Unlock(ctx, "d", l.Token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ping", func(b *testing.B) {
		c := connOf(b, be)
		for b.Loop() {
			if err := c.ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package pgbackend

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// BenchmarkLock measures an uncontended exclusive acquire and release
// through *backend.Backend, through the driver alone, and with pgx's
// pg_try_advisory_lock and pg_advisory_unlock on one connection (the raw
// recipe: no fencing token, no holder record, no loss signal).
func BenchmarkLock(b *testing.B) {
	ctx := context.Background()
	b.Run("baton", func(b *testing.B) {
		be := openBackend(b, isolate(b, serverURL(b)), "bench")
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
		be := openBackend(b, isolate(b, serverURL(b)), "bench")
		c := connOf(b, be)
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
	b.Run("pgx-advisory", func(b *testing.B) {
		c := rawConn(b, serverURL(b))
		defer c.Close(ctx)
		for b.Loop() {
			var ok bool
			if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock(4242)").Scan(&ok); err != nil || !ok {
				b.Fatalf("lock: %v %v", ok, err)
			}
			if err := c.QueryRow(ctx, "SELECT pg_advisory_unlock(4242)").Scan(&ok); err != nil || !ok {
				b.Fatalf("unlock: %v %v", ok, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("pgx-update", func(b *testing.B) {
		// The floor of any durable record: one single-row UPDATE
		// (committed) per acquire and per release.
		c := rawConn(b, serverURL(b))
		defer c.Close(ctx)
		schema := "bench_" + unique()
		b.Cleanup(func() { dropSchema(b, serverURL(b), schema) })
		q := pgx.Identifier{schema}.Sanitize()
		for _, s := range []string{"CREATE SCHEMA " + q, "CREATE TABLE " + q + ".t (k text PRIMARY KEY, v bigint)", "INSERT INTO " + q + ".t VALUES ('k', 0)"} {
			if _, err := c.Exec(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			for range 2 {
				if _, err := c.Exec(ctx, "UPDATE "+q+".t SET v = v + 1 WHERE k = 'k'"); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

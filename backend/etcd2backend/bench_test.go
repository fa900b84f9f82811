package etcd2backend

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// BenchmarkLock measures an uncontended lock round trip through the
// Backend: TryLock (one PUT prevExist=false) and Release (one DELETE
// prevValue=).
func BenchmarkLock(b *testing.B) {
	ctx := context.Background()
	be := openBackend(b, nsURL(singleURL(b)), "bench")
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

// BenchmarkLockConn measures the driver alone.
func BenchmarkLockConn(b *testing.B) {
	ctx := context.Background()
	cfg, err := backend.ParseURL(nsURL(singleURL(b)))
	if err != nil {
		b.Fatal(err)
	}
	dc, err := open(ctx, driverConfig(cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close(ctx)
	req := driver.LockRequest{Key: "bench", Member: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		l, ok, err := dc.TryLock(ctx, req)
		if err != nil || !ok {
			b.Fatalf("TryLock = %v, %v", ok, err)
		}
		if err := dc.Unlock(ctx, req.Key, l.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockRaw is the raw v2 recipe through the same client: PUT
// prevExist=false, DELETE prevIndex=.
func BenchmarkLockRaw(b *testing.B) {
	ctx := context.Background()
	a := newAdmin(b, nsURL(singleURL(b)))
	key := a.keys.lock("bench")
	b.ReportAllocs()
	for b.Loop() {
		r, err := a.put(ctx, key, form("value", "x", "ttl", "30", "prevExist", "false"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.del(ctx, key, url.Values{"prevIndex": {strconv.FormatUint(r.Node.ModifiedIndex, 10)}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockConnVsRaw alternates the driver's TryLock+Unlock and the
// raw recipe (PUT prevExist=false, DELETE prevIndex=) on the same server
// in bursts of 20, and reports the time ratio driver/raw, so that the
// machine's load weighs on both alike.
func BenchmarkLockConnVsRaw(b *testing.B) {
	ctx := context.Background()
	u := nsURL(singleURL(b))
	cfg, err := backend.ParseURL(u)
	if err != nil {
		b.Fatal(err)
	}
	dc, err := open(ctx, driverConfig(cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close(ctx)
	a := newAdmin(b, u)
	rawKey := a.keys.lock("raw")
	req := driver.LockRequest{Key: "bench", Member: "bench"}
	var conn, raw time.Duration
	for b.Loop() {
		start := time.Now()
		for range 20 {
			l, ok, err := dc.TryLock(ctx, req)
			if err != nil || !ok {
				b.Fatalf("TryLock = %v, %v", ok, err)
			}
			if err := dc.Unlock(ctx, req.Key, l.Token); err != nil {
				b.Fatal(err)
			}
		}
		mid := time.Now()
		for range 20 {
			r, err := a.put(ctx, rawKey, form("value", "x", "ttl", "30", "prevExist", "false"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.del(ctx, rawKey, url.Values{"prevIndex": {strconv.FormatUint(r.Node.ModifiedIndex, 10)}}); err != nil {
				b.Fatal(err)
			}
		}
		conn += mid.Sub(start)
		raw += time.Since(mid)
	}
	b.ReportMetric(float64(conn)/float64(raw), "driver/raw")
}

package zkbackend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend"
)

// BenchmarkLock measures an uncontended acquire and release through a
// Backend (TryLock + Release: two round trips, a multi that creates the
// request and reports it alone, then a delete) and, side by side on the
// same server, go-zookeeper's own zk.Lock (three round trips: protected
// ephemeral-sequential create, children, delete).
// Run: go test -bench Lock -run '^$'. tooz measured 800–900 ops/s on
// one server, 470–550 on a 3-node ensemble.
func BenchmarkLock(b *testing.B) {
	for _, srv := range []struct {
		name string
		url  func(testing.TB) string
	}{{"standalone", standaloneURL}, {"ensemble", ensembleURL}} {
		b.Run("baton/"+srv.name, func(b *testing.B) { benchBaton(b, srv.url(b)) })
		b.Run("go-zookeeper/"+srv.name, func(b *testing.B) { benchZKLock(b, srv.url(b)) })
	}
}

// warmUp is how many acquisitions run untimed first, so that both sides
// meet a warmed-up server (JIT, caches).
const warmUp = 300

func benchBaton(b *testing.B, raw string) {
	be := openBackend(b, isolate(b, raw), "bench")
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
}

func benchZKLock(b *testing.B, raw string) {
	hosts, _, _ := strings.Cut(strings.TrimPrefix(raw, "zookeeper://"), "?")
	c, _, err := zk.Connect(strings.Split(hosts, ","), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	path := "/baton-test/" + randomName(b) + "-zklock"
	defer removeNamespace(b, hosts, path)
	l := zk.NewLock(c, path, zk.WorldACL(zk.PermAll))
	once := func() {
		if err := l.Lock(); err != nil { // the first call creates the parents
			b.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
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
}

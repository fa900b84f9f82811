package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/etcdgwbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// The etcd3+http:// target: baton's JSON-gateway driver on the single
// etcd, against baton's own gRPC driver (etcd3://) on the same server —
// the gateway's cost is what the comparison shows — and against tooz's
// etcd3+http driver. BenchmarkLock and BenchmarkTakeover pick it up from
// targets; BenchmarkWatchLatency is its own.
func init() {
	targets = append(targets, &target{
		name: "etcd3+http", env: "BATON_TEST_ETCDGW_URL", server: "etcd",
		crashOpts: "lock_timeout=2&membership_timeout=2",
		lockPeer:  "baton etcd3:// (gRPC)", newLockPeer: newGRPCLocker,
		electPeer: "baton etcd3:// (gRPC)", newElectPeer: newGRPCElector, crashPeer: true,
		toozURL: toozGatewayURL,
	})
}

// grpcSite is s with baton's gRPC URL of the same endpoints.
func grpcSite(s *site) *site {
	return &site{t: s.t, url: "etcd3://" + strings.Join(s.hosts, ","), hosts: s.hosts, dir: s.dir}
}

// newGRPCLocker is baton through the lock package on etcd3://.
func newGRPCLocker(tb testing.TB, s *site) lockOp { return newBatonLocker(tb, grpcSite(s)) }

// newGRPCElector is baton's Election.Run on etcd3://, the candidates of
// one name sharing a namespace.
func newGRPCElector(tb testing.TB, s *site, crash bool, name string) elector {
	u := withQuery(grpcSite(s).url, "namespace="+name)
	if crash {
		u = withQuery(u, s.t.crashOpts)
	}
	return newBatonElector(tb, u, "cand-"+testutil.Unique(), "leader")
}

// toozGatewayURL is tooz's etcd3+http URL of the server. tooz 3.1 passes
// an api_path argument that Debian's etcd3gw 2.0.0 lacks: the directory
// of testdata/etcd3gw/sitecustomize.py, which adds it, goes on the
// PYTHONPATH of the tooz processes started after this call.
func toozGatewayURL(s *site) string {
	dir, err := filepath.Abs(filepath.Join("testdata", "etcd3gw"))
	if err == nil {
		_ = os.Setenv("PYTHONPATH", dir)
	}
	return "etcd3+http://" + s.hosts[0] + "?api_version=v3"
}

// BenchmarkWatchLatency measures how long a change takes to reach a
// watcher: a member joins (then leaves) a group and another member's
// WatchGroup reports it; from before the Join call to the event. The
// gateway (etcd3+http://) and gRPC (etcd3://) run in alternating rounds
// on the same server (BATON_BENCH_ROUNDS × 10 events each).
func BenchmarkWatchLatencyGateway(b *testing.B) {
	measureOnce(b, func(b *testing.B) []metric {
		s := newSite(b, targetNamed("etcd3+http"))
		sides := []string{s.batonURL(false), grpcSite(s).batonURL(false)}
		type watcher struct {
			m *backend.Backend
			w *backend.GroupWatch
		}
		ws := make([]watcher, len(sides))
		ctx := context.Background()
		for i, u := range sides {
			m, o := openBackend(b, u, "mover"), openBackend(b, u, "watcher")
			if err := m.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			w, err := o.WatchGroup(ctx, "g")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(w.Close)
			ws[i] = watcher{m, w}
		}
		n := takeoverRounds(b) * 10
		lat := make([][]time.Duration, len(sides))
		for r := range n {
			for k := range sides {
				i := (k + r) % len(sides)
				t0 := time.Now()
				var err error
				if r%2 == 0 {
					err = ws[i].m.Join(ctx, "g", nil)
				} else {
					err = ws[i].m.Leave(ctx, "g")
				}
				if err != nil {
					b.Fatal(err)
				}
				select {
				case _, ok := <-ws[i].w.Events():
					if !ok {
						b.Fatalf("watch ended: %v", ws[i].w.Err())
					}
				case <-time.After(waitLimit):
					b.Fatal("no watch event")
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		gw50, gw99 := quantile(lat[0], 0.5), quantile(lat[0], 0.99)
		g50, g99 := quantile(lat[1], 0.5), quantile(lat[1], 0.99)
		b.Logf("watch latency over %d events: etcd3+http p50 %v p99 %v; etcd3 (gRPC) p50 %v p99 %v", n, gw50, gw99, g50, g99)
		return []metric{
			{float64(gw50), "ns/op"},
			{ms(gw50), "http-p50-ms"}, {ms(gw99), "http-p99-ms"},
			{ms(g50), "grpc-p50-ms"}, {ms(g99), "grpc-p99-ms"},
			{float64(gw50) / float64(g50), "http/grpc-p50"},
		}
	})
}

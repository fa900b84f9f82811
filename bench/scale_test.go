package bench

// Scale per process: what one process pays to hold many grants, to watch
// a large group, and to run many Backends. These benchmarks measure and
// report (b.ReportMetric, and a log line per target); they assert
// nothing about speed. Each scenario runs once per iteration (run them
// with -benchtime 1x); BATON_SCALE_LOCKS, BATON_SCALE_MEMBERS and
// BATON_SCALE_BACKENDS change the sizes (10000, 1000, 100).
//
//	go test -run '^$' -bench 'Scale' -benchtime 1x ./bench/
//
// BenchmarkScaleLocks holds BATON_SCALE_LOCKS locks with one Backend and
// reports, per held grant, the heap and the goroutines it costs, and per
// renewal period the requests that keep them all: refresh requests (one
// per batch where the driver refreshes many leases in one round trip),
// the lease refreshes they carry, and the session's renewals. The leases
// are short (3s: a renewal period of 1s) so that three periods are
// observed in a few seconds.
//
// BenchmarkScaleMembers joins BATON_SCALE_MEMBERS members (each its own
// Backend) to one group while a watcher Backend watches it, and reports
// the time from the first join until the watcher has seen every member,
// and the heap the watcher retains (measured by closing it).
//
// BenchmarkScaleBackends opens BATON_SCALE_BACKENDS Backends in one
// process (a sidecar serving many tenants) and reports the goroutines
// and heap per Backend, idle and holding one lock each.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// scaleTTL is the lease and session timeout of the scale scenarios: short,
// so that several renewal periods fit in a few seconds.
var scaleTTL = map[string]string{
	"mem":       "ttl=3s&lock_ttl=3s",
	"redis":     "timeout=3",
	"etcd":      "timeout=3",
	"zookeeper": "timeout=3",
}

// scaleURL is a connection string of target name with the short TTL.
func scaleURL(s *site) string { return withQuery(s.batonURL(false), scaleTTL[s.t.name]) }

func scaleSize(env string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return def
}

// counter is an Observer counting renewals and refreshes.
type counter struct{ renewed, refreshed, refreshFailed atomic.Int64 }

func (c *counter) GrantAcquired(backend.GrantEvent)                          {}
func (c *counter) GrantReleased(backend.GrantEvent)                          {}
func (c *counter) GrantLost(backend.GrantEvent)                              {}
func (c *counter) LockWaited(backend.GrantKind, string, time.Duration, bool) {}
func (c *counter) WatchEvent(string, backend.EventType)                      {}
func (c *counter) Renewed(_ time.Duration, err error) {
	if err == nil {
		c.renewed.Add(1)
	}
}
func (c *counter) Refreshed(_ backend.GrantKind, _ string, _ time.Duration, err error) {
	if err != nil {
		c.refreshFailed.Add(1)
	}
	c.refreshed.Add(1)
}

// heap returns the live heap after a collection.
func heap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// parallel runs f(i) for i in [0, n) on workers goroutines, failing tb on
// the first error.
func parallel(tb testing.TB, n, workers int, f func(i int) error) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		tb.Fatal(*p)
	}
}

var scaleTargets = []string{"mem", "file", "redis", "etcd", "zookeeper"}

func BenchmarkScaleLocks(b *testing.B) {
	n := scaleSize("BATON_SCALE_LOCKS", 10000)
	for _, name := range scaleTargets {
		b.Run(name, func(b *testing.B) {
			s := newSite(b, targetNamed(name))
			for range b.N {
				scaleLocks(b, s, n)
			}
		})
	}
}

func scaleLocks(b *testing.B, s *site, n int) {
	ctx := context.Background()
	c := &counter{}
	be, err := backend.Open(ctx, scaleURL(s), backend.WithObserver(c))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = be.Close(context.Background()) }()
	h0, g0 := heap(), runtime.NumGoroutine()
	grants := make([]*backend.Grant, n)
	start := time.Now()
	parallel(b, n, 16, func(i int) error {
		g, ok, err := be.TryLock(ctx, fmt.Sprintf("scale-%05d", i), backend.LockOptions{})
		if err == nil && !ok {
			err = fmt.Errorf("lock %d is held", i)
		}
		grants[i] = g
		return err
	})
	acquire := time.Since(start)
	h1, g1 := heap(), runtime.NumGoroutine()
	// Three renewal periods of the grants' lease (the session's when they
	// are bound to it).
	period := grants[0].Timing().Interval
	if period == 0 {
		period = time.Second // nothing to renew: observe a second
	}
	const periods = 3
	r0, f0, q0 := c.renewed.Load(), c.refreshed.Load(), refreshRequests(be, c)
	time.Sleep(periods * period)
	r1, f1, q1 := c.renewed.Load(), c.refreshed.Load(), refreshRequests(be, c)
	lost := 0
	for _, g := range grants {
		if !g.Valid() {
			lost++
		}
	}
	start = time.Now()
	parallel(b, n, 16, func(i int) error { return grants[i].Release(ctx) })
	release := time.Since(start)
	perGrant := float64(h1-min(h0, h1)) / float64(n)
	gorPerGrant := float64(g1-g0) / float64(n)
	b.ReportMetric(perGrant, "heapB/grant")
	b.ReportMetric(gorPerGrant, "goroutines/grant")
	b.ReportMetric(float64(q1-q0)/periods, "refresh-requests/period")
	b.ReportMetric(float64(f1-f0)/periods, "lease-refreshes/period")
	b.ReportMetric(float64(r1-r0)/periods, "session-renewals/period")
	b.ReportMetric(float64(acquire.Microseconds())/float64(n), "acquire-µs/lock")
	b.Logf("%s: %d locks held by one Backend: %.0f B and %.4f goroutines per grant (%d goroutines in all); "+
		"per renewal period (%v): %.1f refresh requests carrying %.1f lease refreshes, %.1f session renewals; "+
		"%d lost; acquired in %v, released in %v",
		s.t.name, n, perGrant, gorPerGrant, g1, period, float64(q1-q0)/periods, float64(f1-f0)/periods,
		float64(r1-r0)/periods, lost, acquire.Round(time.Millisecond), release.Round(time.Millisecond))
	addRecord(record{Metric: "scale-locks", Target: s.t.name, Values: map[string]float64{
		"locks": float64(n), "heap_per_grant": perGrant, "goroutines_per_grant": gorPerGrant, "goroutines": float64(g1),
		"period_s": period.Seconds(), "refresh_requests": float64(q1-q0) / periods, "lease_refreshes": float64(f1-f0) / periods,
		"session_renewals": float64(r1-r0) / periods, "lost": float64(lost),
		"acquire_s": acquire.Seconds(), "release_s": release.Seconds()}})
	if lost > 0 {
		b.Errorf("%d of %d grants lost while held", lost, n)
	}
}

func BenchmarkScaleMembers(b *testing.B) {
	n := scaleSize("BATON_SCALE_MEMBERS", 1000)
	for _, name := range []string{"mem", "redis", "etcd", "zookeeper"} {
		b.Run(name, func(b *testing.B) {
			s := newSite(b, targetNamed(name))
			for range b.N {
				scaleMembers(b, s, n)
			}
		})
	}
}

func scaleMembers(b *testing.B, s *site, n int) {
	ctx := context.Background()
	u := s.batonURL(false) // the default TTL: a thousand sessions renew at leisure
	members := make([]*backend.Backend, n)
	defer func() {
		parallel(b, n, 32, func(i int) error {
			if members[i] != nil {
				_ = members[i].Close(context.Background())
			}
			return nil
		})
	}()
	parallel(b, n, 32, func(i int) error {
		be, err := backend.Open(ctx, u, backend.WithMemberID(fmt.Sprintf("m%04d", i)))
		members[i] = be
		return err
	})
	if err := members[0].CreateGroup(ctx, "scale"); err != nil {
		b.Fatal(err)
	}
	h0 := heap()
	watcher, err := backend.Open(ctx, u, backend.WithMemberID("watcher"))
	if err != nil {
		b.Fatal(err)
	}
	w, err := watcher.WatchGroup(ctx, "scale")
	if err != nil {
		b.Fatal(err)
	}
	seen := map[string]bool{}
	var count atomic.Int64
	all := make(chan time.Time, 1)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ev := range w.Events() {
			switch ev.Type {
			case backend.EventJoined:
				seen[ev.Member.ID] = true
			case backend.EventResync:
				for _, m := range ev.Members {
					seen[m.ID] = true
				}
			}
			count.Store(int64(len(seen)))
			if len(seen) == n {
				select {
				case all <- time.Now():
				default:
				}
			}
		}
	}()
	start := time.Now()
	parallel(b, n, 32, func(i int) error { return members[i].Join(ctx, "scale", nil) })
	joined := time.Since(start)
	var seenAll time.Duration
	select {
	case at := <-all:
		seenAll = at.Sub(start)
	case <-time.After(2 * time.Minute):
		b.Fatalf("the watcher saw %d of %d joins in 2m", count.Load(), n)
	}
	h1 := heap()
	w.Close()
	<-consumed
	_ = watcher.Close(ctx)
	h2 := heap()
	retained := float64(h1 - min(h2, h1))
	b.ReportMetric(float64(seenAll.Milliseconds()), "ms-until-all-seen")
	b.ReportMetric(float64(joined.Milliseconds()), "ms-all-joined")
	b.ReportMetric(retained/1024, "watcher-KiB")
	addRecord(record{Metric: "scale-members", Target: s.t.name, Values: map[string]float64{
		"members": float64(n), "joined_s": joined.Seconds(), "seen_s": seenAll.Seconds(), "watcher_bytes": retained}})
	b.Logf("%s: %d members joined in %v; the watcher saw them all after %v; it retains %.0f KiB (%.0f B per member); the %d members' Backends use %.0f KiB",
		s.t.name, n, joined.Round(time.Millisecond), seenAll.Round(time.Millisecond), retained/1024, retained/float64(n), n, float64(h0)/1024)
}

func BenchmarkScaleBackends(b *testing.B) {
	n := scaleSize("BATON_SCALE_BACKENDS", 100)
	for _, name := range scaleTargets {
		b.Run(name, func(b *testing.B) {
			s := newSite(b, targetNamed(name))
			for range b.N {
				scaleBackends(b, s, n)
			}
		})
	}
}

func scaleBackends(b *testing.B, s *site, n int) {
	ctx := context.Background()
	h0, g0 := heap(), runtime.NumGoroutine()
	bes := make([]*backend.Backend, n)
	defer func() {
		parallel(b, n, 16, func(i int) error {
			if bes[i] != nil {
				_ = bes[i].Close(context.Background())
			}
			return nil
		})
	}()
	parallel(b, n, 16, func(i int) error {
		be, err := backend.Open(ctx, scaleURL(s), backend.WithMemberID(fmt.Sprintf("tenant%03d", i)))
		bes[i] = be
		return err
	})
	h1, g1 := heap(), runtime.NumGoroutine()
	parallel(b, n, 16, func(i int) error {
		_, ok, err := bes[i].TryLock(ctx, fmt.Sprintf("tenant%03d", i), backend.LockOptions{})
		if err == nil && !ok {
			err = fmt.Errorf("lock %d is held", i)
		}
		return err
	})
	h2, g2 := heap(), runtime.NumGoroutine()
	idle := float64(g1-g0) / float64(n)
	locked := float64(g2-g0) / float64(n)
	b.ReportMetric(idle, "goroutines/backend")
	b.ReportMetric(locked, "goroutines/backend-with-lock")
	b.ReportMetric(float64(h1-min(h0, h1))/1024/float64(n), "heapKiB/backend")
	addRecord(record{Metric: "scale-backends", Target: s.t.name, Values: map[string]float64{
		"backends": float64(n), "goroutines_idle": idle, "goroutines_locked": locked,
		"heap_idle": float64(h1-min(h0, h1)) / float64(n), "heap_locked": float64(h2-min(h0, h2)) / float64(n)}})
	b.Logf("%s: %d Backends: %.1f goroutines and %.0f KiB each idle; %.1f goroutines and %.0f KiB each holding one lock",
		s.t.name, n, idle, float64(h1-min(h0, h1))/1024/float64(n), locked, float64(h2-min(h0, h2))/1024/float64(n))
}

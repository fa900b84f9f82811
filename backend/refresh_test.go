package backend_test

// Hermetic tests of the refresh scheduler under the fake clock: own
// leases are refreshed by one loop per Backend, batched where the driver
// can (mem:// is a driver.BatchRefresher), without a goroutine per grant.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
)

// refreshLog is an Observer recording when each grant was refreshed.
type refreshLog struct {
	clk *fakeClock
	mu  sync.Mutex
	at  map[time.Time][]string // instant → grants refreshed then
	err int
}

func (l *refreshLog) GrantAcquired(backend.GrantEvent)                          {}
func (l *refreshLog) GrantReleased(backend.GrantEvent)                          {}
func (l *refreshLog) GrantLost(backend.GrantEvent)                              {}
func (l *refreshLog) LockWaited(backend.GrantKind, string, time.Duration, bool) {}
func (l *refreshLog) Renewed(time.Duration, error)                              {}
func (l *refreshLog) WatchEvent(string, backend.EventType)                      {}
func (l *refreshLog) Refreshed(_ backend.GrantKind, name string, _ time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err++
		return
	}
	now := l.clk.Now()
	l.at[now] = append(l.at[now], name)
}

func (l *refreshLog) snapshot() (map[time.Time][]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[time.Time][]string, len(l.at))
	for k, v := range l.at {
		out[k] = append([]string(nil), v...)
	}
	return out, l.err
}

// Grants acquired at different instants are refreshed together from the
// first refresh on: the scheduler takes, with a grant due, every grant
// whose refresh falls within the next half interval. A batch that fails
// as a whole is retried for every grant in it, and no grant is lost.
func TestRefreshBatched(t *testing.T) {
	clk := newFakeClock()
	log := &refreshLog{clk: clk, at: map[time.Time][]string{}}
	b := open(t, leaseURL(t, "ttl=60s"), "m1", backend.WithClock(clk), backend.WithObserver(log))
	t0 := clk.Now()
	var grants []*backend.Grant
	for i := range 3 {
		clk.advanceTo(t0.Add(time.Duration(2*i) * time.Second))
		settle(t)
		g, ok, err := b.TryLock(testCtx(t), fmt.Sprintf("l%d", i), backend.LockOptions{TTL: 30 * time.Second})
		if err != nil || !ok {
			t.Fatalf("try lock %d: %v %v", i, ok, err)
		}
		grants = append(grants, g)
	}
	for clk.Now().Before(t0.Add(45 * time.Second)) {
		clk.step(t)
	}
	failNext(t, b, membackend.OpRefresh, 1) // the next batch fails as a whole
	for clk.Now().Before(t0.Add(100 * time.Second)) {
		clk.step(t)
	}
	for i, g := range grants {
		if !g.Valid() {
			t.Fatalf("grant %d lost: %v", i, context.Cause(g.Context()))
		}
	}
	at, failed := log.snapshot()
	if failed != 3 {
		t.Fatalf("%d failed refreshes recorded; want the 3 of the failed batch", failed)
	}
	if len(at) == 0 {
		t.Fatal("no refresh")
	}
	for when, names := range at {
		if len(names) != 3 {
			t.Fatalf("at %v refreshed %v; want the three grants together", when.Sub(t0), names)
		}
	}
	if first := t0.Add(10 * time.Second); len(at[first]) != 3 {
		t.Fatalf("refreshes at %v; want the first batch at 10s (the first grant's refresh)", at)
	}
	if st := b.RefreshStats(); st.Grants != 3 || st.Requests == 0 || st.Leases != 3*st.Requests {
		t.Fatalf("refresh stats %+v; want 3 grants, every request carrying the three leases", st)
	}
	for _, g := range grants {
		must(t, g.Release(testCtx(t)), "release")
	}
	if st := b.RefreshStats(); st.Grants != 0 {
		t.Fatalf("refresh stats %+v after the releases; want no grant scheduled", st)
	}
}

// Own-lease grants cost no goroutine each: a Backend holding a thousand
// of them runs a bounded number of goroutines, and every grant is kept.
func TestRefreshNoGoroutinePerGrant(t *testing.T) {
	clk := newFakeClock()
	b := open(t, leaseURL(t, "ttl=60s"), "m1", backend.WithClock(clk))
	tryLock(t, b, "warm-up") // the session and its loops are running
	before := runtime.NumGoroutine()
	const n = 1000
	grants := make([]*backend.Grant, 0, n)
	for i := range n {
		g, ok, err := b.TryLock(testCtx(t), fmt.Sprintf("l%d", i), backend.LockOptions{TTL: 30 * time.Second})
		if err != nil || !ok {
			t.Fatalf("try lock %d: %v %v", i, ok, err)
		}
		grants = append(grants, g)
	}
	t0 := clk.Now()
	for clk.Now().Before(t0.Add(65 * time.Second)) {
		clk.step(t)
	}
	settle(t)
	if d := runtime.NumGoroutine() - before; d > 2 {
		t.Fatalf("%d more goroutines while holding %d own-lease grants; want at most 2 (the scheduler and its worker)", d, n)
	}
	for i, g := range grants {
		if !g.Valid() {
			t.Fatalf("grant %d lost: %v", i, context.Cause(g.Context()))
		}
	}
}

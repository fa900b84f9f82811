package drivertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

var lockTests = []test{
	{"AcquireRelease", testLockAcquireRelease},
	{"Holder", testLockHolder},
	{"GrantContext", testLockGrantContext},
	{"ReleaseTwice", testLockReleaseTwice},
	{"ReleaseByNonHolder", testLockReleaseByNonHolder},
	{"NonReentrant", testLockNonReentrant},
	{"SameBackendExcludes", testLockSameBackend},
	{"AcrossBackendsExclude", testLockAcrossBackends},
	{"BlockingWaits", testLockBlockingWaits},
	{"WaitUsesBackendClock", testLockWaitUsesBackendClock},
	{"Timeout", testLockTimeout},
	{"Canceled", testLockCanceled},
	{"HoldAWhileTakingB", testLockHoldAWhileTakingB},
	{"MutualExclusion", testLockMutualExclusion},
	{"Break", testLockBreak},
	{"ReleaseAfterBreak", testLockReleaseAfterBreak},
}

// TryLock of a free lock succeeds and Release returns nil; so does the
// blocking Lock; the lock is free again after each release.
func testLockAcquireRelease(t *testing.T, e *env) {
	b := e.open("m1")
	g := e.tryLock(b, "l")
	if g.Name() != "l" || g.Token() == 0 {
		t.Fatalf("grant: name %q token %d, want \"l\" and a non-zero token", g.Name(), g.Token())
	}
	e.release(g)
	e.wantFree(b, "l")
	g, err := b.Lock(e.ctx, "l", backend.LockOptions{})
	e.must(err, "lock")
	e.wantHolder(b, "l", "m1", g.Token())
	e.release(g)
	e.wantFree(b, "l")
}

// LockHolder reports nobody for a free lock and the holder with its
// grant's token for a held one, to every member.
func testLockHolder(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.wantFree(b2, "l")
	g := e.tryLock(b1, "l")
	e.wantHolder(b1, "l", "m1", g.Token())
	e.wantHolder(b2, "l", "m1", g.Token())
	e.wantFree(b2, "other")
}

// A grant's context lives while the lock is held and is cancelled by
// Release with the cause ErrReleased; a released grant is not Lost.
func testLockGrantContext(t *testing.T, e *env) {
	b := e.open("m1")
	g := e.tryLock(b, "l")
	if err := g.Context().Err(); err != nil || g.Lost() {
		t.Fatalf("context of a held grant: error %v, lost %v; want live", err, g.Lost())
	}
	if ttl := g.TTL(); ttl < 0 {
		t.Fatalf("grant TTL %v is negative", ttl)
	}
	if at := g.AcquiredAt(); at.IsZero() || at.After(time.Now()) {
		t.Fatalf("grant AcquiredAt %v, want a time not in the future", at)
	}
	e.release(g)
	e.waitDone(g.Context().Done(), waitTimeout, "grant context cancelled by Release")
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrReleased) {
		t.Fatalf("cause after Release: %v, want ErrReleased", cause)
	}
	if g.Lost() {
		t.Fatalf("a released grant reports Lost")
	}
}

// Releasing a grant twice: the second Release fails with ErrNotHeld.
func testLockReleaseTwice(t *testing.T, e *env) {
	b := e.open("m1")
	g := e.tryLock(b, "l")
	e.release(g)
	e.wantErr(g.Release(e.ctx), backend.ErrNotHeld, "release twice")
}

// A grant that no longer holds the lock cannot release it: after another
// member took the lock, the old grant's Release fails with ErrNotHeld
// and the new holder keeps the lock.
func testLockReleaseByNonHolder(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	e.release(g1)
	g2 := e.tryLock(b2, "l")
	err := g1.Release(e.ctx)
	e.wantErr(err, backend.ErrNotHeld, "release by a former holder")
	e.wantErr(err, backend.ErrNotFound, "release by a former holder")
	e.wantHolder(b1, "l", "m2", g2.Token())
	e.tryLockBusy(b1, "l", backend.LockOptions{})
	e.release(g2)
}

// Locks are not reentrant: a Backend holding a lock cannot TryLock it
// again, until it releases it.
func testLockNonReentrant(t *testing.T, e *env) {
	b := e.open("m1")
	g := e.tryLock(b, "l")
	e.tryLockBusy(b, "l", backend.LockOptions{})
	e.wantHolder(b, "l", "m1", g.Token())
	e.release(g)
	e.release(e.tryLock(b, "l"))
}

// Two acquisitions of one name through one Backend exclude each other: a
// blocking Lock from another goroutine waits until the first grant is
// released.
func testLockSameBackend(t *testing.T, e *env) {
	b := e.open("m1")
	g1 := e.tryLock(b, "l")
	var released atomic.Bool
	got := async(e, func() (*backend.Grant, error) {
		g, err := b.Lock(e.ctx, "l", backend.LockOptions{})
		if err == nil && !released.Load() {
			return g, errors.New("granted before the holder released")
		}
		return g, err
	})
	notYet(e, got, "Lock of a lock held by the same Backend")
	released.Store(true)
	e.release(g1)
	g2, err := await(e, got, waitTimeout, "Lock after release")
	e.must(err, "lock after release")
	if g2.Token() <= g1.Token() {
		t.Fatalf("second grant's token %d is not above the first's %d", g2.Token(), g1.Token())
	}
	e.release(g2)
}

// Two Backends exclude each other: while one holds the lock the other's
// TryLock fails; after the release it succeeds.
func testLockAcrossBackends(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	e.tryLockBusy(b2, "l", backend.LockOptions{})
	e.release(g1)
	g2 := e.tryLock(b2, "l")
	e.tryLockBusy(b1, "l", backend.LockOptions{})
	e.release(g2)
}

// A blocking Lock from another Backend waits while the lock is held and
// returns once it is released (from another goroutine), never before.
func testLockBlockingWaits(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	var released atomic.Bool
	got := async(e, func() (*backend.Grant, error) {
		g, err := b2.Lock(e.ctx, "l", backend.LockOptions{})
		if err == nil && !released.Load() {
			return g, errors.New("granted before the holder released")
		}
		return g, err
	})
	notYet(e, got, "Lock of a held lock")
	released.Store(true)
	e.release(g1)
	g2, err := await(e, got, waitTimeout, "Lock after release")
	e.must(err, "lock after release")
	e.wantHolder(b1, "l", "m2", g2.Token())
	e.release(g2)
}

// offsetClock is the real clock shifted by a fixed offset: it runs at
// real speed, so servers and network timeouts are unaffected, but any
// instant a driver takes from time.Now instead of the Backend's clock is
// off by the offset.
type offsetClock struct{ d time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.d) }

func (c offsetClock) NewTimer(d time.Duration) driver.Timer {
	return driver.RealClock{}.NewTimer(d)
}

// A grant obtained by waiting (the driver's native wait, when it has one)
// was stamped with the Backend's clock (driver.Config.Clock), which the
// timing model measures its lease from: its AcquiredAt lies between the
// Backend clock's readings before and after the wait.
func testLockWaitUsesBackendClock(t *testing.T, e *env) {
	clk := offsetClock{d: time.Hour}
	b1, b2 := e.open("m1", backend.WithClock(clk)), e.open("m2", backend.WithClock(clk))
	g1 := e.tryLock(b1, "l")
	before := clk.Now()
	got := async(e, func() (*backend.Grant, error) { return b2.Lock(e.ctx, "l", backend.LockOptions{}) })
	notYet(e, got, "Lock of a held lock")
	e.release(g1)
	g2, err := await(e, got, waitTimeout, "Lock after release")
	e.must(err, "lock after release")
	after := clk.Now()
	if at := g2.AcquiredAt(); at.Before(before) || at.After(after) {
		t.Errorf("grant acquired at %v, outside the wait [%v, %v] on the Backend's clock: the driver did not take Lease.Sent from it",
			at.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
	}
	e.release(g2)
}

// Lock with a context that times out returns an error matching
// context.DeadlineExceeded (and ErrDeadlineExceeded) and holds nothing,
// neither then nor once the holder releases.
func testLockTimeout(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	g, err := b2.Lock(ctx, "l", backend.LockOptions{})
	if err == nil {
		t.Fatalf("lock with a short deadline was granted (token %d) while held", g.Token())
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrDeadlineExceeded) {
		t.Fatalf("lock with a short deadline: got %v, want an error matching context.DeadlineExceeded and ErrDeadlineExceeded", err)
	}
	e.wantHolder(b2, "l", "m1", g1.Token())
	e.release(g1)
	e.wantFree(b1, "l")
	e.release(e.tryLock(b1, "l"))
	e.release(e.tryLock(b2, "l"))
}

// Lock whose context is cancelled returns an error matching
// context.Canceled (and ErrCanceled) and holds nothing.
func testLockCanceled(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	ctx, cancel := context.WithCancel(e.ctx)
	got := async(e, func() (*backend.Grant, error) { return b2.Lock(ctx, "l", backend.LockOptions{}) })
	notYet(e, got, "Lock of a held lock")
	cancel()
	g, err := await(e, got, waitTimeout, "Lock after cancellation")
	if err == nil {
		t.Fatalf("cancelled lock was granted (token %d) while held", g.Token())
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backend.ErrCanceled) {
		t.Fatalf("cancelled lock: got %v, want an error matching context.Canceled and ErrCanceled", err)
	}
	e.release(g1)
	e.wantFree(b1, "l")
	e.release(e.tryLock(b1, "l"))
}

// Holding lock A and taking and releasing lock B through the same Backend
// from another goroutine does not release A (MySQL's per-connection
// GET_LOCK trap).
func testLockHoldAWhileTakingB(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	ga := e.tryLock(b1, "a")
	got := async(e, func() (uint64, error) {
		gb, err := b1.Lock(e.ctx, "b", backend.LockOptions{})
		if err != nil {
			return 0, err
		}
		return gb.Token(), gb.Release(e.ctx)
	})
	_, err := await(e, got, waitTimeout, "take and release lock B")
	e.must(err, "take and release lock B")
	e.wantHolder(b2, "a", "m1", ga.Token())
	e.tryLockBusy(b2, "a", backend.LockOptions{})
	if err := ga.Context().Err(); err != nil {
		t.Fatalf("grant of A ended by taking B: %v", context.Cause(ga.Context()))
	}
	e.release(ga)
}

// testLockMutualExclusion: 8 goroutines over 3 Backends each take one lock
// 25 times. Inside the critical section a shared counter must be exactly
// 1 (checked, not timed), and the tokens, recorded inside it, are all
// distinct and strictly increasing in grant order.
func testLockMutualExclusion(t *testing.T, e *env) {
	const goroutines, rounds = 8, 25
	bs := []*backend.Backend{e.open("m1"), e.open("m2"), e.open("m3")}
	var inside atomic.Int32
	// tokens is appended to inside the critical section; the mutex only
	// tells the race detector what the lock already guarantees.
	var mu sync.Mutex
	var tokens []uint64
	var results []<-chan result[struct{}]
	for i := range goroutines {
		b := bs[i%len(bs)]
		results = append(results, async(e, func() (struct{}, error) {
			for range rounds {
				g, err := b.Lock(e.ctx, "l", backend.LockOptions{MaxPoll: 20 * time.Millisecond})
				if err != nil {
					return struct{}{}, err
				}
				if n := inside.Add(1); n != 1 {
					return struct{}{}, fmt.Errorf("%d holders inside the critical section", n)
				}
				mu.Lock()
				tokens = append(tokens, g.Token())
				mu.Unlock()
				if err := g.Context().Err(); err != nil {
					return struct{}{}, fmt.Errorf("grant context ended inside the critical section: %v", context.Cause(g.Context()))
				}
				inside.Add(-1)
				if err := g.Release(e.ctx); err != nil {
					return struct{}{}, err
				}
			}
			return struct{}{}, nil
		}))
	}
	for _, r := range results {
		_, err := await(e, r, 2*waitTimeout, "a locking goroutine")
		e.must(err, "locking goroutine")
	}
	if len(tokens) != goroutines*rounds {
		t.Fatalf("%d grants recorded, want %d", len(tokens), goroutines*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("grant %d has token %d after token %d: tokens must strictly increase in grant order", i, tokens[i], tokens[i-1])
		}
	}
}

// breaks reports whether b can break locks, checking that a driver that
// cannot says so with ErrUnimplemented.
func (e *env) breaks(b *backend.Backend, name string) bool {
	e.t.Helper()
	_, err := b.BreakLock(e.ctx, name)
	if errors.Is(err, backend.ErrUnimplemented) {
		return false
	}
	e.must(err, "break a free lock")
	return true
}

// BreakLock force-releases a held lock (true) and reports false for a
// free one; the breaker can then take the lock with a larger token. A
// driver without it returns ErrUnimplemented.
func testLockBreak(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	broke, err := b2.BreakLock(e.ctx, "l")
	if errors.Is(err, backend.ErrUnimplemented) {
		g1 := e.tryLock(b1, "l")
		_, err := b2.BreakLock(e.ctx, "l")
		e.wantErr(err, backend.ErrUnimplemented, "break a held lock")
		e.wantHolder(b2, "l", "m1", g1.Token())
		return
	}
	e.must(err, "break a free lock")
	if broke {
		t.Fatalf("breaking a free lock reported a broken grant")
	}
	g1 := e.tryLock(b1, "l")
	e.tryLockBusy(b2, "l", backend.LockOptions{})
	broke, err = b2.BreakLock(e.ctx, "l")
	e.must(err, "break a held lock")
	if !broke {
		t.Fatalf("breaking a held lock reported no broken grant")
	}
	g2 := e.tryLock(b2, "l")
	if g2.Token() <= g1.Token() {
		t.Fatalf("token after breaking %d is not above the broken grant's %d", g2.Token(), g1.Token())
	}
	e.wantHolder(b1, "l", "m2", g2.Token())
	e.release(g2)
}

// After its lock was broken and taken by another member, the old
// holder's Release fails with ErrNotHeld and does not release the new
// holder's lock; a third member still cannot take it (tooz's
// release-broken test). A driver without BreakLock returns
// ErrUnimplemented.
func testLockReleaseAfterBreak(t *testing.T, e *env) {
	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	g1 := e.tryLock(b1, "l")
	if !e.breaks(b2, "free") {
		_, err := b2.BreakLock(e.ctx, "l")
		e.wantErr(err, backend.ErrUnimplemented, "break a held lock")
		return
	}
	broke, err := b2.BreakLock(e.ctx, "l")
	e.must(err, "break a held lock")
	if !broke {
		t.Fatalf("breaking a held lock reported no broken grant")
	}
	g2 := e.tryLock(b2, "l")
	e.wantErr(g1.Release(e.ctx), backend.ErrNotHeld, "release a broken grant")
	e.wantHolder(b3, "l", "m2", g2.Token())
	e.tryLockBusy(b3, "l", backend.LockOptions{})
	e.release(g2)
}

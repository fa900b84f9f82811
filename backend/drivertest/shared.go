package drivertest

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/baton-go/baton/backend"
)

var sharedLockTests = []test{
	{"SharedShared", testSharedShared},
	{"SharedExcludesExclusive", testSharedExcludesExclusive},
	{"ExclusiveExcludesShared", testExclusiveExcludesShared},
	{"BlockingShared", testSharedBlocking},
	{"MatchesCharacteristics", testSharedMatchesCharacteristics},
}

var shared = backend.LockOptions{Shared: true}

// sharedSupported reports whether b's driver has shared locks; when it
// has none, it checks that a shared TryLock and a shared Lock both fail
// with ErrUnimplemented, and the caller stops there.
func (e *env) sharedSupported(b *backend.Backend) bool {
	e.t.Helper()
	if b.Characteristics().SharedLocks {
		return true
	}
	_, _, err := b.TryLock(e.ctx, "shared-probe", shared)
	e.wantErr(err, backend.ErrUnimplemented, "shared try-lock on a driver without shared locks")
	_, err = b.Lock(e.ctx, "shared-probe", shared)
	e.wantErr(err, backend.ErrUnimplemented, "shared lock on a driver without shared locks")
	e.wantFree(b, "shared-probe")
	return false
}

// trySharedLock takes a shared grant of name through b, failing unless
// it is granted.
func (e *env) trySharedLock(b *backend.Backend, name string) *backend.Grant {
	e.t.Helper()
	g, ok, err := b.TryLock(e.ctx, name, shared)
	e.must(err, "shared try-lock "+q(name)+" as "+q(b.MemberID()))
	if !ok {
		e.t.Fatalf("shared try-lock %s as %s: not acquired, want acquired", q(name), q(b.MemberID()))
	}
	return g
}

// Shared grants coexist: two Backends, and one Backend twice (each needs
// its own release; a third release fails with ErrNotHeld); an exclusive
// TryLock fails until the last shared grant is released.
func testSharedShared(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	if !e.sharedSupported(b1) {
		return
	}
	s1 := e.trySharedLock(b1, "l")
	s2 := e.trySharedLock(b2, "l")
	s3 := e.trySharedLock(b1, "l")
	h, ok, err := b2.LockHolder(e.ctx, "l")
	e.must(err, "holder of a shared lock")
	if !ok || (h.Member != "m1" && h.Member != "m2") {
		t.Fatalf("holder of a shared lock: %+v (held %v), want one of the shared holders", h, ok)
	}
	e.release(s1)
	e.release(s3)
	e.wantErr(s3.Release(e.ctx), backend.ErrNotHeld, "release a shared grant twice")
	e.tryLockBusy(b1, "l", backend.LockOptions{})
	e.release(s2)
	e.release(e.tryLock(b1, "l"))
}

// A shared grant excludes exclusive ones, from other Backends and from
// its own.
func testSharedExcludesExclusive(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	if !e.sharedSupported(b1) {
		return
	}
	s := e.trySharedLock(b1, "l")
	e.tryLockBusy(b2, "l", backend.LockOptions{})
	e.tryLockBusy(b1, "l", backend.LockOptions{})
	e.release(s)
	e.release(e.tryLock(b2, "l"))
}

// An exclusive grant excludes shared ones, from other Backends and from
// its own.
func testExclusiveExcludesShared(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	if !e.sharedSupported(b1) {
		return
	}
	x := e.tryLock(b1, "l")
	e.tryLockBusy(b2, "l", shared)
	e.tryLockBusy(b1, "l", shared)
	e.release(x)
	e.release(e.trySharedLock(b2, "l"))
}

// A blocking shared Lock waits for an exclusive holder's release and
// never returns before it.
func testSharedBlocking(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	if !e.sharedSupported(b1) {
		return
	}
	x := e.tryLock(b1, "l")
	var released atomic.Bool
	got := async(e, func() (*backend.Grant, error) {
		g, err := b2.Lock(e.ctx, "l", shared)
		if err == nil && !released.Load() {
			return g, errors.New("shared grant before the exclusive holder released")
		}
		return g, err
	})
	notYet(e, got, "shared Lock of an exclusively held lock")
	released.Store(true)
	e.release(x)
	s, err := await(e, got, waitTimeout, "shared Lock after release")
	e.must(err, "shared lock after release")
	e.tryLockBusy(b1, "l", backend.LockOptions{})
	e.release(s)
}

// The characteristic tells the truth: with SharedLocks a shared TryLock
// works; without, it fails with ErrUnimplemented (and the exclusive lock
// still works).
func testSharedMatchesCharacteristics(t *testing.T, e *env) {
	b := e.open("m1")
	if e.sharedSupported(b) {
		e.release(e.trySharedLock(b, "l"))
	}
	e.release(e.tryLock(b, "l"))
}

package drivertest

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
)

// closeTests run after Close/NoGoroutineLeak, which runs alone.
var closeTests = []test{
	{"ReleasesLocks", testCloseReleasesLocks},
	{"LeavesGroups", testCloseLeavesGroups},
	{"EndsWatches", testCloseEndsWatches},
	{"UnblocksWaiters", testCloseUnblocksWaiters},
	{"ThenCallsFail", testCloseThenCallsFail},
	{"Twice", testCloseTwice},
}

// Close releases everything at once: another member's TryLock (one
// attempt, no waiting for a TTL) gets every lock and the leadership the
// closed Backend held, and the closed Backend's grants are cancelled.
func testCloseReleasesLocks(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	ga, gb := e.tryLock(b1, "a"), e.tryLock(b1, "b")
	l := e.tryCampaign(b1, "g")
	e.close(b1)
	for _, g := range []*backend.Grant{ga, gb, l} {
		if g.Context().Err() == nil {
			t.Fatalf("grant of %s still live after Close", q(g.Name()))
		}
		if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrCanceled) {
			t.Fatalf("grant of %s: cause after Close %v, want one matching ErrCanceled", q(g.Name()), cause)
		}
	}
	e.tryLock(b2, "a")
	e.tryLock(b2, "b")
	e.tryCampaign(b2, "g")
}

// Close leaves every group at once; the groups stay and can be deleted.
func testCloseLeavesGroups(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b2, "g")
	e.createGroup(b2, "h")
	e.join(b1, "g", nil)
	e.join(b1, "h", nil)
	e.join(b2, "g", nil)
	e.close(b1)
	e.wantMembers(b2, "g", "m2")
	e.wantMembers(b2, "h")
	e.must(b2.DeleteGroup(e.ctx, "h"), "delete the group the closed member left")
	e.wantGroups(b2, "g")
}

// Close ends the Backend's group and leader watches, with an Err matching
// ErrCanceled.
func testCloseEndsWatches(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b2, "g")
	w := e.watch(b1, "g")
	lw, err := b1.ObserveLeader(e.ctx, "g")
	e.must(err, "observe leader")
	t.Cleanup(lw.Close)
	e.close(b1)
	e.waitEnd(w)
	e.wantErr(w.Err(), backend.ErrCanceled, "group watch error after Close")
	for range lw.Changes() {
	}
	e.wantErr(lw.Err(), backend.ErrCanceled, "leader watch error after Close")
}

// Close makes a Lock and a Campaign blocked on the Backend return an
// error matching ErrCanceled, holding nothing.
func testCloseUnblocksWaiters(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g := e.tryLock(b1, "l")
	l := e.tryCampaign(b1, "g")
	lock := async(e, func() (*backend.Grant, error) { return b2.Lock(e.ctx, "l", backend.LockOptions{}) })
	campaign := async(e, func() (*backend.Grant, error) { return b2.Campaign(e.ctx, "g", backend.LockOptions{}) })
	notYet(e, lock, "Lock of a held lock")
	e.close(b2)
	for _, r := range []<-chan result[*backend.Grant]{lock, campaign} {
		got, err := await(e, r, waitTimeout, "a wait on a closed Backend")
		if err == nil {
			t.Fatalf("wait on a closed Backend granted %s (token %d)", q(got.Name()), got.Token())
		}
		e.wantErr(err, backend.ErrCanceled, "wait on a closed Backend")
	}
	e.wantHolder(b1, "l", "m1", g.Token())
	e.wantLeader(b1, "g", "m1", l.Token())
}

// After Close, Done is closed, Err is ErrClosed (an ErrCanceled) and
// every call fails with it.
func testCloseThenCallsFail(t *testing.T, e *env) {
	b := e.open("m1")
	e.createGroup(b, "g")
	e.close(b)
	e.waitDone(b.Done(), waitTimeout, "Done after Close")
	if !errors.Is(b.Err(), backend.ErrClosed) || !errors.Is(b.Err(), backend.ErrCanceled) {
		t.Fatalf("Err after Close: %v, want ErrClosed", b.Err())
	}
	_, _, err := b.TryLock(e.ctx, "l", backend.LockOptions{})
	e.wantErr(err, backend.ErrCanceled, "try lock after Close")
	e.wantErr(b.Join(e.ctx, "g", nil), backend.ErrCanceled, "join after Close")
	_, err = b.Groups(e.ctx)
	e.wantErr(err, backend.ErrCanceled, "groups after Close")
	_, err = b.WatchGroup(e.ctx, "g")
	e.wantErr(err, backend.ErrCanceled, "watch after Close")
}

// Closing twice returns nil.
func testCloseTwice(t *testing.T, e *env) {
	b := e.open("m1")
	e.close(b)
	e.close(b)
}

// Close leaves no goroutine behind, after a workout of every feature:
// locks (held, waited for, handed over), leadership (held, waited for,
// observed), groups (joined, watched), a lost session and failed opens
// (cancelled context; unreachable server for drivers distributed across
// hosts). Goroutines that
// a native client starts once per process are allowed: one Backend is
// opened and closed before the goroutines are counted, and
// Harness.LeakOptions are applied.
func testNoGoroutineLeak(t *testing.T, e *env) {
	warm := e.open("warm-up")
	e.createGroup(warm, "g")
	e.close(warm)
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, e.h.LeakOptions...)

	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	e.join(b1, "g", []byte("x"))
	w := e.watch(b2, "g")
	lw, err := b2.ObserveLeader(e.ctx, "g")
	e.must(err, "observe leader")
	g := e.tryLock(b1, "l")
	l := e.tryCampaign(b1, "g")
	lock := async(e, func() (*backend.Grant, error) { return b2.Lock(e.ctx, "l", backend.LockOptions{}) })
	campaign := async(e, func() (*backend.Grant, error) { return b2.Campaign(e.ctx, "g", backend.LockOptions{}) })
	notYet(e, lock, "Lock of a held lock")
	e.release(g)
	_, err = await(e, lock, waitTimeout, "Lock after release")
	e.must(err, "lock after release")
	e.close(b1)
	_, err = await(e, campaign, waitTimeout, "Campaign after the leader closed")
	e.must(err, "campaign after the leader closed")
	if l.Context().Err() == nil {
		t.Fatalf("leadership of a closed Backend still live")
	}
	e.join(b3, "g", nil)
	e.tryLock(b3, "other")
	e.expire(b3)
	e.waitDone(b3.Done(), sessionWait(b3), "Done after the session expired")
	e.close(b3)
	e.close(b2)
	e.drain(w)
	for range lw.Changes() {
	}
	// Failed opens leave nothing behind either.
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if b, err := backend.Open(ctx, e.url, e.options("m4")...); err == nil {
		e.close(b)
	}
	if b3.Characteristics().DistributedAcrossHosts {
		ctx, cancel := context.WithTimeout(e.ctx, unreachableWait)
		defer cancel()
		if b, err := backend.Open(ctx, unreachableURL(e.url), e.options("m5")...); err == nil {
			e.close(b)
		}
	}
	goleak.VerifyNone(t, opts...)
}

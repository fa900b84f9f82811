package drivertest

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-go/baton/backend"
)

var sessionTests = []test{
	{"ExpireCancelsGrants", testExpireCancelsGrants},
	{"ExpireEndsBackend", testExpireEndsBackend},
	{"ExpireFreesLocks", testExpireFreesLocks},
	{"ExpireLeavesGroups", testExpireLeavesGroups},
	{"ReleaseAfterExpire", testReleaseAfterExpire},
}

// expire expires b's session through the harness.
func (e *env) expire(b *backend.Backend) {
	e.t.Helper()
	e.h.ExpireSession(e.t, b)
}

// wantLost waits until g's context ends and checks that its cause
// matches ErrLost.
func (e *env) wantLost(g *backend.Grant, b *backend.Backend, what string) {
	e.t.Helper()
	e.waitDone(g.Context().Done(), sessionWait(b), what+": grant context cancelled")
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		e.t.Fatalf("%s: grant context cause %v, want an error matching ErrLost", what, cause)
	}
	if !g.Lost() {
		e.t.Fatalf("%s: Lost() is false after the session expired", what)
	}
}

// An expired session cancels every grant's context (locks and
// leadership) with a cause matching ErrLost.
func testExpireCancelsGrants(t *testing.T, e *env) {
	b1 := e.open("m1")
	g := e.tryLock(b1, "l")
	l := e.tryCampaign(b1, "g")
	e.expire(b1)
	e.wantLost(g, b1, "lock")
	e.wantLost(l, b1, "leadership")
}

// An expired session ends the Backend: Done closes, Err matches ErrLost,
// later calls fail with it, and its watches end with it.
func testExpireEndsBackend(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	e.createGroup(b2, "g")
	w := e.watch(b1, "g")
	lw, err := b1.ObserveLeader(e.ctx, "g")
	e.must(err, "observe leader")
	t.Cleanup(lw.Close)
	e.expire(b1)
	e.waitDone(b1.Done(), sessionWait(b1), "Done after the session expired")
	e.wantErr(b1.Err(), backend.ErrLost, "Err after the session expired")
	_, _, err = b1.TryLock(e.ctx, "l", backend.LockOptions{})
	e.wantErr(err, backend.ErrLost, "try lock after the session expired")
	e.wantErr(b1.Join(e.ctx, "g", nil), backend.ErrLost, "join after the session expired")
	e.waitEnd(w)
	e.wantErr(w.Err(), backend.ErrLost, "group watch error after the session expired")
	for range lw.Changes() {
	}
	e.wantErr(lw.Err(), backend.ErrLost, "leader watch error after the session expired")
}

// Once a session expired another member acquires its locks and its
// leadership (waiting at most about a TTL), with larger tokens.
func testExpireFreesLocks(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g1 := e.tryLock(b1, "l")
	l1 := e.tryCampaign(b1, "g")
	e.expire(b1)
	ctx, cancel := context.WithTimeout(e.ctx, sessionWait(b1))
	defer cancel()
	g2, err := b2.Lock(ctx, "l", backend.LockOptions{})
	e.must(err, "lock after the holder's session expired")
	if g2.Token() <= g1.Token() {
		t.Fatalf("token after expiry %d is not above the expired grant's %d", g2.Token(), g1.Token())
	}
	l2, err := b2.Campaign(ctx, "g", backend.LockOptions{})
	e.must(err, "campaign after the leader's session expired")
	if l2.Token() <= l1.Token() {
		t.Fatalf("term token after expiry %d is not above the expired term's %d", l2.Token(), l1.Token())
	}
	e.wantHolder(b2, "l", "m2", g2.Token())
	e.wantLeader(b2, "g", "m2", l2.Token())
}

// A member whose session expired leaves its groups (eventually, within
// about a TTL): it is no longer listed, watchers see it leave exactly
// once, and it no longer keeps a group from being deleted.
func testExpireLeavesGroups(t *testing.T, e *env) {
	b1, b2, wb := e.open("m1"), e.open("m2"), e.open("watcher")
	e.createGroup(b2, "g")
	e.createGroup(b2, "solo")
	e.join(b1, "g", nil)
	e.join(b2, "g", nil)
	e.join(b1, "solo", nil)
	w := e.watch(wb, "g")
	e.expire(b1)
	e.eventually(sessionWait(b1), "expired member gone from the group", func() (bool, error) {
		ms, err := b2.Members(e.ctx, "g")
		return err == nil && sameSet(ids(ms), []string{"m2"}), err
	})
	e.expect(w, backend.EventLeft, "m1")
	e.fence(w, "g", "fence")
	e.must(b2.DeleteGroup(e.ctx, "solo"), "delete a group whose only member expired")
	e.wantGroups(b2, "g")
}

// Releasing a grant of an expired session fails with ErrNotHeld, as
// Grant.Release documents for a grant lost before.
func testReleaseAfterExpire(t *testing.T, e *env) {
	b1, b2 := e.open("m1"), e.open("m2")
	g := e.tryLock(b1, "l")
	e.expire(b1)
	e.wantLost(g, b1, "lock")
	e.wantErr(g.Release(e.ctx), backend.ErrNotHeld, "release after the session expired")
	ctx, cancel := context.WithTimeout(e.ctx, sessionWait(b1))
	defer cancel()
	g2, err := b2.Lock(ctx, "l", backend.LockOptions{})
	e.must(err, "lock after the holder's session expired")
	e.release(g2)
}

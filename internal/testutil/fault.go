package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// This file holds the fault tests' common steps for the drivers that run
// against a real server: a holder and a watcher set up before the fault,
// and the checks that both carried on through it.

// NextEvent returns the watch's next event, failing the test when the
// watch ends or after d.
func NextEvent(t testing.TB, w *backend.GroupWatch, d time.Duration) backend.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return ev
	case <-time.After(d):
		t.Fatal("no watch event")
	}
	return backend.Event{}
}

// SetupHolder opens, as OpenMember does with bound d, a (holding lock
// "x" and a member of "g") and b (watching "g", the watch closed when the
// test ends).
func SetupHolder(t testing.TB, url string, d time.Duration) (a, b *backend.Backend, g *backend.Grant, w *backend.GroupWatch) {
	t.Helper()
	ctx := Context(t, 2*d)
	a, b = OpenMember(t, url, "a", d), OpenMember(t, url, "b", d)
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("a's TryLock = %v, %v", ok, err)
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	w, err = b.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return a, b, g, w
}

// CarryOn checks, after a fault, that the grant and membership of a (set
// up by SetupHolder) survived: the grant's context is live, b cannot take
// the lock, and b's watch w (opened before the fault) reports a new
// member c, opened on url, without a resync. Then a releases and b takes
// the lock with a larger token. d bounds every wait, as in SetupHolder.
func CarryOn(t testing.TB, url string, d time.Duration, a, b *backend.Backend, g *backend.Grant, w *backend.GroupWatch) {
	t.Helper()
	ctx := Context(t, 2*d)
	if err := g.Context().Err(); err != nil {
		t.Fatalf("a's grant was cancelled: %v", context.Cause(g.Context()))
	}
	if a.Err() != nil {
		t.Fatalf("a ended: %v", a.Err())
	}
	if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("b's TryLock = %v, %v; want busy (a holds it)", ok, err)
	}
	if h, ok, err := b.LockHolder(ctx, "x"); err != nil || !ok || h.Member != "a" || h.Token != g.Token() {
		t.Fatalf("holder = %+v, %v, %v; want a with token %d (the lease survived)", h, ok, err, g.Token())
	}
	c := OpenMember(t, url, "c", d)
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := NextEvent(t, w, d); ev.Type != backend.EventJoined || ev.Member.ID != "c" {
		t.Fatalf("event = %v, want c joined (resumed, no resync)", ev)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatalf("release after the fault: %v", err)
	}
	g2, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("b's TryLock after release = %v, %v", ok, err)
	}
	if g2.Token() <= g.Token() {
		t.Fatalf("b's token %d is not above a's %d", g2.Token(), g.Token())
	}
}

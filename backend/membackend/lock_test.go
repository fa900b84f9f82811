package membackend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

func req(key, member string) driver.LockRequest { return driver.LockRequest{Key: key, Member: member} }

func mustLock(t testing.TB, c driver.Conn, key, member string) driver.Lease {
	t.Helper()
	l, ok, err := c.TryLock(context.Background(), req(key, member))
	if err != nil || !ok {
		t.Fatalf("TryLock(%q) by %s = %v, %v", key, member, ok, err)
	}
	return l
}

func TestLockExclusion(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	a2 := openConn(t, store, "a", nil) // same member, another connection
	b := openConn(t, store, "b", nil)
	la := mustLock(t, a, "k", "a")

	tests := []struct {
		name string
		conn driver.Conn
		who  string
	}{
		{"same connection (not reentrant)", a, "a"},
		{"same member, other connection", a2, "a"},
		{"other member", b, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok, err := tt.conn.TryLock(ctx, req("k", tt.who)); ok || err != nil {
				t.Errorf("TryLock = %v, %v; want false, nil", ok, err)
			}
			if _, ok, err := tt.conn.(driver.SharedLocker).TryLockShared(ctx, req("k", tt.who)); ok || err != nil {
				t.Errorf("TryLockShared = %v, %v; want false, nil", ok, err)
			}
		})
	}

	unlocks := []struct {
		name  string
		conn  driver.Conn
		token uint64
	}{
		{"wrong token", a, la.Token + 1000},
		{"right token, other connection of the member", a2, la.Token},
		{"right token, other member", b, la.Token},
	}
	for _, tt := range unlocks {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.conn.Unlock(ctx, "k", tt.token); code(t, err) != driver.CodeNotHeld {
				t.Errorf("Unlock = %v; want not held", err)
			}
			if h, err := b.Holder(ctx, "k"); err != nil || h != (driver.Holder{Member: "a", Token: la.Token}) {
				t.Errorf("Holder = %v, %v; want a's grant still held", h, err)
			}
		})
	}
	if err := a.RefreshLock(ctx, "k", la.Token, 0); err != nil {
		t.Errorf("RefreshLock of a held grant: %v", err)
	}
	if err := a.Unlock(ctx, "k", la.Token); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "k", la.Token); code(t, err) != driver.CodeNotHeld {
		t.Errorf("second Unlock = %v; want not held", err)
	}
	if err := a.RefreshLock(ctx, "k", la.Token, 0); code(t, err) != driver.CodeNotHeld {
		t.Errorf("RefreshLock of a released grant = %v; want not held", err)
	}
	if _, err := b.Holder(ctx, "k"); code(t, err) != driver.CodeNotFound {
		t.Errorf("Holder of a free lock = %v; want not found", err)
	}
	if lb := mustLock(t, b, "k", "b"); lb.Token <= la.Token || lb.TTL != 0 {
		t.Errorf("next lease %+v; want a token above %d and no TTL", lb, la.Token)
	}
}

func TestSharedLocks(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	b := openConn(t, store, "b", nil)
	c := openConn(t, store, "c", nil)
	shared := func(conn driver.Conn, who string) (driver.Lease, bool) {
		l, ok, err := conn.(driver.SharedLocker).TryLockShared(ctx, req("k", who))
		if err != nil {
			t.Fatal(err)
		}
		return l, ok
	}
	la, ok := shared(a, "a")
	if !ok {
		t.Fatal("first shared grant refused")
	}
	lb, ok := shared(b, "b")
	if !ok {
		t.Fatal("second shared grant refused")
	}
	if _, ok := shared(a, "a"); !ok {
		t.Error("a second shared grant of one connection refused")
	}
	if _, ok, _ := c.TryLock(ctx, req("k", "c")); ok {
		t.Error("exclusive grant while shared grants are held")
	}
	if h, err := c.Holder(ctx, "k"); err != nil || h != (driver.Holder{Member: "a", Token: la.Token}) {
		t.Errorf("Holder = %v, %v; want the lowest-token shared holder", h, err)
	}
	// An exclusive waiter blocks new shared grants.
	waiting := make(chan result[driver.Lease], 1)
	go func() {
		l, err := c.(driver.LockWaiter).WaitLock(ctx, req("k", "c"))
		waiting <- result[driver.Lease]{l, err}
	}()
	eventually(t, "the waiter to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
	if _, ok := shared(b, "b"); ok {
		t.Error("shared grant while an exclusive waiter is queued")
	}
	if err := a.Unlock(ctx, "k", la.Token); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.Holder(ctx, "k"); h != (driver.Holder{Member: "b", Token: lb.Token}) {
		t.Errorf("Holder = %v; want b's grant, now the lowest", h)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "k", lb.Token); err != nil {
		t.Fatal(err)
	}
	r := receive(t, waiting, "the exclusive waiter")
	if r.err != nil || r.v.Token <= lb.Token {
		t.Fatalf("waiter got %+v, %v; want a token above %d", r.v, r.err, lb.Token)
	}
	if _, ok := shared(b, "b"); ok {
		t.Error("shared grant while an exclusive grant is held")
	}
}

func TestWaitLockFIFO(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	holder := openConn(t, store, "h", nil)
	l := mustLock(t, holder, "k", "h")
	members := []string{"w1", "w2", "w3"}
	conns := map[string]driver.Conn{}
	got := make(chan string, len(members))
	leases := make(chan driver.Lease, len(members))
	for i, m := range members {
		conns[m] = openConn(t, store, m, nil)
		go func() {
			l, err := conns[m].(driver.LockWaiter).WaitLock(ctx, req("k", m))
			if err != nil {
				t.Errorf("%s: %v", m, err)
			}
			leases <- l
			got <- m
		}()
		eventually(t, "waiter "+m+" to queue", func() bool { return membackend.QueueLen(store, "k") == i+1 })
	}
	if err := holder.Unlock(ctx, "k", l.Token); err != nil {
		t.Fatal(err)
	}
	last := l.Token
	for _, want := range members {
		m := receive(t, got, "a waiter")
		if m != want {
			t.Fatalf("%s got the lock; want %s", m, want)
		}
		lease := <-leases
		if lease.Token <= last || lease.Sent.IsZero() {
			t.Errorf("%s's lease %+v; want a token above %d and a send time", m, lease, last)
		}
		last = lease.Token
		if err := conns[m].Unlock(ctx, "k", lease.Token); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWaitLockCanceled(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	holder := openConn(t, store, "h", nil)
	quitter := openConn(t, store, "q", nil)
	next := openConn(t, store, "n", nil)
	l := mustLock(t, holder, "k", "h")

	qctx, cancel := context.WithCancel(ctx)
	quit := make(chan error, 1)
	go func() {
		_, err := quitter.(driver.LockWaiter).WaitLock(qctx, req("k", "q"))
		quit <- err
	}()
	eventually(t, "the first waiter to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
	waiting := make(chan result[driver.Lease], 1)
	go func() {
		l, err := next.(driver.LockWaiter).WaitLock(ctx, req("k", "n"))
		waiting <- result[driver.Lease]{l, err}
	}()
	eventually(t, "the second waiter to queue", func() bool { return membackend.QueueLen(store, "k") == 2 })
	cancel()
	if err := receive(t, quit, "the canceled waiter"); code(t, err) != driver.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled wait = %v; want canceled", err)
	}
	if err := holder.Unlock(ctx, "k", l.Token); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, waiting, "the second waiter"); r.err != nil {
		t.Fatalf("second waiter: %v", r.err)
	}
	if h, _ := holder.Holder(ctx, "k"); h.Member != "n" {
		t.Errorf("holder = %v; want n", h)
	}
}

// Close releases a connection's locks to the waiters and ends its own
// blocking calls.
func TestCloseReleasesAndWakes(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	b := openConn(t, store, "b", nil)
	la := mustLock(t, a, "held", "a")
	mustLock(t, b, "other", "b")
	bWaits := make(chan result[driver.Lease], 1)
	go func() {
		l, err := b.(driver.LockWaiter).WaitLock(ctx, req("held", "b"))
		bWaits <- result[driver.Lease]{l, err}
	}()
	aWaits := make(chan error, 1)
	go func() {
		_, err := a.(driver.LockWaiter).WaitLock(ctx, req("other", "a"))
		aWaits <- err
	}()
	eventually(t, "both waiters to queue", func() bool {
		return membackend.QueueLen(store, "held") == 1 && membackend.QueueLen(store, "other") == 1
	})
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := receive(t, aWaits, "a's wait"); code(t, err) != driver.CodeCanceled {
		t.Errorf("a's wait ended with %v; want canceled", err)
	}
	r := receive(t, bWaits, "b's wait")
	if r.err != nil || r.v.Token <= la.Token {
		t.Errorf("b got %+v, %v; want a token above %d", r.v, r.err, la.Token)
	}
	if _, _, err := a.TryLock(ctx, req("x", "a")); code(t, err) != driver.CodeCanceled {
		t.Errorf("TryLock after Close = %v; want canceled", err)
	}
}

func TestBreakLock(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	b := openConn(t, store, "b", nil)
	la := mustLock(t, a, "k", "a")
	waiting := make(chan result[driver.Lease], 1)
	go func() {
		l, err := b.(driver.LockWaiter).WaitLock(ctx, req("k", "b"))
		waiting <- result[driver.Lease]{l, err}
	}()
	eventually(t, "the waiter to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
	broke, err := b.(driver.LockBreaker).BreakLock(ctx, "k")
	if err != nil || !broke {
		t.Fatalf("BreakLock = %v, %v; want true", broke, err)
	}
	r := receive(t, waiting, "the waiter")
	if r.err != nil || r.v.Token <= la.Token {
		t.Fatalf("waiter got %+v, %v", r.v, r.err)
	}
	if err := a.Unlock(ctx, "k", la.Token); code(t, err) != driver.CodeNotHeld {
		t.Errorf("Unlock of a broken grant = %v; want not held", err)
	}
	if err := b.Unlock(ctx, "k", r.v.Token); err != nil {
		t.Fatal(err)
	}
	if broke, err := b.(driver.LockBreaker).BreakLock(ctx, "k"); err != nil || broke {
		t.Errorf("BreakLock of a free lock = %v, %v; want false", broke, err)
	}
}

// Tokens keep increasing when a store is dropped and re-created, and
// stores of different names are isolated.
func TestTokensAndIsolation(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openConn(t, store, "a", nil)
	l1 := mustLock(t, a, "k", "a")
	if err := a.Close(ctx); err != nil { // the store holds nothing now
		t.Fatal(err)
	}
	b := openConn(t, store, "b", nil)
	if l2 := mustLock(t, b, "k", "b"); l2.Token <= l1.Token {
		t.Errorf("token after re-creating the store = %d; want above %d", l2.Token, l1.Token)
	}
	other := openConn(t, newStore(t), "c", nil)
	if l := mustLock(t, other, "k", "c"); l.Token != 1 {
		t.Errorf("first token of a fresh store = %d; want 1", l.Token)
	}
}

// Through the Backend: a grant bound to the session has no TTL and stays
// valid until released.
func TestBackendLock(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openBackend(t, store, "a")
	b := openBackend(t, store, "b")
	g, ok, err := a.TryLock(ctx, "name with spaces/and/slashes/../ü", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if g.TTL() != 0 {
		t.Errorf("TTL = %v; want 0", g.TTL())
	}
	if _, ok, _ := b.TryLock(ctx, "name with spaces/and/slashes/../ü", backend.LockOptions{}); ok {
		t.Error("two holders")
	}
	// A lock and a leadership of the same name do not collide.
	lead, ok, err := b.TryCampaign(ctx, "name with spaces/and/slashes/../ü", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryCampaign = %v, %v", ok, err)
	}
	if err := lead.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); !errors.Is(err, backend.ErrNotHeld) {
		t.Errorf("second Release = %v; want ErrNotHeld", err)
	}
}

// A connection that ends never gets its own released lock: the next
// waiter does.
func TestEndSkipsOwnWaiters(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, store string, c driver.Conn)
	}{
		{"close", func(t *testing.T, _ string, c driver.Conn) {
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"expire", func(t *testing.T, store string, _ driver.Conn) {
			if err := membackend.ExpireSession(store, "a"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			store := newStore(t)
			a := openConn(t, store, "a", nil)
			b := openConn(t, store, "b", nil)
			la := mustLock(t, a, "k", "a")
			aWaits := make(chan error, 1)
			go func() {
				_, err := a.(driver.LockWaiter).WaitLock(ctx, req("k", "a"))
				aWaits <- err
			}()
			eventually(t, "a to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
			bWaits := make(chan result[driver.Lease], 1)
			go func() {
				l, err := b.(driver.LockWaiter).WaitLock(ctx, req("k", "b"))
				bWaits <- result[driver.Lease]{l, err}
			}()
			eventually(t, "b to queue", func() bool { return membackend.QueueLen(store, "k") == 2 })
			tt.end(t, store, a)
			// The hand-over happened within the end, straight to b.
			if h, err := b.Holder(ctx, "k"); err != nil || h.Member != "b" {
				t.Errorf("holder right after a ended = %v, %v; want b", h, err)
			}
			if err := receive(t, aWaits, "a's wait"); err == nil {
				t.Error("a's wait succeeded after a ended")
			}
			r := receive(t, bWaits, "b's wait")
			if r.err != nil || r.v.Token <= la.Token {
				t.Fatalf("b got %+v, %v", r.v, r.err)
			}
			if h, err := b.Holder(ctx, "k"); err != nil || h.Member != "b" {
				t.Errorf("holder = %v, %v; want b", h, err)
			}
		})
	}
}

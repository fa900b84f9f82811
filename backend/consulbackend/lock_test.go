package consulbackend

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// With lock_delay set, Consul refuses the exclusive lock of a session it
// invalidated for that long: a TryLock right after the loss fails, and a
// waiter is granted the lock once the delay ran out, with a greater token.
func TestLockDelay(t *testing.T) {
	url := nsURL(singleURL(t), "lock_delay=5s")
	c1, rec := openConn(t, url, "m1")
	c2, _ := openConn(t, url, "m2")
	ctx := testCtx(t)
	lease, ok, err := c1.TryLock(ctx, driver.LockRequest{Key: "x", Member: "m1"})
	if err != nil || !ok {
		t.Fatalf("m1's TryLock = %v, %v", ok, err)
	}
	if n := destroyMember(t, url, "m1"); n != 1 {
		t.Fatalf("destroyed %d sessions of m1, want 1", n)
	}
	lostAt := time.Now()
	testutil.WaitClosed(t, rec.Done(), wait, "m1's session reported lost")
	if _, ok, err := c2.TryLock(ctx, driver.LockRequest{Key: "x", Member: "m2"}); err != nil || ok {
		t.Fatalf("m2's TryLock right after the loss = %v, %v; want refused (lock-delay)", ok, err)
	}
	got, err := c2.WaitLock(ctx, driver.LockRequest{Key: "x", Member: "m2"})
	if err != nil {
		t.Fatalf("m2's WaitLock: %v", err)
	}
	if got.Token <= lease.Token {
		t.Fatalf("m2's token %d is not above m1's %d", got.Token, lease.Token)
	}
	t.Logf("lock-delay 5s: m2 granted %v after m1's session was destroyed", time.Since(lostAt).Round(time.Millisecond))
}

// Without lock_delay (the default) a lock whose holder's session is
// destroyed is handed to a waiter at once; the waiter is woken by its
// blocking query, not by polling.
func TestLockHandOverOnLoss(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	a := openBackend(t, url, "a")
	b := openBackend(t, url, "b")
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("a's TryLock = %v, %v", ok, err)
	}
	granted := make(chan *backend.Grant, 1)
	errs := make(chan error, 1)
	go func() {
		gb, err := b.Lock(ctx, "x", backend.LockOptions{})
		if err != nil {
			errs <- err
			return
		}
		granted <- gb
	}()
	if n := destroyMember(t, url, "a"); n != 1 {
		t.Fatalf("destroyed %d sessions of a, want 1", n)
	}
	select {
	case gb := <-granted:
		if gb.Token() <= g.Token() {
			t.Fatalf("b's token %d is not above a's %d", gb.Token(), g.Token())
		}
	case err := <-errs:
		t.Fatalf("b's Lock: %v", err)
	case <-time.After(wait):
		t.Fatal("b was not granted the lock")
	}
	<-g.Context().Done()
	if context.Cause(g.Context()) == nil {
		t.Fatal("a's grant has no cause")
	}
}

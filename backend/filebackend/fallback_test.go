//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Without file notifications (closed notifier, or a system without
// inotify) a blocked WaitLock polls and still takes the lock once it is
// released, and honours its context while it waits.
func TestWaitLockPolls(t *testing.T) {
	dir := t.TempDir()
	q := url.Values{"lock_retry": {"5ms"}}
	c1, c2 := openConnAt(t, dir, "m1", q), openConnAt(t, dir, "m2", q)
	c2.nt.close()
	ctx := t.Context()
	req := driver.LockRequest{Key: "k", Member: "m1"}
	lease, ok, err := c1.TryLock(ctx, req)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := c2.WaitLock(short, driver.LockRequest{Key: "k", Member: "m2"}); !isCode(err, driver.CodeDeadlineExceeded) {
		t.Fatalf("wait on a held lock past the deadline: %v, want deadline exceeded", err)
	}

	type res struct {
		lease driver.Lease
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := c2.WaitLock(ctx, driver.LockRequest{Key: "k", Member: "m2"})
		ch <- res{l, err}
	}()
	if err := c1.Unlock(ctx, "k", lease.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || r.lease.Token <= lease.Token || r.lease.Sent.IsZero() {
			t.Fatalf("wait after release: %+v, %v", r.lease, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not get the released lock within 10s")
	}
}

// Unlock of a token this connection does not hold is refused and leaves
// the holder's lock alone; Holder reports the live holder only.
func TestUnlockStaleToken(t *testing.T) {
	dir := t.TempDir()
	c1, c2 := openConnAt(t, dir, "m1", nil), openConnAt(t, dir, "m2", nil)
	ctx := t.Context()
	l1, _, err := c1.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Unlock(ctx, "k", l1.Token); err != nil {
		t.Fatal(err)
	}
	l2, ok, err := c2.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m2"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	for _, c := range []*conn{c1, c2} {
		if err := c.Unlock(ctx, "k", l1.Token); !isCode(err, driver.CodeNotHeld) {
			t.Fatalf("unlock with a stale token: %v, want not held", err)
		}
	}
	h, err := c1.Holder(ctx, "k")
	if err != nil || h.Member != "m2" || h.Token != l2.Token {
		t.Fatalf("holder: %+v, %v; want m2 with token %d", h, err, l2.Token)
	}
	if err := c2.RefreshLock(ctx, "k", l2.Token, time.Second); err != nil {
		t.Fatalf("refresh a held lock: %v", err)
	}
	if err := c2.RefreshLock(ctx, "k", l1.Token, time.Second); !isCode(err, driver.CodeNotHeld) {
		t.Fatalf("refresh a stale token: %v, want not held", err)
	}
}

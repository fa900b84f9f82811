package etcdbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

func TestTryLockNotReentrant(t *testing.T) {
	url := nsURL(singleURL(t))
	c, _ := openConn(t, url, "a")
	ctx := testCtx(t)
	req := driver.LockRequest{Key: "l/x", Member: "a"}
	l1, ok, err := c.TryLock(ctx, req)
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v, %v", ok, err)
	}
	if l1.TTL != 0 {
		t.Errorf("Lease.TTL = %v, want 0 (bound to the session)", l1.TTL)
	}
	if _, ok, err := c.TryLock(ctx, req); err != nil || ok {
		t.Fatalf("second TryLock on the same conn = %v, %v; want not acquired", ok, err)
	}
	h, err := c.Holder(ctx, "l/x")
	if err != nil || h.Member != "a" || h.Token != l1.Token {
		t.Fatalf("Holder = %+v, %v; want a with token %d", h, err, l1.Token)
	}
	// The failed attempt wrote nothing: exactly one entry exists.
	resp, err := c.cli.Get(ctx, c.keys.LockPrefix("l/x"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("entries = %d, %v; want 1", resp.Count, err)
	}
	if err := c.Unlock(ctx, "l/x", l1.Token+1); !testutil.CodeIs(err, driver.CodeNotHeld) {
		t.Fatalf("Unlock with a wrong token = %v, want CodeNotHeld", err)
	}
	if err := c.Unlock(ctx, "l/x", l1.Token); err != nil {
		t.Fatalf("Unlock = %v", err)
	}
	if err := c.Unlock(ctx, "l/x", l1.Token); !testutil.CodeIs(err, driver.CodeNotHeld) {
		t.Fatalf("second Unlock = %v, want CodeNotHeld", err)
	}
	if _, err := c.Holder(ctx, "l/x"); !testutil.CodeIs(err, driver.CodeNotFound) {
		t.Fatalf("Holder of a free lock = %v, want CodeNotFound", err)
	}
	l2, ok, err := c.TryLock(ctx, req)
	if err != nil || !ok || l2.Token <= l1.Token {
		t.Fatalf("TryLock after release = %+v, %v, %v; want a larger token than %d", l2, ok, err, l1.Token)
	}
	// The released entry's slot was reused: one key, re-created.
	wantKey := c.keys.LockEntry("l/x", int64(c.lease), 0)
	resp, err = c.cli.Get(ctx, c.keys.LockPrefix("l/x"), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != wantKey || resp.Kvs[0].CreateRevision != int64(l2.Token) {
		t.Fatalf("entries = %v, %v; want only %q created at %d", resp.Kvs, err, wantKey, l2.Token)
	}
	// A wait of the same connection takes another slot, and frees it.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.WaitLock(wctx, req); !testutil.CodeIs(err, driver.CodeDeadlineExceeded) {
		t.Fatalf("WaitLock of a lock this connection holds = %v, want a deadline error", err)
	}
	slots := c.entries.InUse("l/x")
	if slots != 1 {
		t.Fatalf("%d slots in use after the abandoned wait, want 1", slots)
	}
}

func TestUnlockNeverReleasesAnotherGrant(t *testing.T) {
	url := nsURL(singleURL(t))
	a, _ := openConn(t, url, "a")
	b, _ := openConn(t, url, "b")
	ctx := testCtx(t)
	la, ok, err := a.TryLock(ctx, driver.LockRequest{Key: "k", Member: "a"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := b.Unlock(ctx, "k", la.Token); !testutil.CodeIs(err, driver.CodeNotHeld) {
		t.Fatalf("Unlock of a's token through b = %v, want CodeNotHeld", err)
	}
	if h, err := b.Holder(ctx, "k"); err != nil || h.Member != "a" {
		t.Fatalf("Holder = %+v, %v; want a", h, err)
	}
}

func TestWaitLockQueues(t *testing.T) {
	url := nsURL(singleURL(t))
	a, _ := openConn(t, url, "a")
	b, _ := openConn(t, url, "b")
	ctx := testCtx(t)
	la, ok, err := a.TryLock(ctx, driver.LockRequest{Key: "k", Member: "a"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	got := make(chan driver.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := b.WaitLock(ctx, driver.LockRequest{Key: "k", Member: "b"})
		errc <- err
		got <- l
	}()
	// b queues behind a without taking the lock.
	testutil.Within(t, wait, "b's entry appears", func() bool {
		resp, err := a.cli.Get(ctx, a.keys.LockPrefix("k"), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	if h, err := a.Holder(ctx, "k"); err != nil || h.Member != "a" {
		t.Fatalf("Holder while b waits = %+v, %v; want a", h, err)
	}
	// A TryLock while someone waits fails, and a's own second attempt too.
	if _, ok, err := a.TryLock(ctx, driver.LockRequest{Key: "k", Member: "a"}); err != nil || ok {
		t.Fatalf("TryLock while held and waited for = %v, %v", ok, err)
	}
	if err := a.Unlock(ctx, "k", la.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("WaitLock = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("WaitLock did not return after the release")
	}
	lb := <-got
	if lb.Token <= la.Token {
		t.Fatalf("b's token %d is not above a's %d", lb.Token, la.Token)
	}
	if h, err := a.Holder(ctx, "k"); err != nil || h.Member != "b" || h.Token != lb.Token {
		t.Fatalf("Holder = %+v, %v; want b with %d", h, err, lb.Token)
	}
}

func TestWaitLockCancelDeletesEntry(t *testing.T) {
	url := nsURL(singleURL(t))
	a, _ := openConn(t, url, "a")
	b, _ := openConn(t, url, "b")
	ctx := testCtx(t)
	la, ok, err := a.TryLock(ctx, driver.LockRequest{Key: "k", Member: "a"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = b.WaitLock(wctx, driver.LockRequest{Key: "k", Member: "b"})
	if !errors.Is(err, context.DeadlineExceeded) || !testutil.CodeIs(err, driver.CodeDeadlineExceeded) {
		t.Fatalf("WaitLock past its deadline = %v, want a deadline error", err)
	}
	resp, err := a.cli.Get(ctx, a.keys.LockPrefix("k"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("entries after the abandoned wait = %d, %v; want only a's", resp.Count, err)
	}
	if err := a.Unlock(ctx, "k", la.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Holder(ctx, "k"); !testutil.CodeIs(err, driver.CodeNotFound) {
		t.Fatalf("Holder = %v, want free", err)
	}
}

func TestBreakLock(t *testing.T) {
	url := nsURL(singleURL(t))
	a := openBackend(t, url, "a")
	b := openBackend(t, url, "b")
	ctx := testCtx(t)
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if broke, err := b.BreakLock(ctx, "x"); err != nil || !broke {
		t.Fatalf("BreakLock = %v, %v", broke, err)
	}
	g2, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok || g2.Token() <= g.Token() {
		t.Fatalf("TryLock after break = %v, %v", ok, err)
	}
	if err := g.Release(ctx); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Release of the broken grant = %v, want ErrNotHeld", err)
	}
	if h, ok, err := b.LockHolder(ctx, "x"); err != nil || !ok || h.Member != "b" {
		t.Fatalf("holder = %+v, %v, %v; want b (the broken grant's release must not free it)", h, ok, err)
	}
	if broke, err := b.BreakLock(ctx, "free"); err != nil || broke {
		t.Fatalf("BreakLock of a free lock = %v, %v", broke, err)
	}
}

func TestLeaderObservePushed(t *testing.T) {
	url := nsURL(singleURL(t))
	a := openBackend(t, url, "a")
	b := openBackend(t, url, "b")
	ctx := testCtx(t)
	w, err := b.ObserveLeader(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	next := func() backend.LeaderChange {
		t.Helper()
		select {
		case c, ok := <-w.Changes():
			if !ok {
				t.Fatalf("leader watch ended: %v", w.Err())
			}
			return c
		case <-time.After(wait):
			t.Fatal("no leader change")
		}
		return backend.LeaderChange{}
	}
	if c := next(); c.Held {
		t.Fatalf("first change = %+v, want no leader", c)
	}
	g, err := a.Campaign(ctx, "g", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := next(); !c.Held || c.Leader.Member != "a" || c.Leader.Token != g.Token() {
		t.Fatalf("change = %+v, want a with %d", c, g.Token())
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Held {
		t.Fatalf("change after resign = %+v, want no leader", c)
	}
}

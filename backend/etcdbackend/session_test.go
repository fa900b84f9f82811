package etcdbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

func TestSessionInfo(t *testing.T) {
	tests := []struct {
		name    string
		giveOpt []string
		wantTTL time.Duration
	}{
		{name: "timeout", giveOpt: []string{"timeout=4"}, wantTTL: 4 * time.Second},
		{name: "smaller lock_timeout", giveOpt: []string{"timeout=30", "lock_timeout=3"}, wantTTL: 3 * time.Second},
		{name: "smaller membership_timeout", giveOpt: []string{"lock_timeout=9", "membership_timeout=2"}, wantTTL: 2 * time.Second},
		{name: "rounded up", giveOpt: []string{"timeout=2.2"}, wantTTL: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := openConn(t, nsURL(singleURL(t), tt.giveOpt...), "m")
			want := driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: tt.wantTTL, RenewInterval: tt.wantTTL / 3}
			if got := c.Session(); got != want {
				t.Fatalf("Session() = %+v, want %+v", got, want)
			}
			ttl, err := c.cli.TimeToLive(testCtx(t), c.lease)
			if err != nil || time.Duration(ttl.GrantedTTL)*time.Second != tt.wantTTL {
				t.Fatalf("granted TTL = %v, %v; want %v", ttl.GrantedTTL, err, tt.wantTTL)
			}
		})
	}
}

// A revoked lease is reported at once by the session watch, and Renew
// answers CodeLost.
func TestRevokedLeaseIsLost(t *testing.T) {
	url := nsURL(singleURL(t))
	c, rec := openConn(t, url, "m")
	ctx := testCtx(t)
	if err := c.Renew(ctx); err != nil {
		t.Fatalf("Renew = %v", err)
	}
	if _, err := etcdtest.AdminClient(t, url).Revoke(ctx, c.lease); err != nil {
		t.Fatal(err)
	}
	testutil.WaitClosed(t, rec.Done(), wait, "the session watch reports the loss")
	if err := c.Renew(ctx); !testutil.CodeIs(err, driver.CodeLost) {
		t.Fatalf("Renew after revoke = %v, want CodeLost", err)
	}
	if err := c.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, "g", nil); !testutil.CodeIs(err, driver.CodeLost) {
		t.Fatalf("Join on a revoked lease = %v, want CodeLost", err)
	}
}

// Expiring a member's session (revoking its lease) cancels its grants
// with ErrLost, ends the Backend, removes it from its groups and hands its
// lock to the waiter, which gets a larger token.
func TestExpireSession(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	a, b := openBackend(t, url, "a"), openBackend(t, url, "b")
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan *backend.Grant, 1)
	go func() {
		gb, err := b.Lock(ctx, "x", backend.LockOptions{})
		if err != nil {
			t.Errorf("b's Lock: %v", err)
		}
		waiter <- gb
	}()
	if n := revokeMember(t, url, "a"); n != 1 {
		t.Fatalf("revoked %d leases, want 1", n)
	}
	testutil.WaitClosed(t, g.Context().Done(), wait, "a's grant is cancelled")
	if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
		t.Fatalf("cause = %v, want ErrLost", context.Cause(g.Context()))
	}
	testutil.WaitClosed(t, a.Done(), wait, "a ends")
	select {
	case gb := <-waiter:
		if gb == nil || gb.Token() <= g.Token() {
			t.Fatalf("b's grant %v is not above a's token %d", gb, g.Token())
		}
	case <-time.After(wait):
		t.Fatal("b was not granted the lock")
	}
	if ms, err := b.Members(ctx, "g"); err != nil || len(ms) != 0 {
		t.Fatalf("members after a's expiry = %v, %v; want none", ms, err)
	}
}

// Close revokes the lease: members, locks and the session key go at once.
func TestCloseRevokes(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	c, rec := openConn(t, url, "m")
	if err := c.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m"}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	resp, err := etcdtest.AdminClient(t, url).Get(ctx, etcdproto.NewKeyspace(testutil.NamespaceOf(t, url)).Root(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != c.keys.Group("g") {
		t.Fatalf("keys after Close = %v, want only the group record", resp.Kvs)
	}
	select {
	case <-rec.Done():
		t.Fatalf("Close reported the session lost: %v", rec.Causes())
	default:
	}
}

// Opening against a server that does not answer fails with
// ErrUnavailable within dial_timeout.
func TestOpenUnreachable(t *testing.T) {
	p := testutil.StartProxy(t, "127.0.0.1:1")
	p.Blackhole(true)
	start := time.Now()
	_, err := backend.Open(testCtx(t), "etcd3://"+p.Addr()+"?dial_timeout=300ms")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > wait {
		t.Fatalf("Open took %v", d)
	}
}

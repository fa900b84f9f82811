package etcdgwbackend

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
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
			url := nsURL(singleURL(t), tt.giveOpt...)
			c, _ := openConn(t, url, "m")
			if got := c.Session(); got.Liveness != driver.LivenessTTL || got.TTL != tt.wantTTL {
				t.Fatalf("Session() = %+v, want TTL %v", got, tt.wantTTL)
			}
			ttl, err := etcdtest.AdminClient(t, url).TimeToLive(testCtx(t), clientv3.LeaseID(c.lease))
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
	if _, err := etcdtest.AdminClient(t, url).Revoke(ctx, clientv3.LeaseID(c.lease)); err != nil {
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
	resp, err := etcdtest.AdminClient(t, url).Get(ctx, newKeyspace(testutil.NamespaceOf(t, url)).Root(), clientv3.WithPrefix())
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
	_, err := backend.Open(testCtx(t), "etcd3+http://"+p.Addr()+"?dial_timeout=300ms")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > wait {
		t.Fatalf("Open took %v", d)
	}
	p.Heal()
}

// With one endpoint down for good, requests and the session move to the
// live one: Open, renewals, locks and watches work.
func TestDeadEndpointSkipped(t *testing.T) {
	host := singleURL(t)[len("etcd3+http://"):]
	url := nsURL("etcd3+http://127.0.0.1:1," + host)
	ctx := testCtx(t)
	c, _ := openConn(t, url, "m")
	for range 3 {
		if err := c.Renew(ctx); err != nil {
			t.Fatalf("Renew = %v", err)
		}
	}
	if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m"}); err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
}

// A first endpoint that accepts connections but never answers (a black
// hole) costs one attempt timeout, not the request timeout: Open,
// renewals and locks go to the live endpoint.
func TestBlackholedEndpointSkipped(t *testing.T) {
	host := singleURL(t)[len("etcd3+http://"):]
	p := testutil.StartProxy(t, host)
	p.Blackhole(true)
	url := nsURL("etcd3+http://"+p.Addr()+","+host, "timeout=4")
	ctx := testCtx(t)
	start := time.Now()
	c, _ := openConn(t, url, "m")
	if want := 4 * time.Second / 6; c.cli.attempt != want {
		t.Fatalf("attempt timeout %v, want TTL/6 = %v", c.cli.attempt, want)
	}
	for range 3 {
		if err := c.Renew(ctx); err != nil {
			t.Fatalf("Renew = %v", err)
		}
	}
	if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m"}); err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	t.Logf("open, 3 renewals and a lock past a black-holed endpoint: %v", time.Since(start).Round(time.Millisecond))
	p.Heal()
}

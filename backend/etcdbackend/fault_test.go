package etcdbackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// A server restart shorter than the TTL is invisible: the lease, the lock,
// the membership and the watches survive.
func TestFaultServerRestart(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCD_URL"), "timeout=10")
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	srv.run("restart", "etcd")
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// Losing one member of a 3-member cluster (its leader, even) is
// invisible: the client moves to the others, renewals keep succeeding for
// longer than the TTL, and watches resume.
func TestFaultClusterMemberStopped(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD_CLUSTER_URL"))
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	srv.run("stop-one", "etcd-cluster:leader")
	// Outlive the TTL: only renewals through the remaining members keep
	// the grant alive that long.
	ttl := a.Session().TTL
	select {
	case <-g.Context().Done():
		t.Fatalf("a's grant was cancelled with one member down: %v", context.Cause(g.Context()))
	case <-time.After(ttl + ttl/2):
	}
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// The holder is partitioned from the server (a proxy drops every byte):
// its grant's context is cancelled before the lease can expire, hence
// before the waiting member is granted the lock.
func TestFaultPartitionedHolderCancelsFirst(t *testing.T) {
	direct := singleURL(t)
	host := strings.TrimPrefix(direct, "etcd3://")
	p := testutil.StartProxy(t, host)
	ns := "t-" + testutil.Unique()
	viaProxy := "etcd3://" + p.Addr() + "?namespace=" + ns + "&timeout=3"
	url := direct + "?namespace=" + ns + "&timeout=3"
	ctx := testCtx(t)

	a := openBackend(t, viaProxy, "a")
	b := openBackend(t, url, "b")
	g, ok, err := a.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("a's TryLock = %v, %v", ok, err)
	}
	cancelAt := make(chan time.Time, 1)
	go func() {
		<-g.Context().Done()
		cancelAt <- time.Now()
	}()
	type grant struct {
		g   *backend.Grant
		at  time.Time
		err error
	}
	granted := make(chan grant, 1)
	go func() {
		gb, err := b.Lock(ctx, "x", backend.LockOptions{})
		granted <- grant{gb, time.Now(), err}
	}()
	admin, ks := etcdtest.AdminClient(t, url), etcdproto.NewKeyspace(ns)
	testutil.Within(t, wait, "b queues behind a", func() bool {
		resp, err := admin.Get(ctx, ks.LockPrefix("l/x"), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	partitionAt := time.Now()
	p.Blackhole(true)

	var got grant
	select {
	case got = <-granted:
	case <-time.After(wait):
		t.Fatal("b was not granted the lock after a's lease expired")
	}
	if got.err != nil {
		t.Fatalf("b's Lock: %v", got.err)
	}
	var cAt time.Time
	select {
	case cAt = <-cancelAt:
	default:
		t.Fatalf("b was granted the lock %v after the partition while a's grant was still live", got.at.Sub(partitionAt))
	}
	if !cAt.Before(got.at) {
		t.Fatalf("a's grant cancelled at %v, b granted at %v: not before", cAt, got.at)
	}
	if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
		t.Fatalf("a's grant cause = %v, want ErrLost", context.Cause(g.Context()))
	}
	if got.g.Token() <= g.Token() {
		t.Fatalf("b's token %d is not above a's %d", got.g.Token(), g.Token())
	}
	t.Logf("partition +%v: a's grant cancelled; +%v: b granted (%v later)",
		cAt.Sub(partitionAt).Round(time.Millisecond), got.at.Sub(partitionAt).Round(time.Millisecond), got.at.Sub(cAt).Round(time.Millisecond))
	testutil.WaitClosed(t, a.Done(), wait, "the partitioned Backend ends")
	if !errors.Is(a.Err(), backend.ErrLost) {
		t.Fatalf("a's Err = %v, want ErrLost", a.Err())
	}
	p.Blackhole(false)
}

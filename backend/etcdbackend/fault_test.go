package etcdbackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// nextEvent returns the watch's next event, failing after wait.
func nextEvent(t *testing.T, w *backend.GroupWatch) backend.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no watch event")
	}
	return backend.Event{}
}

// carryOn checks, after a fault, that a's grant and membership survived:
// the grant's context is live, b cannot take the lock, and b's watch
// (opened before the fault) reports a new member without a resync.
func carryOn(t *testing.T, url string, a, b *backend.Backend, g *backend.Grant, w *backend.GroupWatch) {
	t.Helper()
	ctx := testCtx(t)
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
	c := openBackend(t, url, "c")
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != backend.EventJoined || ev.Member.ID != "c" {
		t.Fatalf("event = %v, want c joined (resumed, no resync)", ev)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatalf("release after the fault: %v", err)
	}
	if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("b's TryLock after release = %v, %v", ok, err)
	}
}

// setupHolder opens a (holding lock "x" and a member of "g") and b
// (watching "g").
func setupHolder(t *testing.T, url string) (a, b *backend.Backend, g *backend.Grant, w *backend.GroupWatch) {
	t.Helper()
	ctx := testCtx(t)
	a, b = openBackend(t, url, "a"), openBackend(t, url, "b")
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

// A server restart shorter than the TTL is invisible: the lease, the lock,
// the membership and the watches survive.
func TestFaultServerRestart(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCD_URL"), "timeout=10")
	a, b, g, w := setupHolder(t, url)
	srv.run("restart", "etcd")
	carryOn(t, url, a, b, g, w)
}

// Losing one member of a 3-member cluster (its leader, even) is
// invisible: the client moves to the others, renewals keep succeeding for
// longer than the TTL, and watches resume.
func TestFaultClusterMemberStopped(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD_CLUSTER_URL"))
	a, b, g, w := setupHolder(t, url)
	srv.run("stop-one", "etcd-cluster:leader")
	// Outlive the TTL: only renewals through the remaining members keep
	// the grant alive that long.
	ttl := a.Session().TTL
	select {
	case <-g.Context().Done():
		t.Fatalf("a's grant was cancelled with one member down: %v", context.Cause(g.Context()))
	case <-time.After(ttl + ttl/2):
	}
	carryOn(t, url, a, b, g, w)
}

// The holder is partitioned from the server (a proxy drops every byte):
// its grant's context is cancelled before the lease can expire, hence
// before the waiting member is granted the lock.
func TestFaultPartitionedHolderCancelsFirst(t *testing.T) {
	direct := singleURL(t)
	host := strings.TrimPrefix(direct, "etcd3://")
	p := testutil.StartProxy(t, host)
	ns := "t-" + unique()
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
	admin, ks := adminClient(t, url), newKeyspace(ns)
	eventually(t, wait, "b queues behind a", func() bool {
		resp, err := admin.Get(ctx, ks.lockPrefix("l/x"), clientv3.WithPrefix(), clientv3.WithCountOnly())
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
	waitClosed(t, a.Done(), wait, "the partitioned Backend ends")
	if !errors.Is(a.Err(), backend.ErrLost) {
		t.Fatalf("a's Err = %v, want ErrLost", a.Err())
	}
	p.Blackhole(false)
}

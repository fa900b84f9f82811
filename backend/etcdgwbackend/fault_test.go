package etcdgwbackend

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// outlive waits 1.5 TTL of a's session, failing if g is cancelled
// meanwhile: only renewals through the remaining members keep it alive
// that long.
func outlive(t *testing.T, a *backend.Backend, g *backend.Grant, what string) {
	t.Helper()
	ttl := a.Session().TTL
	select {
	case <-g.Context().Done():
		t.Fatalf("a's grant was cancelled %s: %v", what, context.Cause(g.Context()))
	case <-time.After(ttl + ttl/2):
	}
}

// A server restart shorter than the TTL is invisible: the lease, the lock,
// the membership and the watches survive.
func TestFaultServerRestart(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCDGW_URL"), "timeout=10")
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	start := time.Now()
	srv.run("restart", "etcd")
	t.Logf("server restarted in %v", time.Since(start).Round(time.Millisecond))
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// One member of the 3-member cluster killed (SIGKILL) under held grants,
// the one every client talks to first: requests and watches move to the
// others, the grant outlives the TTL, and after the member's restart
// everything carries on; there is never a second holder.
func TestFaultClusterMemberKilled(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCDGW_CLUSTER_URL"))
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	killed := time.Now()
	srv.run("kill", "etcd-cluster:1")
	outlive(t, a, g, "with member 1 killed")
	if _, ok, err := b.TryLock(testCtx(t), "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("b's TryLock with member 1 down = %v, %v; want busy", ok, err)
	}
	srv.run("start-one", "etcd-cluster:1")
	t.Logf("member 1 down for %v; grant held throughout", time.Since(killed).Round(time.Millisecond))
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// The cluster's leader killed (SIGKILL): a new leader is elected, the
// lease survives (etcd extends leases on a leader change), grants and
// watches carry on.
func TestFaultLeaderKilled(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCDGW_CLUSTER_URL"))
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	killed := time.Now()
	srv.run("kill", "etcd-cluster:leader")
	outlive(t, a, g, "with the leader killed")
	t.Logf("leader killed %v ago; grant held throughout", time.Since(killed).Round(time.Millisecond))
	testutil.CarryOn(t, url, wait, a, b, g, w)
	srv.run("start-one", "etcd-cluster:all")
}

// A watch stream cut by the proxy (black-holed, then dropped) resumes
// from the last revision it delivered: every change made meanwhile
// arrives once, in order, with no resync; so does a holder watch.
func TestFaultWatchStreamCut(t *testing.T) {
	direct := singleURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(direct, "etcd3+http://"))
	ns := "t-" + testutil.Unique()
	viaProxy := "etcd3+http://" + p.Addr() + "?namespace=" + ns + "&timeout=10"
	url := direct + "?namespace=" + ns + "&" + testTimeout
	ctx := testCtx(t)
	w := openBackend(t, viaProxy, "w")
	m := openBackend(t, url, "m")
	if err := m.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	gw, err := w.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	lw, err := w.ObserveLeader(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	if c := <-lw.Changes(); c.Held {
		t.Fatalf("first leader observation %+v, want none", c)
	}
	if err := m.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := testutil.NextEvent(t, gw, wait); ev.Type != backend.EventJoined || ev.Member.ID != "m" {
		t.Fatalf("event = %v, want m joined", ev)
	}

	p.Blackhole(true)
	cut := time.Now()
	if err := m.UpdateCapabilities(ctx, "g", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := m.Join(ctx, "g", []byte("2")); err != nil {
		t.Fatal(err)
	}
	lead, err := m.Campaign(ctx, "e", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Heal()
	want := []struct {
		typ  backend.EventType
		caps string
	}{{backend.EventCapabilitiesChanged, "1"}, {backend.EventLeft, ""}, {backend.EventJoined, "2"}}
	for _, wt := range want {
		ev := testutil.NextEvent(t, gw, wait)
		if ev.Type != wt.typ || ev.Member.ID != "m" || (wt.typ != backend.EventLeft && string(ev.Member.Capabilities) != wt.caps) {
			t.Fatalf("event = %v, want %v of m (caps %q): resumed in order, no resync", ev, wt.typ, wt.caps)
		}
	}
	select {
	case c := <-lw.Changes():
		if !c.Held || c.Leader.Member != "m" || c.Leader.Token != lead.Token() {
			t.Fatalf("leader change %+v, want m with token %d", c, lead.Token())
		}
	case <-time.After(wait):
		t.Fatal("no leader change after the cut")
	}
	t.Logf("stream cut for %v; all changes delivered after the heal", time.Since(cut).Round(time.Millisecond))
	select {
	case ev := <-gw.Events():
		t.Fatalf("extra event %v", ev)
	default:
	}
}

// The holder is partitioned from the server (a proxy drops every byte):
// its grant's context is cancelled before the lease can expire, hence
// before the waiting member is granted the lock.
func TestFaultPartitionedHolderCancelsFirst(t *testing.T) {
	direct := singleURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(direct, "etcd3+http://"))
	ns := "t-" + testutil.Unique()
	viaProxy := "etcd3+http://" + p.Addr() + "?namespace=" + ns + "&timeout=3"
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
	admin, ks := etcdtest.AdminClient(t, grpcSingleURL(t)), newKeyspace(ns)
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
	p.Heal()
}

// TestHelperHolder is the body of a holder process (it does nothing in a
// normal run): it takes lock "x", reports it and holds it until killed.
func TestHelperHolder(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	ctx := context.Background()
	em := testutil.NewEmitter(name)
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name))
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.Lock(ctx, "x", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	em.Emit(testutil.Event{Kind: "acquired", Token: g.Token()})
	<-g.Context().Done()
	em.Emit(testutil.Event{Kind: "lost", Note: context.Cause(g.Context()).Error()})
	select {}
}

// kill -9 of a holder process: the waiter is granted the lock only after
// the holder died, once its lease expired (within about one TTL of the
// kill), with a larger token; never while the holder's process (and its
// grant's context) lived.
func TestFaultHolderProcessKilled(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	url := nsURL(singleURL(t), "timeout=3")
	events := make(chan testutil.Event, 8)
	child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{"BATON_TEST_URL=" + url}, events)
	var acquired testutil.Event
	select {
	case acquired = <-events:
		if acquired.Kind != "acquired" {
			t.Fatalf("child event %+v, want acquired", acquired)
		}
	case <-time.After(wait):
		t.Fatal("the child did not take the lock")
	}
	ctx := testCtx(t)
	w := openBackend(t, url, "waiter")
	if _, ok, err := w.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("waiter's TryLock while the child holds = %v, %v", ok, err)
	}
	granted := make(chan *backend.Grant, 1)
	go func() {
		g, err := w.Lock(ctx, "x", backend.LockOptions{})
		if err != nil {
			t.Errorf("waiter's Lock: %v", err)
		}
		granted <- g
	}()
	// Held for a while by a live holder: the waiter must keep waiting.
	select {
	case g := <-granted:
		t.Fatalf("granted %v while the holder process lived", g)
	case <-time.After(w.Session().TTL):
	}
	killedAt := child.Kill()
	var g *backend.Grant
	select {
	case g = <-granted:
	case <-time.After(wait):
		t.Fatal("the waiter was not granted the lock after the holder was killed")
	}
	after := time.Since(killedAt)
	if g == nil {
		t.FailNow()
	}
	if g.Token() <= acquired.Token {
		t.Fatalf("waiter's token %d is not above the killed holder's %d", g.Token(), acquired.Token)
	}
	ttl := w.Session().TTL
	if after > ttl+5*time.Second {
		t.Fatalf("taken over %v after the kill; TTL %v", after, ttl)
	}
	t.Logf("holder killed; taken over %v later (TTL %v), token %d → %d", after.Round(time.Millisecond), ttl, acquired.Token, g.Token())
}

// A watch stream on an endpoint that goes silent (black-holed, never
// closed) is found stalled by its watchdog and resumed on the other
// endpoint from its last revision: every change arrives, in order, with
// no resync, and the member's grant survives.
func TestFaultWatchStreamBlackholed(t *testing.T) {
	direct := strings.TrimPrefix(singleURL(t), "etcd3+http://")
	p := testutil.StartProxy(t, direct)
	ns := "t-" + testutil.Unique()
	// The proxy is the first endpoint: the watch starts there.
	viaProxy := "etcd3+http://" + p.Addr() + "," + direct + "?namespace=" + ns + "&timeout=3"
	url := "etcd3+http://" + direct + "?namespace=" + ns + "&" + testTimeout
	ctx := testCtx(t)
	w := openBackend(t, viaProxy, "w")
	m := openBackend(t, url, "m")
	g, ok, err := w.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := m.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	gw, err := w.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	p.Blackhole(true)
	cut := time.Now()
	if err := m.Join(ctx, "g", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateCapabilities(ctx, "g", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []backend.EventType{backend.EventJoined, backend.EventCapabilitiesChanged, backend.EventLeft} {
		if ev := testutil.NextEvent(t, gw, wait); ev.Type != want || ev.Member.ID != "m" {
			t.Fatalf("event = %v, want %v of m (resumed elsewhere, no resync)", ev, want)
		}
	}
	t.Logf("stream black-holed; all changes delivered %v later through the other endpoint", time.Since(cut).Round(time.Millisecond))
	if err := g.Context().Err(); err != nil {
		t.Fatalf("the grant was cancelled: %v", context.Cause(g.Context()))
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	p.Heal()
}

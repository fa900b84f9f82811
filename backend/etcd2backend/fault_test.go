package etcd2backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// outlive waits longer than the session TTL, failing if g is cancelled
// meanwhile: only renewals through the remaining members keep it alive.
func outlive(t *testing.T, a *backend.Backend, g *backend.Grant) {
	t.Helper()
	ttl := a.Session().TTL
	select {
	case <-g.Context().Done():
		t.Fatalf("a's grant was cancelled: %v", context.Cause(g.Context()))
	case <-time.After(ttl + ttl/2):
	}
}

// A member of the 3-member cluster killed (kill -9) and restarted under
// held grants: the clients carry on through the other endpoints, nobody
// else holds the lock, the watch resumes.
func TestFaultClusterMemberKilled(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD2_CLUSTER_URL"))
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	start := time.Now()
	srv.run("kill", "etcd-cluster:1") // the first endpoint: every client's current one
	outlive(t, a, g)
	srv.run("start-one", "etcd-cluster:1")
	t.Logf("member 1 killed and restarted; grant alive %v later", time.Since(start).Round(time.Millisecond))
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// The cluster's leader killed under held grants: a new leader is
// elected, the clients carry on.
func TestFaultClusterLeaderKilled(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD2_CLUSTER_URL"))
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	start := time.Now()
	srv.run("kill", "etcd-cluster:leader")
	outlive(t, a, g)
	t.Logf("leader killed; grant alive %v later", time.Since(start).Round(time.Millisecond))
	testutil.CarryOn(t, url, wait, a, b, g, w)
}

// A watch whose long-poll the proxy cuts (a black hole, then the
// connections dropped) resumes from its index: the changes made during
// the cut arrive, in order, once, without a resync.
func TestFaultLongPollCutResumes(t *testing.T) {
	direct := singleURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(direct, "etcd://"))
	ns := "t-" + randomID()
	url := direct + "?namespace=" + ns + "&timeout=6"
	viaProxy := "etcd://" + p.Addr() + "?namespace=" + ns + "&timeout=30"
	ctx := testCtx(t)
	watcher := openBackend(t, viaProxy, "w")
	m := openBackend(t, url, "m")
	if err := m.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	w, err := watcher.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p.Blackhole(true)
	if err := m.Join(ctx, "g", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateCapabilities(ctx, "g", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	p.Heal()
	want := []backend.EventType{backend.EventJoined, backend.EventCapabilitiesChanged, backend.EventLeft}
	for i, wt := range want {
		if ev := testutil.NextEvent(t, w, wait); ev.Type != wt || ev.Member.ID != "m" {
			t.Fatalf("event %d = %v, want %v of m", i, ev, wt)
		}
	}
}

// A watch cut off while more than the store's 1000-event history passes
// gets error 401 when it comes back, reads the group again and reports a
// resync with the current members: nothing is missed.
func TestFaultLongPollCutResyncs(t *testing.T) {
	direct := singleURL(t)
	p := testutil.StartProxy(t, strings.TrimPrefix(direct, "etcd://"))
	ns := "t-" + randomID()
	url := direct + "?namespace=" + ns + "&timeout=6"
	viaProxy := "etcd://" + p.Addr() + "?namespace=" + ns + "&timeout=30"
	ctx := testCtx(t)
	watcher := openBackend(t, viaProxy, "w")
	m := openBackend(t, url, "m")
	if err := m.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	w, err := watcher.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p.Blackhole(true)
	start := time.Now()
	n := openBackend(t, url, "n")
	if err := n.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	// Push the event history past the watcher's index.
	a := newAdmin(t, url)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 140 {
				if _, err := a.put(ctx, a.keys.root+"/filler/"+fmt.Sprint(i), form("value", fmt.Sprint(j))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.Heal()
	// The resync's difference comes first (m left, n joined: sorted by
	// member, not in store order), then the marker.
	var diff []string
	ev := testutil.NextEvent(t, w, wait)
	for ; ev.Type != backend.EventResync; ev = testutil.NextEvent(t, w, wait) {
		diff = append(diff, ev.String())
	}
	if len(diff) != 2 || !strings.HasPrefix(diff[0], "left") || !strings.HasPrefix(diff[1], "joined") {
		t.Fatalf("events before the resync = %q, want m left and n joined", diff)
	}
	if len(ev.Members) != 1 || ev.Members[0].ID != "n" {
		t.Fatalf("resync members = %v, want exactly n", ev.Members)
	}
	t.Logf("cut for %v (1120 writes); resynchronised", time.Since(start).Round(time.Millisecond))
	if err := n.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if ev := testutil.NextEvent(t, w, wait); ev.Type != backend.EventLeft || ev.Member.ID != "n" {
		t.Fatalf("event after the resync = %v, want n left", ev)
	}
}

// holderEnv names the URL a helper process holds lock "x" on.
const holderEnv = "BATON_TEST_ETCD2_HOLDER_URL"

// TestHelperHolder is the helper process of TestFaultKilledHolder: it
// takes lock "x", reports the grant, and holds it until killed.
func TestHelperHolder(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) == "" {
		return // only a helper process runs it
	}
	em := testutil.NewEmitter(os.Getenv(testutil.HelperEnv))
	b, err := backend.Open(context.Background(), os.Getenv(holderEnv), backend.WithMemberID("holder"))
	if err != nil {
		em.Emit(testutil.Event{Kind: "error", Note: err.Error()})
		return
	}
	g, err := b.Lock(context.Background(), "x", backend.LockOptions{})
	if err != nil {
		em.Emit(testutil.Event{Kind: "error", Note: err.Error()})
		return
	}
	em.Emit(testutil.Event{Kind: "acquired", Token: g.Token()})
	for g.Context().Err() == nil {
		time.Sleep(20 * time.Millisecond)
		em.Emit(testutil.Event{Kind: "live", Token: g.Token()})
	}
	em.Emit(testutil.Event{Kind: "lost", Token: g.Token(), Note: context.Cause(g.Context()).Error()})
	select {}
}

// A holder process killed with SIGKILL (no release): a waiting member
// gets the lock once the holder's key expires, not before the holder's
// grant context could have ended had it lived (its last live report),
// and within about the lock TTL.
func TestFaultKilledHolder(t *testing.T) {
	url := nsURL(singleURL(t), "lock_timeout=3")
	events := make(chan testutil.Event, 1024)
	child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{holderEnv + "=" + url}, events)
	var acquired testutil.Event
	select {
	case acquired = <-events:
	case <-time.After(wait):
		t.Fatal("the helper did not take the lock")
	}
	if acquired.Kind != "acquired" {
		t.Fatalf("helper: %+v", acquired)
	}
	ctx := testCtx(t)
	b := openBackend(t, url, "b")
	if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("TryLock while the helper holds = %v, %v", ok, err)
	}
	// Let the helper refresh its lock a few times.
	time.Sleep(2 * time.Second)
	killedAt := child.Kill()
	var lastLive time.Time
	for len(events) > 0 {
		ev := <-events
		if ev.Kind == "lost" {
			t.Fatalf("the helper lost its grant before being killed: %s", ev.Note)
		}
		lastLive = time.Unix(0, ev.T)
	}
	g, err := b.Lock(ctx, "x", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	grantedAt := time.Now()
	if !grantedAt.After(lastLive) {
		t.Fatalf("granted at %v, before the killed holder's last live report at %v", grantedAt, lastLive)
	}
	if g.Token() <= acquired.Token {
		t.Fatalf("token %d is not above the killed holder's %d", g.Token(), acquired.Token)
	}
	ttl := 3 * time.Second
	took := grantedAt.Sub(killedAt)
	// The helper refreshed at most a third of the TTL before the kill, so
	// its key lived at least two thirds of the TTL after it.
	if took < 2*ttl/3-100*time.Millisecond || took > ttl+3*time.Second {
		t.Fatalf("taken over %v after the kill; want between 2/3 of the TTL %v and TTL + 3 s", took, ttl)
	}
	t.Logf("kill -9 of the holder; taken over %v later (lock TTL %v), token %d -> %d", took.Round(time.Millisecond), ttl, acquired.Token, g.Token())
	if !errors.Is(g.Context().Err(), nil) {
		t.Fatal("new grant already cancelled")
	}
}

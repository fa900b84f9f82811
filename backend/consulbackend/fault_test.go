package consulbackend

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperHolder is the holder process of TestFaultHolderKilled: it
// takes lock "x", joins "g", says so and waits to be killed (it does
// nothing in a normal run).
func TestHelperHolder(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	em := testutil.NewEmitter(name)
	ctx := context.Background()
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	g, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := b.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	em.Emit(testutil.Event{Kind: "held", Token: g.Token()})
	<-b.Done()
}

// A holder process killed with SIGKILL keeps its lock and membership
// until Consul invalidates its session (no earlier: nobody renews it, but
// the TTL runs), then both go at once: the waiter is granted the lock
// with a greater token and the watcher sees the member leave. Consul
// invalidates a session between TTL and twice the TTL after its last
// renewal.
func TestFaultHolderKilled(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	url := nsURL(singleURL(t), "ttl=2")
	events := make(chan testutil.Event, 4)
	child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{"BATON_TEST_URL=" + url}, events)
	var held testutil.Event
	select {
	case held = <-events:
	case <-time.After(wait):
		t.Fatal("the holder process did not take the lock")
	}
	ctx := testCtx(t)
	b := openBackend(t, url, "b")
	w, err := b.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	killedAt := child.Kill()
	type grant struct {
		g   *backend.Grant
		at  time.Time
		err error
	}
	granted := make(chan grant, 1)
	go func() {
		g, err := b.Lock(ctx, "x", backend.LockOptions{})
		granted <- grant{g, time.Now(), err}
	}()
	var got grant
	select {
	case got = <-granted:
	case <-time.After(wait):
		t.Fatal("the killed holder's lock was not handed over")
	}
	if got.err != nil {
		t.Fatalf("b's Lock: %v", got.err)
	}
	if got.g.Token() <= held.Token {
		t.Fatalf("b's token %d is not above the killed holder's %d", got.g.Token(), held.Token)
	}
	after := got.at.Sub(killedAt)
	ttl := 2 * time.Second
	if after < ttl {
		t.Fatalf("lock handed over %v after the kill: before the session TTL %v could run out", after, ttl)
	}
	for {
		ev := testutil.NextEvent(t, w, wait)
		if ev.Type == backend.EventLeft && ev.Member.ID == "holder" {
			break
		}
	}
	t.Logf("kill -9 of the holder: lock handed over and member left %v later (TTL %v; Consul invalidates between TTL and 2×TTL)",
		after.Round(time.Millisecond), ttl)
}

// The dev agent restarted loses every session and key: a's session is
// lost (Done closes with ErrLost, its grant's context is cancelled with
// ErrLost), and a Backend opened again works on the new agent.
func TestFaultAgentRestart(t *testing.T) {
	srv := startPrivate(t, "consul")
	url := nsURL(srv.URL("BATON_TEST_CONSUL_URL"))
	a, _, g, _ := testutil.SetupHolder(t, url, wait)
	restartAt := time.Now()
	srv.run("restart", "consul")
	testutil.WaitClosed(t, a.Done(), wait, "a's Backend ends after the agent lost its session")
	if !errors.Is(a.Err(), backend.ErrLost) {
		t.Fatalf("a's Err = %v, want ErrLost", a.Err())
	}
	if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
		t.Fatalf("a's grant cause = %v, want ErrLost", context.Cause(g.Context()))
	}
	t.Logf("agent restarted: a's session lost %v after the restart began", time.Since(restartAt).Round(time.Millisecond))
	ctx := testCtx(t)
	a2 := openBackend(t, url, "a")
	if err := a2.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatalf("rejoin after the restart: %v", err)
	}
	if _, ok, err := a2.TryLock(ctx, "x", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("lock after the restart = %v, %v", ok, err)
	}
}

// raftState returns "Leader" or "Follower" for the agent at addr.
func raftState(t *testing.T, addr string) string {
	t.Helper()
	cli, done := newAdminClient(t, "consul://"+addr)
	defer done()
	self, err := cli.Agent().Self()
	if err != nil {
		t.Fatalf("agent self of %s: %v", addr, err)
	}
	raft, _ := self["Stats"]["raft"].(map[string]any)
	s, _ := raft["state"].(string)
	return s
}

// Losing the leader of the 3-server cluster is invisible to a client of
// a follower: a new leader is elected, the session (timers reset by the
// new leader) survives beyond its TTL, and the lock, the membership and
// the watch carry on.
func TestFaultClusterLeaderLost(t *testing.T) {
	srv := startPrivate(t, "consul-cluster")
	var follower string
	for _, addr := range strings.Split(srv.URL("BATON_TEST_CONSUL_CLUSTER_ADDRS"), ",") {
		if raftState(t, addr) == "Follower" {
			follower = addr
			break
		}
	}
	if follower == "" {
		t.Fatal("no follower in the cluster")
	}
	url := nsURL("consul://"+follower, "ttl=8")
	a, b, g, w := testutil.SetupHolder(t, url, wait)
	stopAt := time.Now()
	srv.run("stop-one", "consul-cluster:leader")
	ttl := a.Session().TTL
	select {
	case <-g.Context().Done():
		t.Fatalf("a's grant was cancelled %v after the leader stopped: %v", time.Since(stopAt), context.Cause(g.Context()))
	case <-time.After(2 * ttl):
	}
	ctx := testCtx(t)
	if a.Err() != nil {
		t.Fatalf("a ended: %v", a.Err())
	}
	if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("b's TryLock = %v, %v; want busy (a holds it)", ok, err)
	}
	if h, ok, err := b.LockHolder(ctx, "x"); err != nil || !ok || h.Member != "a" || h.Token != g.Token() {
		t.Fatalf("holder = %+v, %v, %v; want a with token %d", h, ok, err, g.Token())
	}
	c := openBackend(t, url, "c")
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	for {
		ev := testutil.NextEvent(t, w, wait)
		if ev.Type == backend.EventJoined && ev.Member.ID == "c" {
			break
		}
	}
	if err := g.Release(ctx); err != nil {
		t.Fatalf("release after the leader loss: %v", err)
	}
	g2, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("b's TryLock after release = %v, %v", ok, err)
	}
	if g2.Token() <= g.Token() {
		t.Fatalf("token %d after the leader change is not above %d", g2.Token(), g.Token())
	}
	t.Logf("leader stopped: grant alive after 2×TTL (%v), watch and locks carried on", 2*ttl)
}

// The holder is cut off from the agent (a proxy drops every byte): its
// grant's context is cancelled before its session can expire, hence
// before the waiting member is granted the lock.
func TestFaultBlackholedHolderCancelsFirst(t *testing.T) {
	direct := singleURL(t)
	host := strings.TrimPrefix(direct, "consul://")
	p := testutil.StartProxy(t, host)
	ns := "t-" + testutil.Unique()
	viaProxy := "consul://" + p.Addr() + "?namespace=" + ns + "&ttl=3&timeout=1"
	url := direct + "?namespace=" + ns + "&ttl=3"
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
	partitionAt := time.Now()
	p.Blackhole(true)

	var got grant
	select {
	case got = <-granted:
	case <-time.After(wait):
		t.Fatal("b was not granted the lock after a's session expired")
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
	t.Logf("blackhole +%v: a's grant cancelled; +%v: b granted (%v later)",
		cAt.Sub(partitionAt).Round(time.Millisecond), got.at.Sub(partitionAt).Round(time.Millisecond), got.at.Sub(cAt).Round(time.Millisecond))
	testutil.WaitClosed(t, a.Done(), wait, "the cut-off Backend ends")
	if !errors.Is(a.Err(), backend.ErrLost) {
		t.Fatalf("a's Err = %v, want ErrLost", a.Err())
	}
	p.Heal()
}

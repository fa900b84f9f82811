package testutil

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// This file holds the three-process test of a resignation past a
// candidate killed while waiting, shared by the drivers whose locks
// queue (etcd3, etcd3+http, etcd v2, ZooKeeper): campaigns race instead
// of queuing, so a dead candidate must delay nobody.

// CandidateHelper is the body of a candidate process, called from the
// package's TestHelperCandidate (it does nothing in a normal run): it
// opens $BATON_TEST_URL as the helper's name, reports "ready", tries to
// lead $BATON_TEST_GROUP and, finding another leader, reports "waiting"
// and campaigns; once elected it reports "elected" with its term's token
// and resigns on SIGTERM.
func CandidateHelper(t *testing.T) {
	name := os.Getenv(HelperEnv)
	if name == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	em := NewEmitter(name)
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	em.Emit(Event{Kind: "ready"})
	group := os.Getenv("BATON_TEST_GROUP")
	g, ok, err := b.TryCampaign(ctx, group, backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		em.Emit(Event{Kind: "waiting"})
		if g, err = b.Campaign(ctx, group, backend.LockOptions{}); err != nil {
			return
		}
	}
	em.Emit(Event{Kind: "elected", Token: g.Token()})
	<-ctx.Done()
	_ = g.Release(context.Background())
}

// expectEvent waits up to d for the next event of kind from proc, failing
// the test if another process is elected meanwhile.
func expectEvent(t *testing.T, events <-chan Event, proc, kind string, d time.Duration) Event {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Proc == proc && ev.Kind == kind {
				return ev
			}
			if ev.Kind == "elected" {
				t.Fatalf("%s was elected while waiting for %s of %s", ev.Proc, kind, proc)
			}
		case <-tm.C:
			t.Fatalf("no %q from %s within %v", kind, proc, d)
		}
	}
}

// HandoverPastKilledCandidate runs three rounds of: this process leads a
// fresh group on url; two candidate processes (the package's
// TestHelperCandidate, which calls CandidateHelper) wait for it; one is
// killed with SIGKILL, its session still alive on the server; the leader
// resigns. The live candidate must be elected within half the session
// TTL (it is a round trip or two: the dead one leaves nothing behind),
// with a larger token. When entries is not nil it counts the records the
// store keeps for a group's leadership, and after the kill it must fall
// to one, the leader's: waiting candidates keep nothing on the server. d
// bounds every wait.
func HandoverPastKilledCandidate(t *testing.T, url string, entries func(ctx context.Context, group string) (int, error), d time.Duration) {
	if os.Getenv(HelperEnv) != "" {
		return
	}
	leader := OpenMember(t, url, "leader", d)
	ttl := leader.Session().TTL
	ctx := Context(t, 4*d)
	var took []time.Duration
	for round := range 3 {
		group := "h" + string(rune('a'+round))
		g, err := leader.Campaign(ctx, group, backend.LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		events := make(chan Event, 16)
		env := []string{"BATON_TEST_URL=" + url, "BATON_TEST_GROUP=" + group}
		dead := StartChild(t, "dead", "TestHelperCandidate", env, events)
		expectEvent(t, events, "dead", "ready", d)
		expectEvent(t, events, "dead", "waiting", d)
		live := StartChild(t, "live", "TestHelperCandidate", env, events)
		expectEvent(t, events, "live", "ready", d)
		expectEvent(t, events, "live", "waiting", d)
		dead.Kill()
		if entries != nil {
			Eventually(t, d, "only the leader's record left", func() bool {
				n, err := entries(ctx, group)
				return err == nil && n == 1
			})
		}
		resigned := time.Now()
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		ev := expectEvent(t, events, "live", "elected", d)
		took = append(took, time.Unix(0, ev.T).Sub(resigned))
		if ev.Token <= g.Token() {
			t.Fatalf("the new leader's token %d is not above the old one's %d", ev.Token, g.Token())
		}
		if last := took[len(took)-1]; last > ttl/2 {
			t.Errorf("round %d: the live candidate was elected %v after the resignation (session TTL %v): it waited for the dead one's session", round, last, ttl)
		}
		live.Stop(d)
	}
	t.Logf("handover past a killed candidate (session TTL %v): %v", ttl, took)
}

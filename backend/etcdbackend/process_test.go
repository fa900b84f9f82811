package etcdbackend

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperCandidate is the body of a candidate process (it does nothing
// in a normal run): it campaigns in group $BATON_TEST_GROUP, reports
// "waiting" when it found another leader, then "elected" with its term's
// token, and resigns on SIGTERM.
func TestHelperCandidate(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	em := testutil.NewEmitter(name)
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	em.Emit(testutil.Event{Kind: "ready"})
	group := os.Getenv("BATON_TEST_GROUP")
	g, ok, err := b.TryCampaign(ctx, group, backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		em.Emit(testutil.Event{Kind: "waiting"})
		if g, err = b.Campaign(ctx, group, backend.LockOptions{}); err != nil {
			return
		}
	}
	em.Emit(testutil.Event{Kind: "elected", Token: g.Token()})
	<-ctx.Done()
	_ = g.Release(context.Background())
}

// expectEvent waits for the next event of kind from proc.
func expectEvent(t *testing.T, events <-chan testutil.Event, proc, kind string) testutil.Event {
	t.Helper()
	tm := time.NewTimer(wait)
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
			t.Fatalf("no %q from %s within %v", kind, proc, wait)
		}
	}
}

// A leader resigns while one of the two candidates waiting for it was
// killed with SIGKILL (its session lease is still alive on the server):
// the live one is elected at once, not when the dead one's lease expires.
// Campaigns race instead of queuing (driver.LockRequest.Unordered), so a
// waiting candidate leaves no entry that the live one must get past.
// Three processes: the leader (this one), the killed candidate and the
// live one.
func TestHandoverPastKilledCandidate(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	url := nsURL(singleURL(t), "timeout=3")
	admin, ks := etcdtest.AdminClient(t, url), newKeyspace(testutil.NamespaceOf(t, url))
	leader := openBackend(t, url, "leader")
	ttl := leader.Session().TTL
	ctx := testCtx(t)
	var took []time.Duration
	for round := range 3 {
		group := "h" + string(rune('a'+round))
		g, err := leader.Campaign(ctx, group, backend.LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		events := make(chan testutil.Event, 16)
		env := []string{"BATON_TEST_URL=" + url, "BATON_TEST_GROUP=" + group}
		dead := testutil.StartChild(t, "dead", "TestHelperCandidate", env, events)
		expectEvent(t, events, "dead", "ready")
		expectEvent(t, events, "dead", "waiting")
		live := testutil.StartChild(t, "live", "TestHelperCandidate", env, events)
		expectEvent(t, events, "live", "ready")
		expectEvent(t, events, "live", "waiting")
		dead.Kill()
		// Waiting candidates keep nothing on the server: the leader's
		// entry is the only one (a queue would hold all three).
		testutil.Within(t, wait, "only the leader's entry left", func() bool {
			resp, err := admin.Get(ctx, ks.lockPrefix("e/"+group), clientv3.WithPrefix(), clientv3.WithCountOnly())
			return err == nil && resp.Count == 1
		})
		resigned := time.Now()
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		ev := expectEvent(t, events, "live", "elected")
		d := time.Unix(0, ev.T).Sub(resigned)
		took = append(took, d)
		if ev.Token <= g.Token() {
			t.Fatalf("the new leader's token %d is not above the old one's %d", ev.Token, g.Token())
		}
		if d > ttl/2 {
			t.Errorf("round %d: the live candidate was elected %v after the resignation (lease TTL %v): it waited for the dead one's lease", round, d, ttl)
		}
		live.Stop(wait)
	}
	t.Logf("handover past a killed candidate (lease TTL %v): %v", ttl, took)
}

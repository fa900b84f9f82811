package election_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/election"
	"github.com/baton-go/baton/internal/testutil"
)

// TestHelperCandidate is the body of a candidate process (it does nothing
// in a normal run).
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
	_ = election.Run(ctx, b, "mp", func(ctx context.Context) error {
		em.Emit(testutil.Event{Kind: "start"})
		<-ctx.Done()
		// Emitted by the work itself once it saw the cancellation: Run
		// resigns only after this returns.
		em.Emit(testutil.Event{Kind: "cancel"})
		return nil
	}, election.WithMaxPollInterval(5*time.Millisecond))
}

// TestMultiProcessTakeover runs candidates in separate processes on
// file://, kills the leader with SIGKILL (and later stops one gracefully),
// and checks that a successor takes over, never before the predecessor's
// work ended (killed, or its context cancelled), and that at no instant
// two processes led.
func TestMultiProcessTakeover(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	url := testutil.FileURL(t)
	events := make(chan testutil.Event, 64)
	children := map[string]*testutil.Child{}
	n := 0
	spawn := func() {
		n++
		name := fmt.Sprintf("c%d", n)
		children[name] = testutil.StartChild(t, name, "TestHelperCandidate", []string{"BATON_TEST_URL=" + url}, events)
	}
	for range 3 {
		spawn()
	}
	var all []testutil.Event
	waitStart := func(not string) testutil.Event {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case ev := <-events:
				all = append(all, ev)
				if ev.Kind == "start" && ev.Proc != not {
					return ev
				}
			case <-deadline:
				t.Fatal("no leader started within 20s")
			}
		}
	}
	leader := waitStart("")
	var killGaps, stopGaps []time.Duration
	for round := range 4 {
		c := children[leader.Proc]
		var at time.Time
		if round%2 == 0 {
			at = c.Kill()
			all = append(all, testutil.Event{T: at.UnixNano(), Proc: leader.Proc, Kind: "killed"})
		} else {
			at = c.Stop(10 * time.Second)
		}
		delete(children, leader.Proc)
		next := waitStart(leader.Proc)
		gap := time.Unix(0, next.T).Sub(at)
		if round%2 == 0 {
			killGaps = append(killGaps, gap)
		} else {
			stopGaps = append(stopGaps, gap)
		}
		if gap < 0 {
			t.Fatalf("round %d: %s started %v before %s was stopped", round, next.Proc, -gap, leader.Proc)
		}
		leader = next
		spawn()
	}
	for _, c := range children {
		c.Stop(10 * time.Second)
	}
	close(events)
	for ev := range events {
		all = append(all, ev)
	}
	checkOneLeader(t, all)
	t.Logf("file:// takeover after kill -9: %v; after graceful stop: %v", killGaps, stopGaps)
}

// checkOneLeader replays events in time order: a "start" while another
// process leads (no "cancel" or "killed" yet) is a violation.
func checkOneLeader(t *testing.T, evs []testutil.Event) {
	t.Helper()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	leading := map[string]bool{}
	for _, ev := range evs {
		switch ev.Kind {
		case "start":
			for p := range leading {
				if p != ev.Proc {
					t.Fatalf("%s started leading at %d while %s led", ev.Proc, ev.T, p)
				}
			}
			leading[ev.Proc] = true
		case "cancel", "killed":
			delete(leading, ev.Proc)
		}
	}
}

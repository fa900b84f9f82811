package partitioner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/partitioner"
)

const mpPartitions = 8

// TestHelperWorker is the body of a worker process (nothing in a normal
// run): it owns partitions exclusively and reports every change.
func TestHelperWorker(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	em := testutil.NewEmitter(name)
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name), backend.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	p, err := partitioner.New(ctx, b, "mp", partitioner.WithPartitions(mpPartitions),
		partitioner.WithRetryInterval(5*time.Millisecond),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Lost) > 0 {
				em.Emit(testutil.Event{Kind: "lost", Parts: r.Lost})
			}
			if len(r.Gained) > 0 {
				em.Emit(testutil.Event{Kind: "gained", Parts: r.Gained})
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	em.Emit(testutil.Event{Kind: "ready"})
	<-ctx.Done()
	_ = p.Close(context.Background())
}

// TestMultiProcessExclusivePartitions churns worker processes (SIGKILL,
// graceful stop, start) on file:// until at least 100 rebalances were
// reported, and checks, replaying every report in time order, that no
// partition was ever owned by two processes at once.
func TestMultiProcessExclusivePartitions(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	url := testutil.FileURL(t)
	events := make(chan testutil.Event, 256)
	live := map[string]*testutil.Child{}
	var names []string
	var all []testutil.Event
	n := 0
	spawn := func() {
		n++
		name := fmt.Sprintf("w%d", n)
		live[name] = testutil.StartChild(t, name, "TestHelperWorker", []string{"BATON_TEST_URL=" + url}, events)
		names = append(names, name)
	}
	drain := func() {
		for {
			select {
			case ev := <-events:
				all = append(all, ev)
			default:
				return
			}
		}
	}
	rebalances := func() int {
		c := 0
		for _, ev := range all {
			if ev.Kind == "lost" || ev.Kind == "gained" {
				c++
			}
		}
		return c
	}
	// settled waits until every partition is owned by a live process.
	settled := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			drain()
			if len(owners(all, live)) == mpPartitions {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("partitions never settled: %v", owners(all, live))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range 3 {
		spawn()
	}
	settled()
	rng := rand.New(rand.NewPCG(1, 2))
	var killGaps []time.Duration
	// Churn until 100 rebalances were observed, or for at most 90 s on a
	// machine too busy for that; safety is asserted on every event either
	// way, and at least 20 rebalances must have been seen to prove churn.
	churnUntil := time.Now().Add(90 * time.Second)
	for round := 0; rebalances() < 100 && time.Now().Before(churnUntil); round++ {
		alive := make([]string, 0, len(live))
		for name := range live {
			alive = append(alive, name)
		}
		sort.Strings(alive)
		switch a := rng.IntN(3); {
		case a == 0 && len(alive) > 1:
			victim := alive[rng.IntN(len(alive))]
			at := live[victim].Kill()
			all = append(all, testutil.Event{T: at.UnixNano(), Proc: victim, Kind: "killed"})
			delete(live, victim)
			// Time from the kill to every partition owned again by a
			// live process (bounded by settled's 20 s deadline).
			settled()
			killGaps = append(killGaps, time.Since(at))
		case a == 1 && len(alive) > 1:
			victim := alive[rng.IntN(len(alive))]
			live[victim].Stop(10 * time.Second)
			delete(live, victim)
		default:
			if len(alive) < 5 {
				spawn()
			}
		}
		if round%3 == 0 {
			settled()
		}
	}
	settled()
	for _, c := range live {
		c.Stop(10 * time.Second)
	}
	drain()
	checkExclusive(t, all)
	if rebalances() < 20 {
		t.Fatalf("only %d rebalances observed in 90s of churn", rebalances())
	}
	t.Logf("%d processes, %d rebalances, no partition owned twice", n, rebalances())
	if len(killGaps) > 0 {
		sort.Slice(killGaps, func(i, j int) bool { return killGaps[i] < killGaps[j] })
		t.Logf("%d kill -9: every partition owned again after p50 %v, max %v", len(killGaps), killGaps[len(killGaps)/2], killGaps[len(killGaps)-1])
	}
}

// owners returns the owner of each partition according to the reports of
// live processes.
func owners(evs []testutil.Event, live map[string]*testutil.Child) map[int]string {
	sorted := append([]testutil.Event(nil), evs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].T < sorted[j].T })
	own := map[int]string{}
	for _, ev := range sorted {
		for _, p := range ev.Parts {
			switch ev.Kind {
			case "gained":
				own[p] = ev.Proc
			case "lost":
				if own[p] == ev.Proc {
					delete(own, p)
				}
			}
		}
	}
	for p, o := range own {
		if live[o] == nil {
			delete(own, p)
		}
	}
	return own
}

// checkExclusive replays the reports in time order: a gain of a
// partition another process still owns (not lost, not killed) fails.
func checkExclusive(t *testing.T, evs []testutil.Event) {
	t.Helper()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	own := map[int]string{}
	for _, ev := range evs {
		switch ev.Kind {
		case "killed":
			for p, o := range own {
				if o == ev.Proc {
					delete(own, p)
				}
			}
		case "lost":
			for _, p := range ev.Parts {
				if own[p] == ev.Proc {
					delete(own, p)
				}
			}
		case "gained":
			for _, p := range ev.Parts {
				if o, ok := own[p]; ok && o != ev.Proc {
					t.Fatalf("partition %d gained by %s at %d while owned by %s", p, ev.Proc, ev.T, o)
				}
				own[p] = ev.Proc
			}
		}
	}
}

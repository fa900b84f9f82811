package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/partitioner"
)

// rebalanceLedger follows, from every member's OnRebalance, who owns each
// partition, and signals each change.
type rebalanceLedger struct {
	mu      sync.Mutex
	owner   map[int]map[string]bool
	changed chan struct{}
}

func (l *rebalanceLedger) option(me string) partitioner.Option {
	return partitioner.OnRebalance(func(r partitioner.Rebalance) {
		l.mu.Lock()
		for _, p := range r.Lost {
			delete(l.owner[p], me)
		}
		for _, p := range r.Gained {
			if l.owner[p] == nil {
				l.owner[p] = map[string]bool{}
			}
			l.owner[p][me] = true
		}
		l.mu.Unlock()
		select {
		case l.changed <- struct{}{}:
		default:
		}
	})
}

// settled reports whether every partition is owned exactly once, by the
// member the assignment names; the partitions of skip (a member the
// ledger does not follow) must be owned by no member it follows.
func (l *rebalanceLedger) settled(want []string, skip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, o := range want {
		if o == skip && skip != "" {
			if len(l.owner[p]) != 0 {
				return false
			}
			continue
		}
		if len(l.owner[p]) != 1 || !l.owner[p][o] {
			return false
		}
	}
	return true
}

// rebalanceSizes are the group sizes the rebalance benchmark measures:
// the fleet (16 members, 256 partitions) and the small one of
// the rebalance goal (5 members, 16 partitions).
var rebalanceSizes = []struct{ members, parts int }{{16, 256}, {5, 16}}

// rebalanceTargets are the backends the rebalance benchmark covers.
var rebalanceTargets = []string{"mem", "file", "redis", "zookeeper", "etcd"}

// BenchmarkRebalance measures, in Exclusive mode, the time from a
// membership change to every partition owned exactly once again by the
// member the assignment names: a member joins; it leaves gracefully
// (Close); it is killed (SIGKILL of its process, which runs with the
// crash rounds' 2s TTL; on mem:// its session is cut off and expired).
// p50 and p90 over the rounds: BATON_BENCH_ROUNDS joins and leaves (at
// least 10; default 10) and as many kills (at least 2).
func BenchmarkRebalance(b *testing.B) {
	for _, name := range rebalanceTargets {
		t := targetNamed(name)
		b.Run(t.name, func(b *testing.B) {
			for _, sz := range rebalanceSizes {
				b.Run(fmt.Sprintf("%dx%d", sz.members, sz.parts), func(b *testing.B) {
					measureOnce(b, func(b *testing.B) []metric {
						return benchRebalance(b, t, sz.members, sz.parts)
					})
				})
			}
		})
	}
}

// TestHelperPartitionMember is the body of a kill round's member process:
// it joins the partitioned group its parent names, reports how many
// partitions it owns after each rebalance, and runs until it is killed.
// It does nothing in a normal run.
func TestHelperPartitionMember(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	em := testutil.NewEmitter(name)
	tb := emittingTB{TB: t, em: em}
	parts, err := strconv.Atoi(os.Getenv("BENCH_PARTS"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	be, err := backend.Open(ctx, os.Getenv("BENCH_URL"), backend.WithMemberID(name))
	if err != nil {
		tb.Fatal(err)
	}
	_, err = partitioner.New(ctx, be, os.Getenv("BENCH_GROUP"), partitioner.WithPartitions(parts),
		partitioner.WithRetryInterval(5*time.Millisecond),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			em.Emit(testutil.Event{Kind: "owned", Note: strconv.Itoa(len(r.Owned))})
		}))
	if err != nil {
		tb.Fatal(err)
	}
	select {}
}

// benchRebalance runs the rounds of one target and size.
func benchRebalance(b *testing.B, t *target, members, parts int) []metric {
	ctx := context.Background()
	s := newSite(b, t)
	url := s.batonURL(true)
	group := "rebalance-" + testutil.Unique()
	l := &rebalanceLedger{owner: map[int]map[string]bool{}, changed: make(chan struct{}, 1)}
	open := func(me string) *partitioner.Partitioner {
		be, err := backend.Open(ctx, url, backend.WithMemberID(me), backend.WithPollInterval(10*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = be.Close(ctx) })
		p, err := partitioner.New(ctx, be, group, partitioner.WithPartitions(parts), l.option(me),
			partitioner.WithRetryInterval(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	assign := func(ids ...string) []string { return partitioner.AssignBalanced(weighOne(ids), parts) }
	var ids []string
	var ps []*partitioner.Partitioner
	for i := range members {
		id := fmt.Sprintf("m%02d", i)
		ids = append(ids, id)
		ps = append(ps, open(id))
	}
	defer func() {
		for _, p := range ps {
			_ = p.Close(ctx)
		}
	}()
	// wait returns how long until every partition is owned exactly once
	// by its member in want; skip: a member not followed by the ledger
	// (a child process), whose partitions only must not be owned by
	// another.
	wait := func(want []string, skip string, limit time.Duration) time.Duration {
		t0 := time.Now()
		deadline := t0.Add(limit)
		for !l.settled(want, skip) {
			if time.Now().After(deadline) {
				b.Fatalf("%s %dx%d: not settled within %v", t.name, members, parts, limit)
			}
			select {
			case <-l.changed:
			case <-time.After(time.Millisecond):
			}
		}
		return time.Since(t0)
	}
	wait(assign(ids...), "", waitLimit)
	// Joins and leaves are quick: at least 10 of them, for a p90.
	rounds := max(takeoverRounds(b), 10)
	var join, leave, kill []time.Duration
	for i := range rounds {
		id := fmt.Sprintf("extra%d", i)
		withNew := assign(append(slices.Clone(ids), id)...)
		t0 := time.Now()
		p := open(id)
		wait(withNew, "", waitLimit)
		join = append(join, time.Since(t0))
		t0 = time.Now()
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
		wait(assign(ids...), "", waitLimit)
		leave = append(leave, time.Since(t0))
	}
	for i := range max(2, takeoverRounds(b)) {
		id := fmt.Sprintf("killed%d", i)
		withNew := assign(append(slices.Clone(ids), id)...)
		share := 0
		for _, o := range withNew {
			if o == id {
				share++
			}
		}
		var killedAt time.Time
		if t.memFault {
			open(id)
			wait(withNew, "", waitLimit)
			store := strings.TrimPrefix(url, "mem://")
			killedAt = time.Now()
			if err := membackend.SetUnreachable(store, id, true); err != nil {
				b.Fatal(err)
			}
			if err := membackend.ExpireSession(store, id); err != nil {
				b.Fatal(err)
			}
		} else {
			events := make(chan testutil.Event, 64)
			child := testutil.StartChild(b, id, "TestHelperPartitionMember", []string{
				"BENCH_URL=" + url, "BENCH_GROUP=" + group, "BENCH_PARTS=" + strconv.Itoa(parts),
			}, events)
			wait(withNew, id, waitLimit)
			// The child owns its share once it says so.
			timer := time.NewTimer(waitLimit)
			for owned := -1; owned != share; {
				select {
				case ev := <-events:
					switch ev.Kind {
					case "owned":
						owned, _ = strconv.Atoi(ev.Note)
					case "error":
						b.Fatalf("member process %s: %s", id, ev.Note)
					}
				case <-timer.C:
					b.Fatalf("member process %s never owned its %d partitions", id, share)
				}
			}
			timer.Stop()
			killedAt = child.Kill()
		}
		wait(assign(ids...), "", t.ttl()+waitLimit)
		kill = append(kill, time.Since(killedAt))
	}
	b.Logf("join %v\nleave %v\nkill %v", join, leave, kill)
	v := map[string]float64{
		"members": float64(members), "parts": float64(parts), "rounds": float64(rounds), "kill_rounds": float64(len(kill)),
		"ttl_s": t.ttl().Seconds(),
	}
	var ms []metric
	ms = quantiles(v, ms, "join", join, 0.5, 0.9)
	ms = quantiles(v, ms, "leave", leave, 0.5, 0.9)
	ms = quantiles(v, ms, "kill", kill, 0.5, 0.9)
	addRecord(record{Metric: "rebalance", Target: t.name, Kind: fmt.Sprintf("%dx%d", members, parts), Values: v})
	return ms
}

// weighOne gives each member of ids the weight 1.
func weighOne(ids []string) []partitioner.Weighted {
	ws := make([]partitioner.Weighted, len(ids))
	for i, id := range ids {
		ws[i] = partitioner.Weighted{ID: id, Weight: 1}
	}
	return ws
}

// BenchmarkBalance measures the Balanced assignment's balance and
// movement (testutil.MeasureBalance: 200 random member name sets per
// size, 50 at N = 100), and the Ring assignment's beside it.
func BenchmarkBalance(b *testing.B) {
	for _, parts := range []int{8, 64, 256} {
		for _, n := range []int{3, 4, 16, 100} {
			b.Run(fmt.Sprintf("P=%d/N=%d", parts, n), func(b *testing.B) {
				measureOnce(b, func(b *testing.B) []metric {
					sets := 200
					if n == 100 {
						sets = 50
					}
					bal := testutil.MeasureBalance(func(ids []string, parts int) []string {
						return partitioner.AssignBalanced(weighOne(ids), parts)
					}, parts, n, sets)
					ring := testutil.MeasureBalance(func(ids []string, parts int) []string {
						o, err := partitioner.AssignRing(weighOne(ids), parts)
						if err != nil {
							b.Fatal(err)
						}
						return o
					}, parts, n, max(sets/4, 10))
					addRecord(record{Metric: "balance", Target: fmt.Sprintf("%d/%d", parts, n), Values: map[string]float64{
						"parts": float64(parts), "members": float64(n), "sets": float64(bal.Sets),
						"max_over_mean": bal.MaxOverMean, "idle_sets": float64(bal.IdleSets), "moved_over_opt": bal.MovedOverOptimum(),
						"ring_sets": float64(ring.Sets), "ring_max_over_mean": ring.MaxOverMean, "ring_idle_sets": float64(ring.IdleSets),
						"ring_moved_over_opt": ring.MovedOverOptimum(),
					}})
					return []metric{{bal.MaxOverMean, "max/mean"}, {float64(bal.IdleSets), "idle-sets"}, {bal.MovedOverOptimum(), "moved/optimum"}}
				})
			})
		}
	}
}

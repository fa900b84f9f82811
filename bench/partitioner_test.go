package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
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
// member the assignment of members names.
func (l *rebalanceLedger) settled(want []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, o := range want {
		if len(l.owner[p]) != 1 || !l.owner[p][o] {
			return false
		}
	}
	return true
}

// BenchmarkRebalance measures, with 16 members and 256 partitions in
// Exclusive mode, the time from a membership change (a 17th member
// joins; then it leaves with Close) to every partition owned exactly once
// by the member the assignment names, p50 and p90 over the rounds.
func BenchmarkRebalance(b *testing.B) {
	for _, tc := range []struct{ name, url string }{
		{"mem", "mem://bench-rebalance-" + testutil.Unique()},
		{"file", "file://" + b.TempDir() + "/baton"},
		{"redis", os.Getenv("BATON_TEST_REDIS_URL")},
		{"zookeeper", os.Getenv("BATON_TEST_ZOOKEEPER_URL")},
		{"etcd", os.Getenv("BATON_TEST_ETCD_URL")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.url == "" {
				b.Fatalf("%s: start its server first (scripts/servers.sh start %s)", tc.name, tc.name)
			}
			benchRebalance(b, tc.url)
		})
	}
}

func benchRebalance(b *testing.B, url string) {
	const members, parts = 16, 256
	ctx := context.Background()
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
	ws := func(ids []string) []partitioner.Weighted {
		var out []partitioner.Weighted
		for _, id := range ids {
			out = append(out, partitioner.Weighted{ID: id, Weight: 1})
		}
		return out
	}
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
	wait := func(want []string) time.Duration {
		t0 := time.Now()
		deadline := t0.Add(60 * time.Second)
		for !l.settled(want) {
			if time.Now().After(deadline) {
				b.Fatal("never settled")
			}
			select {
			case <-l.changed:
			case <-time.After(time.Millisecond):
			}
		}
		return time.Since(t0)
	}
	wait(partitioner.AssignBalanced(ws(ids), parts))
	var join, leave []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("extra%d", i)
		withNew := partitioner.AssignBalanced(ws(append(slices.Clone(ids), id)), parts)
		t0 := time.Now()
		p := open(id)
		wait(withNew)
		join = append(join, time.Since(t0))
		t0 = time.Now()
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
		wait(partitioner.AssignBalanced(ws(ids), parts))
		leave = append(leave, time.Since(t0))
	}
	b.StopTimer()
	pct := func(ds []time.Duration, q float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(join, 0.5), "join-p50-ms")
	b.ReportMetric(pct(join, 0.9), "join-p90-ms")
	b.ReportMetric(pct(leave, 0.5), "leave-p50-ms")
	b.ReportMetric(pct(leave, 0.9), "leave-p90-ms")
	b.ReportMetric(0, "ns/op")
}

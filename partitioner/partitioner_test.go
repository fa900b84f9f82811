package partitioner_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/partitioner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ledger checks, from the OnRebalance callbacks of every member, that no
// partition is ever owned by two members at once and that every
// Rebalance reports losses before gains.
type ledger struct {
	mu         sync.Mutex
	owner      map[int]string
	violations []string
	rebalances int
}

func newLedger() *ledger { return &ledger{owner: map[int]string{}} }

func (l *ledger) callback(me string) partitioner.Option {
	return partitioner.OnRebalance(func(r partitioner.Rebalance) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.rebalances++
		if len(r.Lost) > 0 && len(r.Gained) > 0 {
			l.violations = append(l.violations, fmt.Sprintf("%s: lost and gained in one report", me))
		}
		for _, p := range r.Lost {
			if l.owner[p] == me {
				delete(l.owner, p)
			}
		}
		for _, p := range r.Gained {
			if o, ok := l.owner[p]; ok && o != me {
				l.violations = append(l.violations, fmt.Sprintf("partition %d gained by %s while owned by %s", p, me, o))
			}
			l.owner[p] = me
		}
	})
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rebalances
}

func (l *ledger) owned() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.owner)
}

func (l *ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(l.violations), l.violations[0])
	}
}

// converged reports a settled state: every member sees every member,
// every view agrees on each partition's owner, and exactly that member
// holds it (a member that updated its view but has not yet released what
// it lost is not settled).
func converged(ps []*partitioner.Partitioner, n int) bool {
	for _, p := range ps {
		if len(p.Members()) != len(ps) {
			return false
		}
	}
	for part := 0; part < n; part++ {
		owner, ok := ps[0].PartitionOwner(part)
		if !ok {
			return false
		}
		holders := 0
		for _, p := range ps {
			if o, _ := p.PartitionOwner(part); o != owner {
				return false
			}
			if p.OwnsPartition(part) {
				holders++
			}
		}
		if holders != 1 {
			return false
		}
	}
	return true
}

func TestThreeMembersShareEveryPartition(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 30*time.Second)
		l := newLedger()
		var ps []*partitioner.Partitioner
		for i := range 3 {
			me := fmt.Sprintf("m%d", i)
			p, err := partitioner.New(ctx, testutil.Open(t, url, me), "shards", partitioner.WithPartitions(32), l.callback(me),
				partitioner.WithRetryInterval(5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		testutil.Eventually(t, 10*time.Second, "partitions converge", func() bool { return converged(ps, 32) })
		for _, key := range []string{"a", "b", "order-17", "чупакабра"} {
			owner, ok := ps[0].Owner([]byte(key))
			if !ok {
				t.Fatal("no owner")
			}
			owners := 0
			for i, p := range ps {
				if o, _ := p.Owner([]byte(key)); o != owner {
					t.Fatalf("member %d sees owner %s, member 0 sees %s", i, o, owner)
				}
				if p.OwnedBySelf([]byte(key)) {
					owners++
					part := p.Partition([]byte(key))
					if ctx, ok := p.PartitionContext(part); !ok || ctx.Err() != nil || p.PartitionToken(part) == 0 {
						t.Fatal("owned partition has no live context or token")
					}
				}
			}
			if owners != 1 {
				t.Fatalf("key %q owned by %d members", key, owners)
			}
			if reps := ps[0].Owners([]byte(key), 3); len(reps) != 3 || reps[0] != owner {
				t.Fatalf("Owners = %v", reps)
			}
		}
		if err := ps[2].Close(ctx); err != nil {
			t.Fatal(err)
		}
		ps = ps[:2]
		testutil.Eventually(t, 10*time.Second, "partitions move to the survivors", func() bool { return converged(ps, 32) })
		for _, p := range ps {
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		l.check(t)
	})
}

// TestExclusiveUnderChurn joins and leaves members over and over: across
// at least 100 rebalances no partition is ever owned twice.
func TestExclusiveUnderChurn(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 60*time.Second)
		l := newLedger()
		const parts = 16
		live := map[string]*partitioner.Partitioner{}
		start := func(me string) {
			p, err := partitioner.New(ctx, testutil.Open(t, url, me), "churn", partitioner.WithPartitions(parts), l.callback(me),
				partitioner.WithRetryInterval(2*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			live[me] = p
		}
		for i := range 3 {
			start(fmt.Sprintf("base%d", i))
		}
		for i := 0; l.count() < 100 || i < 20; i++ {
			me := fmt.Sprintf("churn%d", i)
			start(me)
			if i%2 == 0 {
				testutil.Eventually(t, 10*time.Second, "settle", func() bool { return l.owned() == parts })
			}
			if err := live[me].Close(ctx); err != nil {
				t.Fatal(err)
			}
			delete(live, me)
			l.check(t)
			if i > 200 {
				t.Fatal("too few rebalances")
			}
		}
		ps := make([]*partitioner.Partitioner, 0, len(live))
		for _, p := range live {
			ps = append(ps, p)
		}
		testutil.Eventually(t, 10*time.Second, "final convergence", func() bool { return converged(ps, parts) })
		for _, p := range ps {
			_ = p.Close(ctx)
		}
		l.check(t)
		t.Logf("%d rebalances, no partition owned twice", l.count())
	})
}

func TestAdvisoryAndWeights(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	url := testutil.MemURL(t)
	heavy, err := partitioner.New(ctx, testutil.Open(t, url, "heavy"), "w", partitioner.WithMode(partitioner.Advisory),
		partitioner.WithPartitions(256), partitioner.WithWeight(3))
	if err != nil {
		t.Fatal(err)
	}
	light, err := partitioner.New(ctx, testutil.Open(t, url, "light"), "w", partitioner.WithMode(partitioner.Advisory),
		partitioner.WithPartitions(256))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "views agree", func() bool {
		return converged([]*partitioner.Partitioner{heavy, light}, 256)
	})
	h, lt := len(heavy.Owned()), len(light.Owned())
	if h < 2*lt {
		t.Fatalf("weight 3 owns %d partitions, weight 1 owns %d", h, lt)
	}
	part := light.Owned()[0]
	pctx, ok := light.PartitionContext(part)
	if !ok || light.PartitionToken(part) != 0 {
		t.Fatal("advisory partition: no context, or a token")
	}
	if err := light.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(pctx), partitioner.ErrRevoked) {
		t.Fatalf("revoked partition's context cause = %v", context.Cause(pctx))
	}
	testutil.Eventually(t, 10*time.Second, "heavy owns all", func() bool { return len(heavy.Owned()) == 256 })
	_ = heavy.Close(ctx)
}

func TestOptionsValidated(t *testing.T) {
	b := testutil.Open(t, testutil.MemURL(t), "m")
	tests := []struct {
		name string
		give []partitioner.Option
	}{
		{"negative partitions", []partitioner.Option{partitioner.WithPartitions(-1)}},
		{"too many partitions", []partitioner.Option{partitioner.WithPartitions(1<<16 + 1)}},
		{"negative weight", []partitioner.Option{partitioner.WithWeight(-1)}},
		{"bad mode", []partitioner.Option{partitioner.WithMode(9)}},
		{"margin over ttl", []partitioner.Option{partitioner.WithLockTTL(time.Second), partitioner.WithSafetyMargin(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := partitioner.New(context.Background(), b, "g", tt.give...); !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("New = %v", err)
			}
		})
	}
}

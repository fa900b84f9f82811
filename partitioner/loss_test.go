package partitioner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/partitioner"
)

// recorder keeps every Rebalance of one member with the instant it came.
type recorder struct {
	mu  sync.Mutex
	evs []stamped
}

type stamped struct {
	at time.Time
	r  partitioner.Rebalance
}

func (r *recorder) option() partitioner.Option {
	return partitioner.OnRebalance(func(rb partitioner.Rebalance) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.evs = append(r.evs, stamped{time.Now(), rb})
	})
}

// find returns the first report after since that lost (or gained) part.
func (r *recorder) find(since time.Time, part int, gained bool) (stamped, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		l := ev.r.Lost
		if gained {
			l = ev.r.Gained
		}
		if !ev.at.Before(since) && slices.Contains(l, part) {
			return ev, true
		}
	}
	return stamped{}, false
}

const lockTTL = 1500 * time.Millisecond

// leaseURL is a mem:// store in lease mode whose locks have a lease of
// their own, refreshed by the Backend.
func leaseURL(t *testing.T) (url, store string) {
	store = "t-" + testutil.Unique()
	return fmt.Sprintf("mem://%s?ttl=3s&lock_ttl=%v", store, lockTTL), store
}

// waitLossAndRetake waits for the loss of part by p to be reported with
// a cause matching want, then for p to take it again, and returns both
// delays from t0.
func waitLossAndRetake(t *testing.T, rec *recorder, p *partitioner.Partitioner, part int, t0 time.Time, want error) (time.Duration, time.Duration) {
	t.Helper()
	var lost stamped
	testutil.Eventually(t, 30*time.Second, "the loss is reported", func() bool {
		var ok bool
		lost, ok = rec.find(t0, part, false)
		return ok
	})
	if !errors.Is(lost.r.Causes[part], want) || !errors.Is(lost.r.Causes[part], backend.ErrLost) {
		t.Fatalf("cause of the loss = %v, want %v", lost.r.Causes[part], want)
	}
	if slices.Contains(lost.r.Owned, part) {
		t.Fatalf("the lost partition is still in Owned %v", lost.r.Owned)
	}
	var gained stamped
	testutil.Eventually(t, 30*time.Second, "the partition is taken again", func() bool {
		var ok bool
		gained, ok = rec.find(lost.at, part, true)
		return ok
	})
	if c := gained.r.Contexts[part]; c == nil || c.Err() != nil {
		t.Fatal("the retaken partition has no live context in the report")
	}
	if !p.OwnsPartition(part) || !slices.Contains(p.Owned(), part) {
		t.Fatal("the retaken partition is not owned")
	}
	return lost.at.Sub(t0), gained.at.Sub(t0)
}

// TestLostPartitionLockIsReportedAndRetaken deletes a partition's lock on
// the server: the holder notices at its next refresh (ErrNoLongerHeld),
// cancels the partition's context with that cause, reports it Lost, drops
// it from Owned and takes it again, being still assigned it, within one
// lock TTL of the loss.
func TestLostPartitionLockIsReportedAndRetaken(t *testing.T) {
	ctx := testutil.Context(t, 60*time.Second)
	url, _ := leaseURL(t)
	var rec recorder
	b := testutil.Open(t, url, "worker")
	p, err := partitioner.New(ctx, b, "loss", partitioner.WithPartitions(8), rec.option(),
		partitioner.WithRetryInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	testutil.Eventually(t, 10*time.Second, "owns every partition", func() bool { return len(p.Owned()) == 8 })
	pctx, _ := p.PartitionContext(3)
	token := p.PartitionToken(3)
	admin := testutil.Open(t, url, "admin")
	t0 := time.Now()
	if broke, err := admin.BreakLock(ctx, "baton.partition/loss/00003"); err != nil || !broke {
		t.Fatalf("break lock: %v %v", broke, err)
	}
	lostAfter, retakenAfter := waitLossAndRetake(t, &rec, p, 3, t0, backend.ErrNoLongerHeld)
	if !errors.Is(context.Cause(pctx), backend.ErrNoLongerHeld) {
		t.Fatalf("partition context cause = %v", context.Cause(pctx))
	}
	if p.PartitionToken(3) <= token {
		t.Fatalf("the retaken lock's token %d is not above the lost one's %d", p.PartitionToken(3), token)
	}
	// The lock is refreshed every third of its TTL: the loss is noticed
	// within that and the partition retaken at once (it was deleted).
	if retakenAfter-lostAfter > lockTTL {
		t.Errorf("retaken %v after the loss was reported, more than one lock TTL", retakenAfter-lostAfter)
	}
	t.Logf("lock deleted on the server: loss reported after %v, partition retaken after %v", lostAfter, retakenAfter)
}

// TestExpiredPartitionLockIsRetaken holds back every refresh of the
// holder's locks for two lock TTLs, as a paused process would send them:
// the partitions' leases expire
// (ErrExpired), are reported Lost and taken again once the store lets
// them go.
func TestExpiredPartitionLockIsRetaken(t *testing.T) {
	ctx := testutil.Context(t, 60*time.Second)
	url, store := leaseURL(t)
	var rec recorder
	b := testutil.Open(t, url, "worker")
	p, err := partitioner.New(ctx, b, "expire", partitioner.WithPartitions(4), rec.option(),
		partitioner.WithRetryInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	testutil.Eventually(t, 10*time.Second, "owns every partition", func() bool { return len(p.Owned()) == 4 })
	t0 := time.Now()
	if err := membackend.DelayNext(store, "worker", membackend.OpRefresh, 1<<20, 2*lockTTL); err != nil {
		t.Fatal(err)
	}
	lostAfter, retakenAfter := waitLossAndRetake(t, &rec, p, 0, t0, backend.ErrExpired)
	t.Logf("lock refreshes held back: loss reported after %v, partition retaken after %v", lostAfter, retakenAfter)
}

// TestLifecycle: Done and Err for Close, the context given to New, the
// Backend's Close and the loss of its session; the partitions are
// reported Lost and their contexts cancelled each time.
func TestLifecycle(t *testing.T) {
	start := func(t *testing.T, ctx context.Context, b *backend.Backend, rec *recorder) *partitioner.Partitioner {
		p, err := partitioner.New(ctx, b, "life", partitioner.WithPartitions(4), rec.option())
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "owns every partition", func() bool { return len(p.Owned()) == 4 })
		return p
	}
	stopped := func(t *testing.T, p *partitioner.Partitioner, rec *recorder, want error) {
		t.Helper()
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("Done never closed")
		}
		if !errors.Is(p.Err(), want) {
			t.Fatalf("Err = %v, want %v", p.Err(), want)
		}
		if len(p.Owned()) != 0 {
			t.Fatalf("still owns %v", p.Owned())
		}
		for part := range 4 {
			if _, ok := rec.find(time.Time{}, part, false); !ok {
				t.Fatalf("partition %d never reported lost", part)
			}
		}
	}
	t.Run("close", func(t *testing.T) {
		var rec recorder
		p := start(t, testutil.Context(t, 30*time.Second), testutil.Open(t, testutil.MemURL(t), "m"), &rec)
		if p.Err() != nil {
			t.Fatalf("Err while running = %v", p.Err())
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		stopped(t, p, &rec, partitioner.ErrStopped)
		if err := p.Close(context.Background()); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		var rec recorder
		ctx, cancel := context.WithCancel(testutil.Context(t, 30*time.Second))
		p := start(t, ctx, testutil.Open(t, testutil.MemURL(t), "m"), &rec)
		pctx, _ := p.PartitionContext(0)
		cancel()
		stopped(t, p, &rec, context.Canceled)
		if pctx.Err() == nil {
			t.Fatal("partition context not cancelled")
		}
		_ = p.Close(context.Background())
	})
	t.Run("backend closed", func(t *testing.T) {
		var rec recorder
		b := testutil.Open(t, testutil.MemURL(t), "m")
		p := start(t, testutil.Context(t, 30*time.Second), b, &rec)
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		stopped(t, p, &rec, backend.ErrClosed)
		_ = p.Close(context.Background())
	})
	t.Run("session lost", func(t *testing.T) {
		var rec recorder
		url := testutil.MemURL(t)
		b := testutil.Open(t, url, "m")
		p := start(t, testutil.Context(t, 30*time.Second), b, &rec)
		store, _ := membackend.StoreName(b)
		if err := membackend.ExpireSession(store, "m"); err != nil {
			t.Fatal(err)
		}
		stopped(t, p, &rec, backend.ErrSessionLost)
		_ = p.Close(context.Background())
	})
}

// TestNoCallbackInsideNew: a callback that blocks until New has returned
// would deadlock New if New ran it; each report carries the gained
// partitions' contexts.
func TestNoCallbackInsideNew(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	returned := make(chan struct{})
	got := make(chan partitioner.Rebalance, 16)
	p, err := partitioner.New(ctx, testutil.Open(t, testutil.MemURL(t), "m"), "g", partitioner.WithPartitions(4),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			<-returned
			got <- r
		}))
	close(returned)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	r := <-got
	if len(r.Gained) != 4 || len(r.Contexts) != 4 {
		t.Fatalf("first report %+v", r)
	}
	for _, part := range r.Gained {
		if r.Contexts[part] == nil || r.Contexts[part].Err() != nil {
			t.Fatalf("partition %d has no live context", part)
		}
	}
}

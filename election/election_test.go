package election_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/election"
	"github.com/baton-go/baton/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tracker records the work periods of every runner and fails on overlap.
type tracker struct {
	active  atomic.Int32
	maxSeen atomic.Int32
	mu      sync.Mutex
	starts  map[string]time.Time
	ends    map[string]time.Time
	leaders []string
	// live holds every term's context; a term that starts while an
	// earlier term's context is not yet done is a violation. Context
	// cancellation is synchronous, so this is an exact happens-before
	// check, free of clock and scheduling noise.
	live       map[string]context.Context
	violations []string
}

func newTracker() *tracker {
	return &tracker{starts: map[string]time.Time{}, ends: map[string]time.Time{}, live: map[string]context.Context{}}
}

func (tr *tracker) work(me string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n := tr.active.Add(1)
		for m := tr.maxSeen.Load(); n > m && !tr.maxSeen.CompareAndSwap(m, n); m = tr.maxSeen.Load() {
		}
		tr.mu.Lock()
		for other, octx := range tr.live {
			if other != me && octx.Err() == nil {
				tr.violations = append(tr.violations, fmt.Sprintf("%s started while %s's term was live", me, other))
			}
		}
		tr.live[me] = ctx
		tr.starts[me] = time.Now()
		tr.leaders = append(tr.leaders, me)
		tr.mu.Unlock()
		<-ctx.Done()
		tr.mu.Lock()
		tr.ends[me] = time.Now()
		tr.mu.Unlock()
		tr.active.Add(-1)
		return nil
	}
}

func (tr *tracker) leader() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.active.Load() == 0 || len(tr.leaders) == 0 {
		return ""
	}
	return tr.leaders[len(tr.leaders)-1]
}

func (tr *tracker) terms() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.leaders)
}

func TestRunSingleLeaderAndGracefulTakeover(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		tr := newTracker()
		ctx := testutil.Context(t, 20*time.Second)
		cancels := map[string]context.CancelFunc{}
		results := map[string]chan error{}
		for i := range 3 {
			me := fmt.Sprintf("m%d", i)
			b := testutil.Open(t, url, me)
			rctx, cancel := context.WithCancel(ctx)
			cancels[me] = cancel
			res := make(chan error, 1)
			results[me] = res
			go func() {
				res <- election.Run(rctx, b, "singleton", tr.work(me), election.WithMaxPollInterval(10*time.Millisecond))
			}()
		}
		testutil.Eventually(t, 10*time.Second, "a leader runs", func() bool { return tr.leader() != "" })
		first := tr.leader()
		cancels[first]()
		if err := <-results[first]; err != nil {
			t.Fatalf("Run of the resigned leader = %v; want nil for a clean shutdown", err)
		}
		testutil.Eventually(t, 10*time.Second, "a successor runs", func() bool {
			l := tr.leader()
			return l != "" && l != first
		})
		tr.mu.Lock()
		second := tr.leaders[len(tr.leaders)-1]
		gap := tr.starts[second].Sub(tr.ends[first])
		tr.mu.Unlock()
		if gap < 0 {
			t.Fatalf("successor started %v before the predecessor stopped", -gap)
		}
		t.Logf("graceful takeover gap: %v", gap)
		for me, c := range cancels {
			c()
			if me != first {
				<-results[me]
			}
		}
		tr.check(t, true)
	})
}

func TestRunLosesLeadershipOnSessionExpiry(t *testing.T) {
	url := testutil.MemURL(t)
	tr := newTracker()
	ctx, cancel := context.WithCancel(testutil.Context(t, 20*time.Second))
	var wg sync.WaitGroup
	var demotedMu sync.Mutex
	var demoted error
	runs := map[string]*backend.Backend{}
	errs := make(chan error, 2)
	for _, me := range []string{"a", "b"} {
		b := testutil.Open(t, url, me)
		runs[me] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- election.Run(ctx, b, "expiry", tr.work(me),
				election.OnDemoted(func(cause error) {
					demotedMu.Lock()
					demoted = cause
					demotedMu.Unlock()
				}),
				election.WithMaxPollInterval(10*time.Millisecond))
		}()
	}
	testutil.Eventually(t, 10*time.Second, "a leader runs", func() bool { return tr.leader() != "" })
	first := tr.leader()
	faultAt := time.Now()
	store, _ := membackend.StoreName(runs[first])
	// As on a real session backend, the client loses its connection first
	// (and must put its grants in doubt), then the server expires the
	// session and hands leadership over.
	if err := membackend.SetUnreachable(store, first, true); err != nil {
		t.Fatal(err)
	}
	if err := membackend.ExpireSession(store, first); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the other member leads", func() bool {
		l := tr.leader()
		return l != "" && l != first
	})
	if err := <-errs; !errors.Is(err, backend.ErrLost) {
		t.Fatalf("Run of the expired leader = %v; want ErrLost", err)
	}
	demotedMu.Lock()
	cause := demoted
	demotedMu.Unlock()
	if !errors.Is(cause, backend.ErrLost) {
		t.Fatalf("demoted cause = %v", cause)
	}
	tr.mu.Lock()
	second := tr.leaders[len(tr.leaders)-1]
	takeover := tr.starts[second].Sub(faultAt)
	tr.mu.Unlock()
	t.Logf("takeover after the leader's session was cut and expired: %v", takeover)
	cancel()
	wg.Wait()
	tr.check(t, false)
}

// check fails on any term that started while an earlier one's context
// was live; with workReturned it also requires that no work function was
// still running when the next started (what a graceful resignation
// guarantees: Run waits for the work before resigning).
func (tr *tracker) check(t *testing.T, workReturned bool) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.violations) > 0 {
		t.Fatalf("%d violations; first: %s", len(tr.violations), tr.violations[0])
	}
	if workReturned && tr.maxSeen.Load() != 1 {
		t.Fatalf("%d leaders worked at once", tr.maxSeen.Load())
	}
}

func TestCampaignResignObserve(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 20*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		e1, err := election.New(b1, "g")
		if err != nil {
			t.Fatal(err)
		}
		e2, _ := election.New(b2, "g", election.WithMaxPollInterval(10*time.Millisecond))
		if lc, err := e1.Leader(ctx); err != nil || lc.Held {
			t.Fatalf("Leader before any campaign = %+v, %v", lc, err)
		}
		obs, err := e2.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer obs.Close()
		if c := <-obs.Changes(); c.Held {
			t.Fatalf("first observation = %+v; want no leader", c)
		}
		term, err := e1.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitFor := func(want string) election.LeaderChange {
			t.Helper()
			for {
				select {
				case c, ok := <-obs.Changes():
					if !ok {
						t.Fatalf("observation ended: %v", obs.Err())
					}
					if (want == "" && !c.Held) || (c.Held && c.Leader == want) {
						return c
					}
				case <-ctx.Done():
					t.Fatalf("never observed leader %q", want)
				}
			}
		}
		if c := waitFor("m1"); c.Token != term.Token {
			t.Fatalf("observed token %d, term token %d", c.Token, term.Token)
		}
		if !e1.IsLeader() || e1.Token() != term.Token {
			t.Fatal("IsLeader/Token wrong")
		}
		if _, ok, _ := e2.TryCampaign(ctx); ok {
			t.Fatal("second candidate elected while the first leads")
		}
		won := make(chan election.Term, 1)
		go func() {
			t2, err := e2.Campaign(ctx)
			if err != nil {
				t.Error(err)
			}
			won <- t2
		}()
		if err := e1.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		if term.Context.Err() == nil {
			t.Fatal("resigned term's context still live")
		}
		if err := e1.Resign(ctx); !errors.Is(err, election.ErrNotLeader) {
			t.Fatalf("second Resign = %v", err)
		}
		t2 := <-won
		if t2.Token <= term.Token {
			t.Fatalf("term tokens not increasing: %d then %d", term.Token, t2.Token)
		}
		waitFor("m2")
		if err := e2.Resign(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor("")
	})
}

func TestOptionsValidated(t *testing.T) {
	b := testutil.Open(t, testutil.MemURL(t), "m")
	if _, err := election.New(b, "g", election.WithTTL(time.Second), election.WithSafetyMargin(2*time.Second)); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("margin >= TTL accepted: %v", err)
	}
	if _, err := election.New(b, ""); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("empty group accepted: %v", err)
	}
	err := election.Run(context.Background(), b, "g", func(context.Context) error { return nil }, election.WithRetryDelay(-1))
	if !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("Run with a bad option = %v", err)
	}
}

func TestRunReturnsWorkError(t *testing.T) {
	ctx := testutil.Context(t, 10*time.Second)
	b := testutil.Open(t, testutil.MemURL(t), "m")
	boom := errors.New("boom")
	var elected atomic.Bool
	err := election.Run(ctx, b, "g", func(context.Context) error { return boom },
		election.OnElected(func(election.Term) { elected.Store(true) }))
	if !errors.Is(err, boom) || !elected.Load() {
		t.Fatalf("Run = %v, elected %v", err, elected.Load())
	}
	e, _ := election.New(b, "g")
	if lc, err := e.Leader(ctx); err != nil || lc.Held {
		t.Fatalf("leader after Run returned: %+v %v (Run must resign)", lc, err)
	}
}

// An observation ends with its owner even when nobody reads it: when its
// ctx is cancelled and when its Backend closes. Done then closes, and
// goleak (TestMain) finds no goroutine left.
func TestObservationEndsWithOwner(t *testing.T) {
	ctx := testutil.Context(t, 20*time.Second)
	url := testutil.MemURL(t)
	b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
	e1, _ := election.New(b1, "obs")
	e2, _ := election.New(b2, "obs")
	wait := func(o *election.Observation, why string) {
		t.Helper()
		select {
		case <-o.Done():
		case <-ctx.Done():
			t.Fatalf("observation did not end when %s", why)
		}
	}
	octx, cancel := context.WithCancel(ctx)
	o1, err := e1.Observe(octx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Campaign(ctx); err != nil { // a change nobody reads
		t.Fatal(err)
	}
	cancel()
	wait(o1, "its ctx was cancelled")
	o2, err := e1.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait(o2, "its Backend closed")
	if !errors.Is(o2.Err(), backend.ErrClosed) {
		t.Fatalf("Err after Backend.Close = %v", o2.Err())
	}
}

package memcachedbackend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// The fault tests act on the servers of scripts/servers.sh (restart, a
// small-memory server) and on helper processes, and wait for real
// timeouts, so they take seconds each.

// waitLost waits until g is cancelled with a cause matching ErrLost.
func waitLost(t *testing.T, ctx context.Context, what string, g *backend.Grant) {
	t.Helper()
	select {
	case <-g.Context().Done():
		if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
			t.Fatalf("%s: cause %v; want ErrLost", what, context.Cause(g.Context()))
		}
	case <-ctx.Done():
		t.Fatalf("%s: a grant the server lost was kept", what)
	}
}

// TestServerRestartEmptyLosesEveryGrant restarts memcached (it comes back
// empty) under a held lock, a leadership and a membership: every grant is
// lost with a cause, the session too, and the tokens handed out after the
// restart are larger than before (the counter's floor).
func TestServerRestartEmptyLosesEveryGrant(t *testing.T) {
	u := freshURL(t, serverURL(t), "membership_timeout=3", "lock_timeout=3", "leader_timeout=3")
	a := openBackend(t, u, "a")
	ctx := testCtx(t)
	acquired := time.Now()
	lock, err := a.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lead, err := a.Campaign(ctx, "g", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	servers(t, "restart", "memcached")
	waitLost(t, ctx, "lock", lock)
	waitLost(t, ctx, "leadership", lead)
	select {
	case <-a.Done():
		if !errors.Is(a.Err(), backend.ErrLost) {
			t.Fatalf("a.Err() = %v; want ErrLost", a.Err())
		}
	case <-ctx.Done():
		t.Fatal("a session whose key the restart lost was kept")
	}
	t.Logf("restart: lock, leadership and session reported lost %v after the restart began", time.Since(start).Round(time.Millisecond))
	// The counters' floor is the server's clock, which has a resolution of
	// one second: tokens go on increasing when the counter is re-created
	// two seconds or more after it was created (doc.go).
	if d := 2*time.Second - time.Since(acquired); d > 0 {
		time.Sleep(d)
	}
	b := openBackend(t, u, "b")
	g, ok, err := b.TryLock(ctx, "job", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock after restart: %v %v", ok, err)
	}
	if g.Token() <= lock.Token() {
		t.Fatalf("token after the restart %d; want more than %d", g.Token(), lock.Token())
	}
	l, ok, err := b.TryCampaign(ctx, "g", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("campaign after restart: %v %v", ok, err)
	}
	if l.Token() <= lead.Token() {
		t.Fatalf("term token after the restart %d; want more than %d", l.Token(), lead.Token())
	}
	if _, err := b.Members(ctx, "g"); !errors.Is(err, backend.ErrGroupNotFound) {
		t.Fatalf("members of a group the restart lost: %v; want ErrGroupNotFound", err)
	}
}

// TestEvictionReported fills a 2 MB memcached with junk while a member
// holds locks and a membership: whatever memcached evicts is reported
// (the grant lost with a cause, the group not found), and no grant is
// believed held whose key is not the grant's.
func TestEvictionReported(t *testing.T) {
	base := envURL(t, "BATON_TEST_MEMCACHED_SMALL_URL")
	// Long lock leases: the lock keys stay idle (not refreshed) while the
	// junk pushes them down memcached's LRU; the liveness key is touched
	// every second, which keeps it at the head of the LRU.
	u := freshURL(t, base, "membership_timeout=3", "lock_timeout=45")
	a := openBackend(t, u, "a")
	// The locks are refreshed every 15 s: up to that long after the
	// flood before a loss is seen.
	ctx, cancel := context.WithTimeout(context.Background(), 5*wait)
	defer cancel()
	const n = 40
	grants := make([]*backend.Grant, n)
	for i := range grants {
		g, err := a.Lock(ctx, "lock-"+strconv.Itoa(i), backend.LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		grants[i] = g
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	s := settingsOf(t, a.Config())
	mc := rawClient(s)
	defer mc.Close()
	before := evictions(t, s)
	// memcached gives every slab class a page whatever -m says: junk of
	// the sizes of our keys, several times what those classes hold, from
	// 8 writers.
	var wg sync.WaitGroup
	prefix := "junk-" + unique()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				v := make([]byte, 1+rand.IntN(160))
				_ = mc.Set(&memcache.Item{Key: fmt.Sprintf("%s-%d-%d", prefix, w, i), Value: v, Expiration: 60})
			}
		}()
	}
	wg.Wait()
	evicted := evictions(t, s) - before
	if evicted == 0 {
		t.Fatal("memcached evicted nothing: the test did not test")
	}
	// Every grant is eventually either lost with a cause or still the
	// holder of its lock.
	flooded := time.Now()
	lost := 0
	eventually(t, 3*wait, "every grant lost or truly held", func() bool {
		lost = 0
		for i, g := range grants {
			if g.Context().Err() != nil {
				cause := context.Cause(g.Context())
				if !errors.Is(cause, backend.ErrLost) {
					t.Fatalf("grant %d: cause %v; want ErrLost", i, cause)
				}
				if a.Err() == nil && !errors.Is(cause, errEvicted) {
					t.Fatalf("grant %d: cause %v; want it to say the key is gone", i, cause)
				}
				lost++
				continue
			}
			h, held, err := a.LockHolder(ctx, "lock-"+strconv.Itoa(i))
			if err != nil && !errors.Is(err, backend.ErrLost) {
				return false
			}
			if !held || h.Member != "a" || h.Token != g.Token() {
				return false
			}
		}
		return true
	})
	settled := time.Since(flooded)
	_, merr := a.Members(ctx, "g")
	t.Logf("eviction: %d items evicted, %d of %d lock grants reported lost (all settled %v after the flood; refresh every %v), session lost: %v, group: %v",
		evicted, lost, n, settled.Round(time.Millisecond), 15*time.Second, a.Err() != nil, merr)
	if lost == 0 && a.Err() == nil {
		t.Log("no key of the test was evicted this time")
	}
	if merr != nil && !errors.Is(merr, backend.ErrGroupNotFound) && !errors.Is(merr, backend.ErrLost) {
		t.Fatalf("members: %v; want the group listed or ErrGroupNotFound", merr)
	}
}

// evictions sums the "evictions" statistic of the servers of s.
func evictions(t testing.TB, s *settings) int64 {
	t.Helper()
	p := newMetaPool(wait, 1)
	defer p.close()
	var sum int64
	for _, addr := range s.servers {
		mc, _, err := p.get(testCtx(t), addr)
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.stats(testCtx(t), mc)
		p.put(addr, mc, err == nil)
		if err != nil {
			t.Fatal(err)
		}
		sum += st["evictions"]
	}
	return sum
}

// TestHelperHolder is the body of a holder process (it does nothing in a
// normal run): it takes the lock "job", reports its token and waits.
func TestHelperHolder(t *testing.T) {
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
	g, err := b.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	em.Emit(testutil.Event{Kind: "held", Token: g.Token()})
	<-ctx.Done()
}

// TestKillHolderFreesAfterTTL kills -9 a process holding a lock: another
// member gets it once the lock's key expires (lock_timeout plus at most
// memcached's one-second tick), never before, with a larger token.
func TestKillHolderFreesAfterTTL(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	const ttl = 2 * time.Second
	u := freshURL(t, serverURL(t), "membership_timeout=3", "lock_timeout=2")
	events := make(chan testutil.Event, 8)
	child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{"BATON_TEST_URL=" + u}, events)
	var held testutil.Event
	select {
	case held = <-events:
	case <-time.After(wait):
		t.Fatal("the holder process did not take the lock")
	}
	b := openBackend(t, u, "b")
	ctx := testCtx(t)
	if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("TryLock while the holder lives: %v %v; want refused", ok, err)
	}
	killed := child.Kill()
	g, err := b.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Since(killed)
	t.Logf("kill -9: lock free %v after the kill (lock_timeout %v)", after.Round(time.Millisecond), ttl)
	if after > ttl+2*time.Second {
		t.Fatalf("the lock was free only %v after the kill; want within lock_timeout plus memcached's tick", after)
	}
	if g.Token() <= held.Token {
		t.Fatalf("token %d after the kill; want more than the dead holder's %d", g.Token(), held.Token)
	}
}

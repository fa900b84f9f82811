package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// manualClock is a driver.Clock that moves only when the test advances
// it: the waiters' handover, refresh and holder-expiry timers fire then
// and only then.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	clk     *manualClock
	at      time.Time
	ch      chan time.Time
	pending bool
}

func newManualClock() *manualClock { return &manualClock{now: time.Unix(1_000_000, 0)} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) NewTimer(d time.Duration) driver.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{clk: c, at: c.now.Add(d), ch: make(chan time.Time, 1), pending: true}
	if d <= 0 {
		t.pending = false
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock by d, firing the timers that come due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	left := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case !t.pending:
		case !t.at.After(c.now):
			t.pending = false
			t.ch <- c.now
		default:
			left = append(left, t)
		}
	}
	c.timers = left
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := t.pending
	t.pending = false
	return was
}

// openClockConn opens a driver connection as member with clk as its
// clock, closed at the end of the test.
func openClockConn(t testing.TB, u, member string, clk driver.Clock) *conn {
	t.Helper()
	c, _ := testutil.OpenClockConn(t, u, member, wait, open, clk)
	return c.(*conn)
}

// scriptCalls counts the scripts the server ran (EVALSHA and EVAL calls,
// INFO commandstats): the acquire attempts, releases and refreshes of
// every client.
func scriptCalls(t testing.TB, rdb redis.UniversalClient) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		c, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("commandstats %q: %v", line, err)
		}
		n += c
	}
	return n
}

type waitResult struct {
	who   int
	lease driver.Lease
	err   error
}

// startWait runs c.WaitLock(req) in a goroutine that reports to out as
// who; the test's end waits for it.
func startWait(t *testing.T, ctx context.Context, c *conn, req driver.LockRequest, who int, out chan<- waitResult) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lease, err := c.WaitLock(ctx, req)
		out <- waitResult{who: who, lease: lease, err: err}
	}()
	t.Cleanup(wg.Wait)
}

func nextGrant(t *testing.T, ctx context.Context, got <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("waiter %d: %v", r.who, r.err)
		}
		return r
	case <-ctx.Done():
		t.Fatal("no waiter acquired the lock")
		return waitResult{}
	}
}

// Waiters queue in arrival order, and each release wakes one of them: the
// waiter it names runs the acquire script, the others do nothing. Their
// clock is frozen, so no handover window or lease runs out: only the
// releases can make them try. Before queues every release (and every
// acquire) woke every waiter, each running the acquire script, and the
// lock went to whichever came first.
func TestLockReleaseWakesOneWaiterInOrder(t *testing.T) {
	const n = 6
	u := freshURL(t, plainURL(t))
	ctx := testCtx(t)
	holder := openConn(t, u, "holder")
	rdb, ks := rawURLClient(t, u)
	defer rdb.Close()
	req := func(member string) driver.LockRequest {
		return driver.LockRequest{Key: "l/job", Member: member, TTL: time.Minute}
	}
	// Load the scripts, so that no EVAL after a NOSCRIPT counts twice.
	warm := driver.LockRequest{Key: "l/warm", Member: "holder", TTL: time.Minute}
	if l, err := holder.WaitLock(ctx, warm); err != nil {
		t.Fatal(err)
	} else if err := holder.Unlock(ctx, warm.Key, l.Token); err != nil {
		t.Fatal(err)
	}
	first, ok, err := holder.TryLock(ctx, req("holder"))
	if err != nil || !ok {
		t.Fatalf("holder: %v %v", ok, err)
	}
	clk := newManualClock()
	got := make(chan waitResult, n)
	waiters := make([]*conn, n)
	for i := range n {
		waiters[i] = openClockConn(t, u, fmt.Sprint("w", i), clk)
		before := scriptCalls(t, rdb)
		startWait(t, ctx, waiters[i], req(fmt.Sprint("w", i)), i, got)
		// Each new waiter tries twice: at once, and when its
		// subscription is confirmed. Then it waits.
		eventually(t, wait, fmt.Sprintf("waiter %d tried twice", i), func() bool { return scriptCalls(t, rdb)-before >= 2 })
	}
	if q, err := rdb.ZCard(ctx, ks.queue("l/job")).Result(); err != nil || q != n {
		t.Errorf("queue of %d entries (%v); want %d", q, err, n)
	}

	before := scriptCalls(t, rdb)
	if err := holder.Unlock(ctx, "l/job", first.Token); err != nil {
		t.Fatal(err)
	}
	var order []int
	last := first.Token
	for range n {
		r := nextGrant(t, ctx, got)
		if r.lease.Token <= last {
			t.Fatalf("waiter %d: token %d after %d", r.who, r.lease.Token, last)
		}
		last = r.lease.Token
		order = append(order, r.who)
		if err := waiters[r.who].Unlock(ctx, "l/job", r.lease.Token); err != nil {
			t.Fatal(err)
		}
	}
	// n+1 releases, n grants.
	attempts := scriptCalls(t, rdb) - before - (n + 1)
	for i, w := range order {
		if w != i {
			t.Errorf("grants went to waiters %v; want their arrival order", order)
			break
		}
	}
	if attempts != n {
		t.Errorf("%d acquire attempts for %d handoffs; want one per handoff", attempts, n)
	}
	if q, err := rdb.Exists(ctx, ks.queue("l/job"), ks.expiries("l/job")).Result(); err != nil || q != 0 {
		t.Errorf("%d queue keys left (%v); want none", q, err)
	}
}

// The queue skips a waiter that died: an entry whose lease ran out is
// removed by the release, which names the live waiter behind it; an entry
// still within its lease (its waiter died after its last refresh) is
// named, and the live waiter tries once the handover window passed
// without an acquire, long before the holder's or the entry's lease.
func TestLockQueueSkipsDeadWaiter(t *testing.T) {
	tests := []struct {
		name     string
		giveLife time.Duration // the dead entry's lease left
	}{
		{name: "expired", giveLife: -time.Second},
		{name: "within its lease", giveLife: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := freshURL(t, plainURL(t))
			ctx := testCtx(t)
			holder := openConn(t, u, "holder")
			rdb, ks := rawURLClient(t, u)
			defer rdb.Close()
			req := driver.LockRequest{Key: "l/job", Member: "live", TTL: time.Minute}
			first, ok, err := holder.TryLock(ctx, driver.LockRequest{Key: "l/job", Member: "holder", TTL: time.Minute})
			if err != nil || !ok {
				t.Fatalf("holder: %v %v", ok, err)
			}
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			// The dead waiter arrived first and never refreshes.
			if err := rdb.ZAdd(ctx, ks.queue("l/job"), redis.Z{Score: 1, Member: "dead"}).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ZAdd(ctx, ks.expiries("l/job"), redis.Z{Score: float64(now.Add(tt.giveLife).UnixMilli()), Member: "dead"}).Err(); err != nil {
				t.Fatal(err)
			}
			clk := newManualClock()
			live := openClockConn(t, u, "live", clk)
			got := make(chan waitResult, 1)
			before := scriptCalls(t, rdb)
			startWait(t, ctx, live, req, 0, got)
			eventually(t, wait, "the live waiter tried twice", func() bool { return scriptCalls(t, rdb)-before >= 2 })
			if err := holder.Unlock(ctx, "l/job", first.Token); err != nil {
				t.Fatal(err)
			}
			var advanced time.Duration
			var r waitResult
		loop:
			for {
				select {
				case r = <-got:
					break loop
				case <-ctx.Done():
					t.Fatalf("the live waiter never acquired (clock advanced %v)", advanced)
				case <-time.After(5 * time.Millisecond):
					if tt.giveLife > 0 {
						// Only its handover window can end the wait.
						clk.Advance(10 * time.Millisecond)
						advanced += 10 * time.Millisecond
					}
				}
			}
			if r.err != nil || r.lease.Token <= first.Token {
				t.Fatalf("live waiter: %+v", r)
			}
			if advanced >= req.TTL/3 {
				t.Errorf("acquired %v after the release on the waiters' clock: waited for a lease, not the handover window", advanced)
			}
			if _, err := rdb.ZScore(ctx, ks.queue("l/job"), "dead").Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("the dead entry is still queued (%v)", err)
			}
			_ = live.Unlock(ctx, "l/job", r.lease.Token)
		})
	}
}

// A waiter that gives up (its context ends) leaves the queue: the next
// release names the waiter behind it, which acquires at once (its clock
// is frozen: it cannot have waited out a handover window).
func TestLockQueueWithdrawnWaiter(t *testing.T) {
	u := freshURL(t, plainURL(t))
	ctx := testCtx(t)
	holder := openConn(t, u, "holder")
	rdb, ks := rawURLClient(t, u)
	defer rdb.Close()
	first, ok, err := holder.TryLock(ctx, driver.LockRequest{Key: "l/job", Member: "holder", TTL: time.Minute})
	if err != nil || !ok {
		t.Fatalf("holder: %v %v", ok, err)
	}
	clk := newManualClock()
	quitter, stayer := openClockConn(t, u, "quitter", clk), openClockConn(t, u, "stayer", clk)
	qctx, quit := context.WithCancel(ctx)
	defer quit()
	got := make(chan waitResult, 2)
	for i, c := range []*conn{quitter, stayer} {
		wctx := ctx
		if i == 0 {
			wctx = qctx
		}
		startWait(t, wctx, c, driver.LockRequest{Key: "l/job", Member: c.member, TTL: time.Minute}, i, got)
		eventually(t, wait, "waiter queued", func() bool {
			n, err := rdb.ZCard(ctx, ks.queue("l/job")).Result()
			return err == nil && n == int64(i+1)
		})
	}
	quit()
	if r := <-got; r.who != 0 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled wait: %+v", r)
	}
	eventually(t, wait, "the cancelled waiter's entry removed", func() bool {
		n, err := rdb.ZCard(ctx, ks.queue("l/job")).Result()
		return err == nil && n == 1
	})
	if err := holder.Unlock(ctx, "l/job", first.Token); err != nil {
		t.Fatal(err)
	}
	if r := nextGrant(t, ctx, got); r.who != 1 {
		t.Fatalf("grant to %d", r.who)
	} else {
		_ = stayer.Unlock(ctx, "l/job", r.lease.Token)
	}
}

// heldJob is lock "l/job" taken by member "holder" in a fresh namespace:
// the namespace's URL, a test context, the holder's connection and grant,
// and a raw client of the server (closed at the end of the test) with the
// namespace's key space.
type heldJob struct {
	u      string
	ctx    context.Context
	holder *conn
	first  driver.Lease
	rdb    redis.UniversalClient
	ks     keyspace
}

func newHeldJob(t *testing.T) heldJob {
	t.Helper()
	j := heldJob{u: freshURL(t, plainURL(t)), ctx: testCtx(t)}
	j.holder = openConn(t, j.u, "holder")
	j.rdb, j.ks = rawURLClient(t, j.u)
	t.Cleanup(func() { _ = j.rdb.Close() })
	var ok bool
	var err error
	j.first, ok, err = j.holder.TryLock(j.ctx, driver.LockRequest{Key: "l/job", Member: "holder", TTL: time.Minute})
	if err != nil || !ok {
		t.Fatalf("holder: %v %v", ok, err)
	}
	return j
}

// Mixed versions. A release by a client before queues publishes "R",
// naming nobody: every queued waiter tries (their clock is frozen, so
// nothing else can wake them). A waiter before queues tries on any
// message of the channel (waitRace is its loop, unchanged), so a release
// naming another waiter wakes it too.
func TestLockQueueMixedVersions(t *testing.T) {
	t.Run("old release, new waiter", func(t *testing.T) {
		j := newHeldJob(t)
		u, ctx, first, rdb, ks := j.u, j.ctx, j.first, j.rdb, j.ks
		w := openClockConn(t, u, "new", newManualClock())
		got := make(chan waitResult, 1)
		before := scriptCalls(t, rdb)
		startWait(t, ctx, w, driver.LockRequest{Key: "l/job", Member: "new", TTL: time.Minute}, 0, got)
		eventually(t, wait, "the waiter tried twice", func() bool { return scriptCalls(t, rdb)-before >= 2 })
		// The release script of a client before queues.
		old := redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'R')
  return 1
end
return 0`)
		if n, err := old.Run(ctx, rdb, []string{ks.lock("l/job")}, tokenPrefix(first.Token), ks.lockChannel("l/job")).Int(); err != nil || n != 1 {
			t.Fatalf("old release: %v %v", n, err)
		}
		r := nextGrant(t, ctx, got)
		_ = w.Unlock(ctx, "l/job", r.lease.Token)
	})
	t.Run("new release, old waiter", func(t *testing.T) {
		j := newHeldJob(t)
		u, ctx, holder, first, rdb, ks := j.u, j.ctx, j.holder, j.first, j.rdb, j.ks
		// A queued waiter (that died) for the release to name.
		now, _ := rdb.Time(ctx).Result()
		rdb.ZAdd(ctx, ks.queue("l/job"), redis.Z{Score: 1, Member: "other"})
		rdb.ZAdd(ctx, ks.expiries("l/job"), redis.Z{Score: float64(now.Add(time.Minute).UnixMilli()), Member: "other"})
		w := openConn(t, u, "old")
		got := make(chan waitResult, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := w.waitRace(ctx, driver.LockRequest{Key: "l/job", Member: "old", TTL: time.Minute})
			got <- waitResult{lease: lease, err: err}
		}()
		defer wg.Wait()
		waitSubscribedConn(t, rdb, ks.lockChannel("l/job"))
		start := time.Now()
		if err := holder.Unlock(ctx, "l/job", first.Token); err != nil {
			t.Fatal(err)
		}
		r := nextGrant(t, ctx, got)
		// The holder's lease was a minute: only the message can have
		// woken the old waiter this soon.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the old waiter acquired %v after the release", d)
		}
		_ = w.Unlock(ctx, "l/job", r.lease.Token)
	})
}

// waitSubscribedConn waits until someone listens to channel.
func waitSubscribedConn(t testing.TB, rdb redis.UniversalClient, channel string) {
	t.Helper()
	eventually(t, wait, "a subscriber on "+channel, func() bool {
		n, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && n[channel] > 0
	})
}

// A campaign does not queue: while it waits, the lock has no queue.
func TestCampaignDoesNotQueue(t *testing.T) {
	u := freshURL(t, plainURL(t))
	ctx := testCtx(t)
	holder := openConn(t, u, "holder")
	rdb, ks := rawURLClient(t, u)
	defer rdb.Close()
	key := "e/g"
	first, ok, err := holder.TryLock(ctx, driver.LockRequest{Key: key, Member: "holder", TTL: time.Minute, Unordered: true})
	if err != nil || !ok {
		t.Fatalf("holder: %v %v", ok, err)
	}
	c := openConn(t, u, "candidate")
	got := make(chan waitResult, 1)
	before := scriptCalls(t, rdb)
	startWait(t, ctx, c, driver.LockRequest{Key: key, Member: "candidate", TTL: time.Minute, Unordered: true}, 0, got)
	eventually(t, wait, "the candidate tried twice", func() bool { return scriptCalls(t, rdb)-before >= 2 })
	if n, err := rdb.Exists(ctx, ks.queue(key), ks.expiries(key)).Result(); err != nil || n != 0 {
		t.Fatalf("a waiting candidate left %d queue keys (%v)", n, err)
	}
	if err := holder.Unlock(ctx, key, first.Token); err != nil {
		t.Fatal(err)
	}
	r := nextGrant(t, ctx, got)
	_ = c.Unlock(ctx, key, r.lease.Token)
}

// TestHelperCandidate is the body of a candidate process of
// TestHandoverPastKilledCandidate (it does nothing in a normal run).
func TestHelperCandidate(t *testing.T) { testutil.CandidateHelper(t) }

// A leader resigns while one of the two candidates waiting for it was
// killed with SIGKILL (its liveness key still alive): the live one is
// elected at once. Candidates do not queue: the leadership's only record
// is the lock key.
func TestHandoverPastKilledCandidate(t *testing.T) {
	u := freshURL(t, plainURL(t), "membership_timeout=6")
	rdb, ks := rawURLClient(t, u)
	defer rdb.Close()
	testutil.HandoverPastKilledCandidate(t, u, func(ctx context.Context, group string) (int, error) {
		key := "e/" + group
		n, err := rdb.Exists(ctx, ks.lock(key)).Result()
		if err != nil {
			return 0, err
		}
		q, err := rdb.ZCard(ctx, ks.queue(key)).Result()
		return int(n + q), err
	}, wait)
}

func TestParseLockMessage(t *testing.T) {
	tests := []struct {
		give       string
		wantKind   byte
		wantWaiter string
		wantNamed  bool
	}{
		{give: "R", wantKind: 'R'},
		{give: "B", wantKind: 'B'},
		{give: "A", wantKind: 'A'},
		{give: "R>0123abcd", wantKind: 'R', wantWaiter: "0123abcd", wantNamed: true},
		{give: "B>ff", wantKind: 'B', wantWaiter: "ff", wantNamed: true},
		{give: "R>", wantKind: 'R', wantNamed: true},
		{give: ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			kind, waiter, named := parseLockMessage(tt.give)
			if kind != tt.wantKind || waiter != tt.wantWaiter || named != tt.wantNamed {
				t.Errorf("parseLockMessage(%q) = %q, %q, %v; want %q, %q, %v", tt.give, kind, waiter, named, tt.wantKind, tt.wantWaiter, tt.wantNamed)
			}
		})
	}
}

// rawURLClient opens a go-redis client on the server and namespace of u.
func rawURLClient(t testing.TB, u string) (redis.UniversalClient, keyspace) {
	t.Helper()
	cfg, err := backend.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return rawClient(t, cfg)
}

// A failed try waits a pause that doubles up to a second while the server
// keeps failing; a try that finds the lock held waits out the holder's
// lease (a second for a key without a TTL) and resets the pause; any
// other error ends the wait.
func TestNextTry(t *testing.T) {
	down := driver.Errorf(driver.CodeUnavailable, "down")
	pause := retryPause
	var got []time.Duration
	for range 9 {
		d, err := nextTry(down, 0, &pause)
		if err != nil {
			t.Fatalf("unavailable server: %v", err)
		}
		got = append(got, d)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
	if d, err := nextTry(nil, 250*time.Millisecond, &pause); err != nil || d != 251*time.Millisecond || pause != retryPause {
		t.Fatalf("held: wait %v, err %v, pause %v", d, err, pause)
	}
	if d, err := nextTry(nil, -1, &pause); err != nil || d != time.Second+time.Millisecond {
		t.Fatalf("held without a TTL: wait %v, err %v", d, err)
	}
	bad := driver.Errorf(driver.CodeInvalidArgument, "bad")
	if _, err := nextTry(bad, 0, &pause); !errors.Is(err, bad) {
		t.Fatalf("other error: %v", err)
	}
}

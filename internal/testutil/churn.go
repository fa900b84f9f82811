package testutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// The churn kit measures what a server fault does to a lock's
// availability: members take and release one lock in a loop while a
// fault is injected and repaired, and the kit reports the longest time
// nobody held the lock after each fault, the sessions lost and the tokens
// that did not grow. It knows nothing of the servers or the drivers: the
// caller opens the members and passes the fault and its repair as
// functions (usually scripts/servers.sh against a private cluster).

// ChurnOptions shape a Churn's loop; zero values take the defaults.
type ChurnOptions struct {
	Lock           string        // the lock's name (default "churn")
	LockTimeout    time.Duration // deadline of each Lock call (default 2 s)
	Hold           time.Duration // how long each grant is held (default 5 ms)
	ReleaseTimeout time.Duration // deadline of each Release (default 5 s)
	Quiet          bool          // do not log failed Lock and Release calls
}

// Churn is a set of members taking and releasing one lock in a loop.
type Churn struct {
	t       testing.TB
	opts    ChurnOptions
	members []*backend.Backend
	stop    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	grants []ChurnGrant
	errs   []string // the last churnErrs failed calls, quiet or not
}

// churnErrs is how many failed calls a Churn keeps for its failure report.
const churnErrs = 16

// ChurnGrant is one grant of a Churn: its token, when it was granted,
// when its holder asked to release it and when that release returned,
// and whether it was lost before its release (its context ended, or the
// release found it gone).
type ChurnGrant struct {
	Token                        uint64
	Granted, Releasing, Released time.Time
	LostBeforeRelease            bool
}

// StartChurn starts a loop on each member (already open; the caller
// closes them) and stops the loops when the test ends.
func StartChurn(t testing.TB, members []*backend.Backend, opts ChurnOptions) *Churn {
	t.Helper()
	if opts.Lock == "" {
		opts.Lock = "churn"
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.Hold == 0 {
		opts.Hold = 5 * time.Millisecond
	}
	if opts.ReleaseTimeout == 0 {
		opts.ReleaseTimeout = 5 * time.Second
	}
	c := &Churn{t: t, opts: opts, members: members, stop: make(chan struct{})}
	for _, m := range members {
		c.wg.Add(1)
		go c.loop(m)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Churn) loop(m *backend.Backend) {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-m.Done():
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.LockTimeout)
		g, err := m.Lock(ctx, c.opts.Lock, backend.LockOptions{})
		cancel()
		if err != nil {
			c.logf("%s lock: %v", m.MemberID(), err)
			continue
		}
		h := ChurnGrant{Token: g.Token(), Granted: time.Now()}
		time.Sleep(c.opts.Hold)
		lost := g.Context().Err() != nil
		h.Releasing = time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), c.opts.ReleaseTimeout)
		err = g.Release(ctx)
		cancel()
		h.Released = time.Now()
		if err != nil {
			c.logf("%s release: %v", m.MemberID(), err)
		}
		h.LostBeforeRelease = lost || errors.Is(err, backend.ErrNotHeld)
		c.mu.Lock()
		c.grants = append(c.grants, h)
		c.mu.Unlock()
	}
}

func (c *Churn) logf(format string, args ...any) {
	line := fmt.Sprintf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	c.mu.Lock()
	c.errs = append(c.errs, line)
	if len(c.errs) > churnErrs {
		c.errs = c.errs[len(c.errs)-churnErrs:]
	}
	c.mu.Unlock()
	if !c.opts.Quiet {
		c.t.Log(line)
	}
}

// Close stops the loops and waits for them (idempotent).
func (c *Churn) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// Count returns how many grants were released so far.
func (c *Churn) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.grants)
}

// Grants returns the grants released so far, in the order granted.
func (c *Churn) Grants() []ChurnGrant {
	c.mu.Lock()
	gs := append([]ChurnGrant(nil), c.grants...)
	c.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].Granted.Before(gs[j].Granted) })
	return gs
}

// Await waits for n more grants, or for every session to end when
// orAllEnded; it fails the test after d.
func (c *Churn) Await(n int, d time.Duration, what string, orAllEnded bool) {
	c.t.Helper()
	want := c.Count() + n
	if poll(d, func() bool { return c.Count() >= want || (orAllEnded && c.AllEnded()) }) {
		return
	}
	c.mu.Lock()
	errs := append([]string(nil), c.errs...)
	c.mu.Unlock()
	var ended []string
	for _, m := range c.members {
		if err := m.Err(); err != nil {
			ended = append(ended, fmt.Sprintf("%s: %v", m.MemberID(), err))
		}
	}
	c.t.Fatalf("condition not met within %v: %s (%d of %d grants; sessions ended: %d of %d %q; last failed calls: %q)",
		d, what, c.Count(), want, len(ended), len(c.members), ended, errs)
}

// IdleSince returns the longest time without a holder among the grants
// granted after from: the time between the previous holder's call to
// Release and the next grant. A release that hangs (the lock stays held
// on the server meanwhile) or fails (the lock stays held until its TTL)
// counts, as it keeps the lock from everyone else.
func (c *Churn) IdleSince(from time.Time) time.Duration {
	gs := c.Grants()
	var idle time.Duration
	for i := 1; i < len(gs); i++ {
		if gs[i].Granted.After(from) {
			idle = max(idle, gs[i].Granted.Sub(gs[i-1].Releasing))
		}
	}
	return idle
}

// SessionsLost counts the members whose session is gone.
func (c *Churn) SessionsLost() int {
	n := 0
	for _, m := range c.members {
		if m.Err() != nil {
			n++
		}
	}
	return n
}

// AllEnded reports whether every member's session ended.
func (c *Churn) AllEnded() bool { return c.SessionsLost() == len(c.members) }

// Backwards returns the grants whose token is not above the previous
// grant's, in the order granted, as pairs (previous, this).
func (c *Churn) Backwards() [][2]ChurnGrant {
	gs := c.Grants()
	var back [][2]ChurnGrant
	for i := 1; i < len(gs); i++ {
		if gs[i].Token <= gs[i-1].Token {
			back = append(back, [2]ChurnGrant{gs[i-1], gs[i]})
		}
	}
	return back
}

// GrantsLost counts the grants lost before their release.
func (c *Churn) GrantsLost() int {
	n := 0
	for _, g := range c.Grants() {
		if g.LostBeforeRelease {
			n++
		}
	}
	return n
}

// Percentile returns the p-th percentile (0..100) of ds (0 when empty).
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// Faults describes rounds of a fault under a Churn.
type Faults struct {
	Name   string // as reported, e.g. "leader kill"
	Rounds int    // default 1
	// Before and After are how many grants to wait for before each fault
	// and after it (default 10 each), within Wait (default 1 minute).
	Before, After int
	Wait          time.Duration
	// OrAllEnded ends a round's wait after the fault when every session
	// ended, for faults that may legitimately end them all.
	OrAllEnded bool
	Fault      func() // injects the fault; returns once it is in place
	Repair     func() // undoes it (nil: nothing to undo)
}

// FaultReport is what rounds of a fault did to a Churn.
type FaultReport struct {
	Name  string
	Idles []time.Duration // the longest time without a holder per round
	// LostDuringFault counts the sessions already lost when a round's
	// repair began (the most of any round).
	LostDuringFault int
	SessionsLost    int // sessions lost by the end
	Backwards       [][2]ChurnGrant
	GrantsLost      int
	Grants          int
}

// RunFaults runs f's rounds under c: wait for grants, inject the fault,
// wait for grants again, note the longest time without a holder since
// the fault, repair. It stops c and returns the figures.
func RunFaults(t testing.TB, c *Churn, f Faults) *FaultReport {
	t.Helper()
	rounds, before, after, wait := f.Rounds, f.Before, f.After, f.Wait
	if rounds == 0 {
		rounds = 1
	}
	if before == 0 {
		before = 10
	}
	if after == 0 {
		after = 10
	}
	if wait == 0 {
		wait = time.Minute
	}
	r := &FaultReport{Name: f.Name}
	for range rounds {
		c.Await(before, wait, f.Name+": grants before the fault", false)
		at := time.Now()
		f.Fault()
		c.Await(after, wait, f.Name+": grants after the fault", f.OrAllEnded)
		r.Idles = append(r.Idles, c.IdleSince(at))
		r.LostDuringFault = max(r.LostDuringFault, c.SessionsLost())
		if f.Repair != nil {
			f.Repair()
		}
	}
	c.Close()
	r.SessionsLost, r.Backwards, r.GrantsLost, r.Grants = c.SessionsLost(), c.Backwards(), c.GrantsLost(), c.Count()
	return r
}

// P50 and Max are the median and the longest of the rounds' times
// without a holder.
func (r *FaultReport) P50() time.Duration { return Percentile(r.Idles, 50) }
func (r *FaultReport) Max() time.Duration { return Percentile(r.Idles, 100) }

// Log logs the figures in one line.
func (r *FaultReport) Log(t testing.TB) {
	t.Helper()
	t.Logf("%s: %d rounds, no holder p50 %v max %v; sessions lost %d (during the fault %d); tokens backwards %d; grants lost %d; grants %d",
		r.Name, len(r.Idles), r.P50().Round(time.Millisecond), r.Max().Round(time.Millisecond),
		r.SessionsLost, r.LostDuringFault, len(r.Backwards), r.GrantsLost, r.Grants)
}

// Check logs the figures and fails the test when a token went backwards,
// when keepSessions and a session was lost, or when bound > 0 and a
// round's longest time without a holder exceeded it.
func (r *FaultReport) Check(t testing.TB, bound time.Duration, keepSessions bool) {
	t.Helper()
	r.Log(t)
	for _, b := range r.Backwards {
		t.Errorf("%s: token %d granted at %s after token %d granted at %s", r.Name,
			b[1].Token, b[1].Granted.Format("15:04:05.000"), b[0].Token, b[0].Granted.Format("15:04:05.000"))
	}
	if keepSessions && r.SessionsLost != 0 {
		t.Errorf("%s: %d sessions lost", r.Name, r.SessionsLost)
	}
	if bound > 0 && r.Max() > bound {
		t.Errorf("%s: the lock had no holder for %v (bound %v)", r.Name, r.Max(), bound)
	}
}

// CheckMedian is Check with the availability bound on the median round
// (bound) and a looser one on the worst (worst): a round in which a
// holder's grant was cancelled in doubt (its renewal unanswered during
// the election) waits for the lock's TTL, which a busy machine makes
// likely in a few rounds. A zero bound checks neither.
func (r *FaultReport) CheckMedian(t testing.TB, bound, worst time.Duration, keepSessions bool) {
	t.Helper()
	r.Check(t, worst, keepSessions)
	if bound > 0 && r.P50() > bound {
		t.Errorf("%s: the lock had no holder for %v at the median (bound %v)", r.Name, r.P50(), bound)
	}
}

// Add adds the figures of o (more rounds of the same fault, under another
// Churn) to r.
func (r *FaultReport) Add(o *FaultReport) {
	r.Idles = append(r.Idles, o.Idles...)
	r.LostDuringFault = max(r.LostDuringFault, o.LostDuringFault)
	r.SessionsLost += o.SessionsLost
	r.Backwards = append(r.Backwards, o.Backwards...)
	r.GrantsLost += o.GrantsLost
	r.Grants += o.Grants
}

// AwaitEtcdHealthy waits until every member of the etcd cluster in url
// (any scheme; its hosts are the client addresses) answers its /health
// endpoint with a leader, up to d: a round of faults must start on a
// whole cluster, or killing the next leader while a restarted member is
// still catching up takes the quorum away.
func AwaitEtcdHealthy(t testing.TB, url string, d time.Duration) {
	t.Helper()
	hosts := url
	if i := strings.Index(hosts, "://"); i >= 0 {
		hosts = hosts[i+3:]
	}
	if i := strings.IndexAny(hosts, "/?"); i >= 0 {
		hosts = hosts[:i]
	}
	cli := &http.Client{Timeout: time.Second}
	defer cli.CloseIdleConnections()
	healthy := func(h string) bool {
		resp, err := cli.Get("http://" + h + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Health string `json:"health"`
		}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Health == "true"
	}
	deadline := time.Now().Add(d)
	for {
		all := true
		for _, h := range strings.Split(hosts, ",") {
			if !healthy(h) {
				all = false
				break
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster %s not healthy within %v", hosts, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// EtcdClusterAvailability is the availability test of a driver on the
// 3-member etcd cluster whose client URL is base: a churn of three members
// looping on one lock goes through three rounds of each fault — the
// leader killed, a follower killed (TTL 3 s: the lock usable again within
// the election time, 500 ms here, plus two round trips, 1.5 s, at the
// median round; the worst may wait out the 3 s TTL of a grant cancelled
// in doubt), the leader frozen for 2 s (TTL 6 s: longer than the
// election, shorter than the TTL) — losing no session, and tokens keep
// growing. run runs scripts/servers.sh on the test's private cluster;
// namespace returns base in a namespace of its own with the given TTL
// option value, and open opens member on such a URL.
func EtcdClusterAvailability(t *testing.T, base string, run func(args ...string), namespace func(ttl string) string,
	open func(t testing.TB, url, member string) *backend.Backend, wait time.Duration) {
	// Each repair waits for a whole cluster.
	restart := func() {
		run("start-one", "etcd-cluster:all")
		AwaitEtcdHealthy(t, base, wait)
	}
	for _, f := range []struct {
		name          string
		ttl           string
		fault, repair func()
		bound         time.Duration
	}{
		{"leader kill", "3", func() { run("kill", "etcd-cluster:leader") }, restart, 1500 * time.Millisecond},
		{"follower kill", "3", func() { run("kill", "etcd-cluster:follower") }, restart, 1500 * time.Millisecond},
		// Frozen 2 s, plus the time servers.sh takes to resume it (up to
		// 3 s on a loaded machine): a 6 s TTL keeps the freeze shorter.
		{"leader freeze 2 s", "6", func() {
			run("pause", "etcd-cluster:leader")
			time.Sleep(2 * time.Second)
		}, func() {
			run("resume", "etcd-cluster:all")
			AwaitEtcdHealthy(t, base, wait)
		}, 0},
	} {
		t.Run(f.name, func(t *testing.T) {
			url := namespace(f.ttl) // one lock for every member
			var members []*backend.Backend
			for i := range 3 {
				members = append(members, open(t, url, fmt.Sprintf("m%d", i)))
			}
			c := StartChurn(t, members, ChurnOptions{})
			r := RunFaults(t, c, Faults{Name: f.name, Rounds: 3, Wait: wait, Fault: f.fault, Repair: f.repair})
			// The bound holds at the median; the worst round may wait out
			// the TTL of a grant cancelled in doubt (3 s here).
			worst := f.bound
			if worst > 0 {
				worst += 3 * time.Second
			}
			r.CheckMedian(t, f.bound, worst, true)
		})
	}
}

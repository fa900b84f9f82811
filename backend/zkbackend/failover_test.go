// go-zookeeper v1.0.4 has a data race on its reconnect path (recvLoop
// writes the last zxid while the new connection's sendSetWatches reads
// it; go-zookeeper/zk pull request 35, samuel/go-zookeeper issue 260),
// which killing an ensemble member under a churn of waiters (many
// watches) triggers: these fault tests run without the race detector
// (go test ./backend/zkbackend/ -run TestFaultEnsemble).

//go:build !race

package zkbackend

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// churn is a set of members taking and releasing one lock in a loop, as
// a workload to measure a fault's effect: how long nobody held the lock,
// whether a session was lost, whether a token went backwards.
type churn struct {
	t       *testing.T
	members []*backend.Backend
	stop    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	grants []held
}

// held is one grant of the churn: when it was granted and released.
type held struct {
	token             uint64
	granted, released time.Time
	lostBeforeRelease bool
}

// startChurn opens n members on url looping on lock "churn".
func startChurn(t *testing.T, url string, n int) *churn {
	t.Helper()
	c := &churn{t: t, stop: make(chan struct{})}
	for i := range n {
		c.members = append(c.members, openBackend(t, url, "m"+string(rune('0'+i))))
	}
	for _, m := range c.members {
		c.wg.Add(1)
		go c.loop(m)
	}
	t.Cleanup(c.close)
	return c
}

func (c *churn) loop(m *backend.Backend) {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-m.Done():
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g, err := m.Lock(ctx, "churn", backend.LockOptions{})
		cancel()
		if err != nil {
			c.t.Logf("%s %s lock: %v", time.Now().Format("15:04:05.000"), m.MemberID(), err)
			continue
		}
		h := held{token: g.Token(), granted: time.Now()}
		time.Sleep(5 * time.Millisecond)
		lost := g.Context().Err() != nil
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		err = g.Release(ctx)
		cancel()
		h.released = time.Now()
		if err != nil {
			c.t.Logf("%s %s release: %v", time.Now().Format("15:04:05.000"), m.MemberID(), err)
		}
		h.lostBeforeRelease = lost || errors.Is(err, backend.ErrNotHeld)
		c.mu.Lock()
		c.grants = append(c.grants, h)
		c.mu.Unlock()
	}
}

func (c *churn) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// allEnded reports whether every member's session ended.
func (c *churn) allEnded() bool {
	for _, m := range c.members {
		if m.Err() == nil {
			return false
		}
	}
	return true
}

// count returns how many grants were released so far.
func (c *churn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.grants)
}

// await waits for n more grants, failing after d.
func (c *churn) await(n int, d time.Duration, what string) {
	c.t.Helper()
	want := c.count() + n
	eventually(c.t, d, what, func() bool { return c.count() >= want })
}

// idleSince returns the longest time without a holder among grants
// granted after from: the time between a release and the next grant.
func (c *churn) idleSince(from time.Time) time.Duration {
	c.mu.Lock()
	gs := append([]held(nil), c.grants...)
	c.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].granted.Before(gs[j].granted) })
	var idle time.Duration
	for i := 1; i < len(gs); i++ {
		if gs[i].granted.After(from) {
			idle = max(idle, gs[i].granted.Sub(gs[i-1].released))
		}
	}
	return idle
}

// result reports sessions lost, tokens not above the previous grant's,
// and grants lost before their release.
func (c *churn) result() (sessionsLost, backwards, grantsLost int) {
	c.mu.Lock()
	gs := append([]held(nil), c.grants...)
	c.mu.Unlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].granted.Before(gs[j].granted) })
	for i, g := range gs {
		if i > 0 && g.token <= gs[i-1].token {
			backwards++
		}
		if g.lostBeforeRelease {
			grantsLost++
		}
	}
	for _, m := range c.members {
		if m.Err() != nil {
			sessionsLost++
		}
	}
	return sessionsLost, backwards, grantsLost
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// faultRounds runs rounds of fault (then repair) under a churn of three
// members on the shared 3-node ensemble with a 3 s session timeout, and
// returns the longest time without a holder of each round.
func faultRounds(t *testing.T, rounds int, fault, repair func()) ([]time.Duration, *churn) {
	url := isolate(t, ensembleURL(t), "timeout", "3")
	t.Cleanup(func() {
		servers(t, "resume", "zookeeper-ensemble:all")
		servers(t, "start", "zookeeper-ensemble")
	})
	c := startChurn(t, url, 3)
	var idles []time.Duration
	for range rounds {
		c.await(10, time.Minute, "grants before the fault")
		at := time.Now()
		fault()
		want := c.count() + 10
		eventually(t, time.Minute, "grants after the fault, or every session ended", func() bool {
			return c.count() >= want || c.allEnded()
		})
		idles = append(idles, c.idleSince(at))
		repair()
	}
	c.close()
	return idles, c
}

// report logs a fault's figures and checks that no token went backwards
// and, when keepSessions, that no session was lost.
func report(t *testing.T, fault string, idles []time.Duration, c *churn, keepSessions bool) {
	t.Helper()
	lost, back, grantsLost := c.result()
	t.Logf("%s: %d rounds, no holder p50 %v max %v; sessions lost %d; tokens backwards %d; grants lost %d; grants %d",
		fault, len(idles), percentile(idles, 50).Round(time.Millisecond), percentile(idles, 100).Round(time.Millisecond), lost, back, grantsLost, c.count())
	if keepSessions && lost != 0 {
		t.Errorf("%s: %d sessions lost", fault, lost)
	}
	if back != 0 {
		t.Errorf("%s: %d tokens not above the previous grant's", fault, back)
	}
}

// Killing the ensemble's leader under a churn of lock holders: the
// remaining two elect a new leader, sessions survive (they move to a
// live member), tokens keep growing.
func TestFaultEnsembleLeaderKillAvailability(t *testing.T) {
	idles, c := faultRounds(t, 2,
		func() { servers(t, "kill", "zookeeper-ensemble:leader") },
		func() { servers(t, "start", "zookeeper-ensemble") })
	report(t, "leader kill", idles, c, true)
}

// Killing a follower: sessions connected to it move to another member.
func TestFaultEnsembleFollowerKillAvailability(t *testing.T) {
	idles, c := faultRounds(t, 2,
		func() { servers(t, "kill", "zookeeper-ensemble:follower") },
		func() { servers(t, "start", "zookeeper-ensemble") })
	report(t, "follower kill", idles, c, true)
}

// Freezing the leader (SIGSTOP) for longer than the session timeout: the
// figures are logged (ZooKeeper expires the sessions it cannot account
// for once a new leader takes over; see the package documentation).
func TestFaultEnsembleLeaderFreeze(t *testing.T) {
	idles, c := faultRounds(t, 1,
		func() {
			servers(t, "pause", "zookeeper-ensemble:leader")
			time.Sleep(4 * time.Second) // the fault: frozen past the 3 s session timeout
		},
		func() { servers(t, "resume", "zookeeper-ensemble:all") })
	report(t, "leader freeze 4 s", idles, c, false)
}

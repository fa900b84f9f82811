package redisbackend

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// churn is members taking and releasing one lock in a loop through a
// Sentinel URL, as a workload to measure a fault's effect: the longest
// time without a grant, sessions lost, tokens not above the previous.
type churn struct {
	t       *testing.T
	members []*backend.Backend
	stop    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	grants []churnGrant
}

type churnGrant struct {
	at    time.Time
	token uint64
}

func startChurn(t *testing.T, u string, n int) *churn {
	t.Helper()
	c := &churn{t: t, stop: make(chan struct{})}
	for i := range n {
		c.members = append(c.members, openBackend(t, u, string(rune('a'+i))))
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
		lctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		g, err := m.Lock(lctx, "x", backend.LockOptions{})
		cancel()
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.grants = append(c.grants, churnGrant{time.Now(), g.Token()})
		c.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.Release(rctx)
		cancel()
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

func (c *churn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.grants)
}

// round waits for 20 grants, runs fault, waits for 20 more, and returns
// the longest time without a grant from the fault on.
func (c *churn) round(fault func()) time.Duration {
	c.t.Helper()
	eventually(c.t, wait, "grants before the fault", func() bool { return c.count() >= 20 })
	at := time.Now()
	fault()
	n := c.count()
	eventually(c.t, 2*wait, "grants after the fault", func() bool { return c.count() >= n+20 })
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := append([]churnGrant(nil), c.grants...)
	sort.Slice(gs, func(i, j int) bool { return gs[i].at.Before(gs[j].at) })
	var gap time.Duration
	for i := 1; i < len(gs); i++ {
		if gs[i].at.After(at) {
			prev := gs[i-1].at
			if prev.Before(at) {
				prev = at
			}
			gap = max(gap, gs[i].at.Sub(prev))
		}
	}
	return gap
}

// backwards returns the tokens not above the previous grant's, in grant
// order, and checks none; sessionsLost counts members whose session ended.
func (c *churn) result() (backwards, sessionsLost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i < len(c.grants); i++ {
		if c.grants[i].token <= c.grants[i-1].token {
			backwards++
			c.t.Errorf("token %d granted after %d", c.grants[i].token, c.grants[i-1].token)
		}
	}
	for _, m := range c.members {
		if m.Err() != nil {
			sessionsLost++
		}
	}
	return backwards, sessionsLost
}

// TestGracefulFailoverTokensKeepGrowing takes and releases a lock in a
// loop, with two members, through two graceful Sentinel failovers (there
// and back): every token granted is above every earlier one (the token
// has the server's clock as a floor, so the counter's last increments
// that a failover loses cannot make it repeat or go back), no session is
// lost, and the lock is usable again once the failover completed.
func TestGracefulFailoverTokensKeepGrowing(t *testing.T) {
	restoreRoles(t)
	c := startChurn(t, freshURL(t, sentinelURL(t), "lock_timeout=3", "membership_timeout=3"), 2)
	var gaps []time.Duration
	for range 2 {
		gaps = append(gaps, c.round(func() { servers(t, "redis-failover") }))
	}
	c.close()
	back, lost := c.result()
	t.Logf("graceful failover: %d grants through 2 failovers; longest time without a grant %v; tokens backwards %d; sessions lost %d",
		c.count(), gaps, back, lost)
	if lost != 0 {
		t.Errorf("%d sessions lost through a graceful failover", lost)
	}
}

// The master killed (SIGKILL) or frozen (SIGSTOP) past Sentinel's
// down-after time (2 s here): the sentinels promote the replica, the
// clients find it through them, and the lock is usable again; tokens keep
// growing although the replica may have missed the counter's last
// increments. A session whose liveness key expires before the promotion
// (Sentinel's detection plus its election against a 6 s TTL here) is
// lost, and reported: the figures are logged.
func TestFaultMasterKillAndFreeze(t *testing.T) {
	for _, fault := range []string{"kill", "freeze"} {
		t.Run(fault, func(t *testing.T) {
			restoreRoles(t)
			old, _ := roles(t)
			// Member 1 is the master now (restoreRoles); it is brought
			// back as a replica, then made master again, for the tests
			// that follow.
			t.Cleanup(func() {
				if fault == "kill" {
					servers(t, "start-one", "redis:1")
				} else {
					servers(t, "resume", "redis:1")
				}
				eventually(t, 2*wait, "the old master to rejoin as a replica", func() bool {
					_, r := roles(t)
					return r == old
				})
				restoreRoles(t)
			})
			c := startChurn(t, freshURL(t, sentinelURL(t), "lock_timeout=6", "membership_timeout=6"), 2)
			gap := c.round(func() {
				if fault == "kill" {
					servers(t, "kill", "redis:1")
				} else {
					servers(t, "pause", "redis:1")
				}
				eventually(t, 2*wait, "the sentinels to promote the replica", func() bool {
					m, _ := roles(t)
					return m != old
				})
			})
			c.close()
			back, lost := c.result()
			t.Logf("master %s: longest time without a grant %v; tokens backwards %d; sessions lost %d of %d; grants %d",
				fault, gap.Round(time.Millisecond), back, lost, len(c.members), c.count())
		})
	}
}

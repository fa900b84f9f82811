package redisbackend

import (
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// startChurn opens n members on u taking and releasing one lock in a
// loop through a Sentinel URL.
func startChurn(t *testing.T, u string, n int) *testutil.Churn {
	t.Helper()
	var members []*backend.Backend
	for i := range n {
		members = append(members, openBackend(t, u, string(rune('a'+i))))
	}
	return testutil.StartChurn(t, members, testutil.ChurnOptions{
		Lock: "x", LockTimeout: 500 * time.Millisecond, Hold: 2 * time.Millisecond, ReleaseTimeout: 2 * time.Second, Quiet: true,
	})
}

// TestGracefulFailoverTokensKeepGrowing takes and releases a lock in a
// loop, with two members, through two graceful Sentinel failovers (there
// and back): every token granted is above every earlier one (the token
// has the server's clock as a floor, so the counter's last increments
// that a failover loses cannot make it repeat or go back), no session is
// lost, and the lock is usable again once the failover completed.
// Sentinel's failover leaves the master unwritable for about 2 s (it
// polls the promoted replica's role every second), so the TTLs are 6 s:
// at 3 s, that pause plus a busy machine's delays leave the session
// little room before its deadline.
func TestGracefulFailoverTokensKeepGrowing(t *testing.T) {
	restoreRoles(t)
	c := startChurn(t, freshURL(t, sentinelURL(t), "lock_timeout=6", "membership_timeout=6"), 2)
	r := testutil.RunFaults(t, c, testutil.Faults{
		Name: "graceful failover", Rounds: 2, Before: 20, After: 20, Wait: 2 * wait,
		Fault: func() { servers(t, "redis-failover") },
	})
	r.Check(t, 0, true)
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
			r := testutil.RunFaults(t, c, testutil.Faults{
				Name: "master " + fault, Before: 20, After: 20, Wait: 2 * wait, OrAllEnded: true,
				Fault: func() {
					if fault == "kill" {
						servers(t, "kill", "redis:1")
					} else {
						servers(t, "pause", "redis:1")
					}
					eventually(t, 2*wait, "the sentinels to promote the replica", func() bool {
						m, _ := roles(t)
						return m != old
					})
				},
			})
			r.Check(t, 0, false)
		})
	}
}

package etcd2backend

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// TestFaultClusterAvailability runs a churn of three members looping on
// one lock on a private 3-member cluster through three rounds of each
// fault, and checks the availability bounds: after the leader is
// killed (TTL 3 s), the lock is usable again within the election time
// (500 ms here) plus two round trips (bound 1.5 s, at the median round;
// a round whose holder's grant was cancelled in doubt waits out the
// lock's 3 s TTL), and so after a follower is killed; no session is lost, whether a member is killed or
// the leader is frozen for 2 s (longer than the election, shorter than
// the 6 s TTL of that case); tokens keep growing throughout. TestFaultClusterLeaderKilled and
// TestFaultClusterMemberKilled check that a grant held through those
// faults survives and that watches resume.
func TestFaultClusterAvailability(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	base := srv.URL("BATON_TEST_ETCD2_CLUSTER_URL")
	restart := func() {
		srv.run("start-one", "etcd-cluster:all")
		testutil.AwaitEtcdHealthy(t, base, wait)
	}
	for _, f := range []struct {
		name          string
		ttl           string
		fault, repair func()
		bound         time.Duration
	}{
		{"leader kill", "3", func() { srv.run("kill", "etcd-cluster:leader") }, restart, 1500 * time.Millisecond},
		{"follower kill", "3", func() { srv.run("kill", "etcd-cluster:follower") }, restart, 1500 * time.Millisecond},
		// Frozen 2 s, plus the time servers.sh takes to resume it (up to
		// 3 s on a loaded machine): a 6 s TTL keeps the freeze shorter.
		{"leader freeze 2 s", "6", func() {
			srv.run("pause", "etcd-cluster:leader")
			time.Sleep(2 * time.Second)
		}, func() {
			srv.run("resume", "etcd-cluster:all")
			testutil.AwaitEtcdHealthy(t, base, wait)
		}, 0},
	} {
		t.Run(f.name, func(t *testing.T) {
			url := nsURL(base, "timeout="+f.ttl)
			var members []*backend.Backend
			for i := range 3 {
				members = append(members, openBackend(t, url, fmt.Sprintf("m%d", i)))
			}
			c := testutil.StartChurn(t, members, testutil.ChurnOptions{})
			r := testutil.RunFaults(t, c, testutil.Faults{Name: f.name, Rounds: 3, Wait: wait, Fault: f.fault, Repair: f.repair})
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

// go-zookeeper v1.0.4 has a data race on its reconnect path (recvLoop
// writes the last zxid while the new connection's sendSetWatches reads
// it; go-zookeeper/zk pull request 35, samuel/go-zookeeper issue 260),
// which killing an ensemble member under a churn of waiters (many
// watches) triggers: these fault tests run without the race detector
// (go test ./backend/zkbackend/ -run TestFaultEnsemble).

//go:build !race

package zkbackend

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// faultRounds runs rounds of fault (then repair) under a churn of three
// members on the shared 3-node ensemble with a 3 s session timeout; a
// round's wait after the fault also ends when every session ended.
func faultRounds(t *testing.T, name string, rounds int, fault, repair func()) *testutil.FaultReport {
	url := isolate(t, ensembleURL(t), "timeout", "3")
	t.Cleanup(func() {
		servers(t, "resume", "zookeeper-ensemble:all")
		servers(t, "start", "zookeeper-ensemble")
	})
	var members []*backend.Backend
	for i := range 3 {
		members = append(members, openBackend(t, url, fmt.Sprintf("m%d", i)))
	}
	c := testutil.StartChurn(t, members, testutil.ChurnOptions{})
	return testutil.RunFaults(t, c, testutil.Faults{
		Name: name, Rounds: rounds, Wait: time.Minute, OrAllEnded: true,
		Fault: fault, Repair: repair,
	})
}

// Killing the ensemble's leader under a churn of lock holders: the
// remaining two elect a new leader, sessions survive (they move to a
// live member), tokens keep growing.
func TestFaultEnsembleLeaderKillAvailability(t *testing.T) {
	r := faultRounds(t, "leader kill", 2,
		func() { servers(t, "kill", "zookeeper-ensemble:leader") },
		func() { servers(t, "start", "zookeeper-ensemble") })
	r.Check(t, 0, true)
}

// Killing a follower: sessions connected to it move to another member.
func TestFaultEnsembleFollowerKillAvailability(t *testing.T) {
	r := faultRounds(t, "follower kill", 2,
		func() { servers(t, "kill", "zookeeper-ensemble:follower") },
		func() { servers(t, "start", "zookeeper-ensemble") })
	r.Check(t, 0, true)
}

// Freezing the leader (SIGSTOP) for longer than the session timeout: the
// figures are logged (ZooKeeper expires the sessions it cannot account
// for once a new leader takes over; see the package documentation).
func TestFaultEnsembleLeaderFreeze(t *testing.T) {
	r := faultRounds(t, "leader freeze 4 s", 1,
		func() {
			servers(t, "pause", "zookeeper-ensemble:leader")
			time.Sleep(4 * time.Second) // the fault: frozen past the 3 s session timeout
		},
		func() { servers(t, "resume", "zookeeper-ensemble:all") })
	r.Check(t, 0, false)
}

package consulbackend

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// consulElection is the cluster's election time with raft_multiplier 1
// (scripts/servers.sh: heartbeat and election timeouts of 1 s): a
// follower misses the leader after a randomised 1-2 s and wins the vote
// it then calls within another 1-2 s; the members' agent forwards to the
// new leader at its next retry (every rpc_hold_timeout/16, 0.44 s), so
// the cluster serves writes again within 4 s of losing its leader.
const consulElection = 4 * time.Second

// clusterRoles returns the members (numbered from 1, as servers.sh names
// them) of the private cluster that lead and follow.
func clusterRoles(t *testing.T, srv *privateServer) (leader int, followers []int) {
	t.Helper()
	for i, addr := range strings.Split(srv.URL("BATON_TEST_CONSUL_CLUSTER_ADDRS"), ",") {
		switch raftState(t, addr) {
		case "Leader":
			leader = i + 1
		case "Follower":
			followers = append(followers, i+1)
		}
	}
	if leader == 0 || len(followers) != 2 {
		t.Fatalf("cluster roles: leader %d, followers %v", leader, followers)
	}
	return leader, followers
}

// TestFaultClusterAvailability runs a churn of three members looping on
// one lock (10 s session TTL, Consul's production minimum) on a private
// 3-server cluster through three rounds of each fault; the members talk
// to a follower's agent (a Consul client talks to its local agent), which
// outlives the fault. It checks the availability bounds: after the leader
// is killed, the lock is usable again within the election time
// (consulElection) plus two round trips (bound 5 s); a follower killed
// (not the members' agent) is invisible (same bound); the leader frozen
// for 3 s (longer than the election, shorter than the TTL) loses no
// session; no session is lost in any; tokens keep growing throughout.
// TestFaultClusterLeaderLost checks that a grant held through a leader
// loss survives and that watches carry on.
func TestFaultClusterAvailability(t *testing.T) {
	srv := startPrivate(t, "consul-cluster")
	addrs := strings.Split(srv.URL("BATON_TEST_CONSUL_CLUSTER_ADDRS"), ",")
	bound := consulElection + time.Second // two round trips, with a margin as etcd3's
	for _, f := range []struct {
		name   string
		fault  func(leader, other int)
		repair string
		bound  time.Duration
	}{
		{"leader kill", func(leader, _ int) { srv.run("kill", fmt.Sprintf("consul-cluster:%d", leader)) }, "start-one", bound},
		{"follower kill", func(_, other int) { srv.run("kill", fmt.Sprintf("consul-cluster:%d", other)) }, "start-one", bound},
		{"leader freeze 3 s", func(leader, _ int) {
			srv.run("pause", fmt.Sprintf("consul-cluster:%d", leader))
			time.Sleep(3 * time.Second)
		}, "resume", 0},
	} {
		t.Run(f.name, func(t *testing.T) {
			// Each round has its own churn on a follower's agent: roles
			// move, and the members' agent must stay a follower (it is
			// never the one broken).
			total := &testutil.FaultReport{Name: f.name}
			for range 3 {
				leader, followers := clusterRoles(t, srv)
				agent, other := followers[0], followers[1]
				url := nsURL("consul://"+addrs[agent-1], "ttl=10")
				var members []*backend.Backend
				for i := range 3 {
					members = append(members, openBackend(t, url, fmt.Sprintf("m%d", i)))
				}
				c := testutil.StartChurn(t, members, testutil.ChurnOptions{})
				t.Cleanup(func() {
					if t.Failed() {
						dumpLock(t, url, "l/churn")
					}
				})
				r := testutil.RunFaults(t, c, testutil.Faults{
					Name: f.name, Wait: wait,
					Fault: func() { f.fault(leader, other) },
					Repair: func() {
						srv.run(f.repair, "consul-cluster:all")
						// The next round starts on a healthy cluster: one
						// leader, two followers, every agent naming the
						// same leader.
						testutil.Within(t, 2*wait, "a leader and two followers after the repair", func() bool {
							l, fs := 0, 0
							leaders := map[string]bool{}
							for _, a := range addrs {
								switch raftState(t, a) {
								case "Leader":
									l++
								case "Follower":
									fs++
								}
								leaders[agentLeader(t, a)] = true
							}
							return l == 1 && fs == 2 && len(leaders) == 1 && !leaders[""]
						})
					},
				})
				total.Add(r)
				for _, m := range members {
					if err := m.Close(context.Background()); err != nil && m.Err() == nil {
						t.Errorf("close %s: %v", m.MemberID(), err)
					}
				}
			}
			total.Check(t, f.bound, true)
		})
	}
}

// agentLeader returns the leader the agent at addr knows ("" if none).
func agentLeader(t *testing.T, addr string) string {
	cli, done := newAdminClient(t, "consul://"+addr)
	defer done()
	l, err := cli.Status().Leader()
	if err != nil {
		return ""
	}
	return l
}

// dumpLock logs the keys of lock name under url's namespace.
func dumpLock(t *testing.T, url, name string) {
	cli, done := newAdminClient(t, url)
	defer done()
	pairs, _, err := cli.KV().List(newKeyspace(testutil.NamespaceOf(t, url)).lockPrefix(name), nil)
	if err != nil {
		t.Logf("dump: %v", err)
		return
	}
	for _, p := range pairs {
		t.Logf("key %s value %q session %s modify %d", p.Key, p.Value, p.Session, p.ModifyIndex)
	}
}

package consulbackend

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// consulElection is the cluster's election time with raft_multiplier 1
// (scripts/servers.sh): a follower misses the leader after between one
// and two heartbeat timeouts (1 s each) and wins the vote it then calls
// within a round trip on loopback, so a new leader serves within 2 s.
const consulElection = 2 * time.Second

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
// one lock (6 s session TTL) on a private 3-server cluster through three
// rounds of each fault; the members talk to a follower's agent (a Consul
// client talks to its local agent), which outlives the fault. It checks
// the availability bounds: after the leader is killed, the lock is usable
// again within the election time (consulElection) plus two round trips
// (bound 3 s); a follower killed (not the members' agent) is invisible
// (same bound); the leader frozen for 3 s (longer than the election,
// shorter than the TTL) loses no session; tokens keep growing throughout.
// TestFaultClusterLeaderLost checks that a grant held through a leader
// loss survives and that watches carry on.
func TestFaultClusterAvailability(t *testing.T) {
	srv := startPrivate(t, "consul-cluster")
	addrs := strings.Split(srv.URL("BATON_TEST_CONSUL_CLUSTER_ADDRS"), ",")
	bound := consulElection + time.Second
	for _, f := range []struct {
		name  string
		fault func(leader, other int)
		bound time.Duration
	}{
		{"leader kill", func(leader, _ int) { srv.run("kill", fmt.Sprintf("consul-cluster:%d", leader)) }, bound},
		{"follower kill", func(_, other int) { srv.run("kill", fmt.Sprintf("consul-cluster:%d", other)) }, bound},
		{"leader freeze 3 s", func(leader, _ int) {
			srv.run("pause", fmt.Sprintf("consul-cluster:%d", leader))
			time.Sleep(3 * time.Second)
		}, 0},
	} {
		t.Run(f.name, func(t *testing.T) {
			leader, followers := clusterRoles(t, srv)
			agent := followers[0]
			url := nsURL("consul://"+addrs[agent-1], "ttl=6")
			var members []*backend.Backend
			for i := range 3 {
				members = append(members, openBackend(t, url, fmt.Sprintf("m%d", i)))
			}
			c := testutil.StartChurn(t, members, testutil.ChurnOptions{})
			r := testutil.RunFaults(t, c, testutil.Faults{
				Name: f.name, Rounds: 3, Wait: wait,
				Fault: func() {
					// Roles move between rounds; the members' agent
					// stays a follower (it is never the one broken).
					leader, followers = clusterRoles(t, srv)
					other := followers[0]
					if other == agent {
						other = followers[1]
					}
					if leader == agent {
						t.Fatalf("the members' agent %d became the leader", agent)
					}
					f.fault(leader, other)
				},
				Repair: func() {
					srv.run("resume", "consul-cluster:all")
					srv.run("start-one", "consul-cluster:all")
					eventually(t, wait, "a leader after the repair", func() bool {
						l, fs := 0, 0
						for _, a := range addrs {
							switch raftState(t, a) {
							case "Leader":
								l++
							case "Follower":
								fs++
							}
						}
						return l == 1 && fs == 2
					})
				},
			})
			r.Check(t, f.bound, true)
		})
	}
}

package etcdbackend

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// faultRounds runs rounds of fault (then repair) under a churn of three
// members on a private 3-member cluster with a 3 s lease.
func faultRounds(t *testing.T, name string, rounds int, fault, repair func(srv *privateServer)) *testutil.FaultReport {
	srv := startPrivate(t, "etcd-cluster")
	url := nsURL(srv.URL("BATON_TEST_ETCD_CLUSTER_URL"), "timeout=3")
	var members []*backend.Backend
	for i := range 3 {
		members = append(members, openBackend(t, url, fmt.Sprintf("m%d", i)))
	}
	c := testutil.StartChurn(t, members, testutil.ChurnOptions{})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		admin, ks := etcdtest.NewAdminClient(t, url), etcdproto.NewKeyspace(testutil.NamespaceOf(t, url))
		defer admin.Close()
		resp, err := admin.Get(context.Background(), ks.LockPrefix("l/churn"), clientv3.WithPrefix())
		if err != nil {
			t.Logf("dump: %v", err)
			return
		}
		for _, kv := range resp.Kvs {
			t.Logf("entry %s create %d mod %d version %d lease %x", kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
		}
	})
	return testutil.RunFaults(t, c, testutil.Faults{
		Name: name, Rounds: rounds, Wait: wait,
		Fault:  func() { fault(srv) },
		Repair: func() { repair(srv) },
	})
}

// Killing the leader of a 3-member cluster under a churn of lock holders:
// the lock is usable again within the election time (500 ms here) plus
// two round trips (bound 1.5 s, at the median round), no session is lost,
// tokens keep growing. A round in which a holder's renewal went
// unanswered during the election cancels that grant in doubt, and the
// lock then waits out its lease (3 s): the worst round's bound allows it.
func TestFaultLeaderKillAvailability(t *testing.T) {
	r := faultRounds(t, "leader kill", 3,
		func(srv *privateServer) { srv.run("kill", "etcd-cluster:leader") },
		func(srv *privateServer) { srv.run("start-one", "etcd-cluster:all") })
	r.CheckMedian(t, 1500*time.Millisecond, 4500*time.Millisecond, true)
}

// Killing a follower is invisible to the lock's availability (bounds as
// for the leader).
func TestFaultFollowerKillAvailability(t *testing.T) {
	r := faultRounds(t, "follower kill", 3,
		func(srv *privateServer) { srv.run("kill", "etcd-cluster:follower") },
		func(srv *privateServer) { srv.run("start-one", "etcd-cluster:all") })
	r.CheckMedian(t, 1500*time.Millisecond, 4500*time.Millisecond, true)
}

// Freezing the leader (SIGSTOP) for longer than the lease TTL: the other
// two members elect a new leader, renewals and releases sent to the
// frozen member are abandoned after one attempt and sent to the others,
// so no session is lost while a quorum is reachable.
//
// When the frozen member resumes, an etcd server without the fix of
// etcd-io/etcd#15247 (3.4.28, 3.5.11 and later have it) still believes
// for a moment that it leads, finds every lease expired by its own clock,
// and forwards their revocation to the new leader, which commits it: the
// sessions end although every renewal succeeded. That is the server's
// defect, outside the driver's reach (and the reason to run a fixed
// etcd); on such a server the test checks the driver's promise up to the
// resume and logs what the resume did.
func TestFaultLeaderFreezeKeepsSessions(t *testing.T) {
	var version string
	r := faultRounds(t, "leader freeze 4 s", 1,
		func(srv *privateServer) {
			version = serverVersion(t, srv.URL("BATON_TEST_ETCD_CLUSTER_URL"))
			srv.run("pause", "etcd-cluster:leader")
			time.Sleep(4 * time.Second) // the fault: frozen past the 3 s TTL
		},
		// SIGCONT to every member: the frozen one is no longer the leader.
		func(srv *privateServer) { srv.run("resume", "etcd-cluster:all") })
	if r.LostDuringFault != 0 {
		t.Errorf("leader freeze 4 s: %d sessions lost while the leader was frozen", r.LostDuringFault)
	}
	if !revokesOnResume(version) {
		r.Check(t, 0, true)
		return
	}
	t.Logf("leader freeze 4 s: %d rounds, no holder max %v; sessions lost during the freeze 0, after the resume %d (etcd %s revokes leases when a frozen leader resumes: etcd-io/etcd#15247); tokens backwards %d; grants %d",
		len(r.Idles), r.Max().Round(time.Millisecond), r.SessionsLost, version, len(r.Backwards), r.Grants)
	r.Check(t, 0, false)
}

// serverVersion returns the etcd server version of the cluster at url.
func serverVersion(t *testing.T, url string) string {
	t.Helper()
	admin := etcdtest.NewAdminClient(t, url)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, ep := range admin.Endpoints() {
		if st, err := admin.Status(ctx, ep); err == nil {
			return st.Version
		}
	}
	t.Fatal("no member of the cluster reported its version")
	return ""
}

// revokesOnResume reports whether etcd version v has the defect of
// etcd-io/etcd#15247: fixed in 3.4.28, 3.5.11 and 3.6.
func revokesOnResume(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return true // unknown: assume the defect, the freeze itself is still checked
	}
	switch {
	case major != 3:
		return major < 3
	case minor == 4:
		return patch < 28
	case minor == 5:
		return patch < 11
	default:
		return minor < 4
	}
}

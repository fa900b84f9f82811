package etcdgwbackend

import (
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// TestFaultClusterAvailability checks the availability bounds on a
// private 3-member cluster (testutil.EtcdClusterAvailability: leader kill,
// follower kill, leader freeze; no session lost, tokens growing).
// TestFaultLeaderKilled and TestFaultClusterMemberKilled check that a grant held
// through those faults survives and that watches resume.
func TestFaultClusterAvailability(t *testing.T) {
	srv := startPrivate(t, "etcd-cluster")
	base := srv.URL("BATON_TEST_ETCDGW_CLUSTER_URL")
	testutil.EtcdClusterAvailability(t, base, func(args ...string) { srv.run(args...) },
		func(ttl string) string { return nsURL(base, "timeout="+ttl) },
		func(t testing.TB, url, member string) *backend.Backend { return openBackend(t, url, member) }, wait)
}

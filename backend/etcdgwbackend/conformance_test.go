package etcdgwbackend

import (
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
)

// harness runs the conformance suite in a fresh namespace of the servers
// base returns; ExpireSession revokes the member's lease as an operator
// (or an expiry) would.
func harness(base func(testing.TB) string) drivertest.Harness {
	return drivertest.Harness{
		NewURL: func(t testing.TB) string { return nsURL(base(t)) },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			t.Helper()
			if n := revokeMember(t, b.Config().Redacted, b.MemberID()); n == 0 {
				t.Fatalf("no session of member %q found to revoke", b.MemberID())
			}
		},
	}
}

func TestConformanceSingle(t *testing.T) { drivertest.Run(t, harness(singleURL)) }

func TestConformanceCluster(t *testing.T) { drivertest.Run(t, harness(clusterURL)) }

// mixedHarness runs the suite with members of both drivers on one
// namespace: a member whose ID ends in an odd byte opens through the
// gateway, the others through gRPC, so that most subtests with two
// members (m1/m2, a/b) have one of each.
func mixedHarness(grpcBase func(testing.TB) string) drivertest.Harness {
	h := harness(func(t testing.TB) string { return grpcBase(t) })
	h.MemberURL = func(url, member string) string {
		if member != "" && member[len(member)-1]%2 == 1 {
			return gatewayURL(url)
		}
		return url
	}
	return h
}

func TestConformanceMixedSingle(t *testing.T) { drivertest.Run(t, mixedHarness(grpcSingleURL)) }

func TestConformanceMixedCluster(t *testing.T) { drivertest.Run(t, mixedHarness(grpcClusterURL)) }

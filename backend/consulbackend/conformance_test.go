package consulbackend

import (
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
)

// harness runs the conformance suite in a fresh namespace of the agent
// base returns; ExpireSession destroys the member's session as an
// operator (or an expiry) would.
func harness(base func(testing.TB) string) drivertest.Harness {
	return drivertest.Harness{
		NewURL: func(t testing.TB) string { return nsURL(base(t)) },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			t.Helper()
			if n := destroyMember(t, b.Config().Redacted, b.MemberID()); n == 0 {
				t.Fatalf("no session of member %q found to destroy", b.MemberID())
			}
		},
	}
}

func TestConformanceSingle(t *testing.T) { drivertest.Run(t, harness(singleURL)) }

func TestConformanceCluster(t *testing.T) { drivertest.Run(t, harness(clusterURL)) }

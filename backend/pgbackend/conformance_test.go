package pgbackend

import (
	"testing"

	"github.com/baton-go/baton/backend/drivertest"
)

// TestConformance runs the conformance suite on the TCP server, each
// subtest in a schema of its own, with a 5 s session timeout.
func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL:        func(t testing.TB) string { return isolate(t, serverURL(t), "timeout", "5") },
		ExpireSession: terminate,
	})
}

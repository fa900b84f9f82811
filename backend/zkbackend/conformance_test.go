package zkbackend

import (
	"testing"

	"github.com/baton-go/baton/backend/drivertest"
)

// harness runs the conformance suite against the servers of url, with a
// 5 s session timeout.
func harness(url func(testing.TB) string) drivertest.Harness {
	return drivertest.Harness{
		NewURL:        func(t testing.TB) string { return isolate(t, url(t), "timeout", "5") },
		ExpireSession: expireSession,
	}
}

func TestConformanceStandalone(t *testing.T) { drivertest.Run(t, harness(standaloneURL)) }

func TestConformanceEnsemble(t *testing.T) { drivertest.Run(t, harness(ensembleURL)) }

// TestConformanceTooz runs the suite on the compat=tooz layout (tooz's
// znodes and kazoo's Lock recipe).
func TestConformanceTooz(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL:        func(t testing.TB) string { return isolate(t, standaloneURL(t), "timeout", "5", "compat", "tooz") },
		ExpireSession: expireSession,
	})
}

package memcachedbackend

import (
	"testing"

	"github.com/baton-go/baton/backend/drivertest"
)

// conformanceOptions shorten the session TTL so that the suite's waits
// for an expired or lost session take seconds, not minutes.
var conformanceOptions = []string{"membership_timeout=3"}

func TestConformance(t *testing.T) { testConformance(t, serverURL(t)) }

// testConformance runs the suite on the servers of base.
func testConformance(t *testing.T, base string) {
	drivertest.Run(t, drivertest.Harness{
		NewURL:        func(t testing.TB) string { return freshURL(t, base, conformanceOptions...) },
		ExpireSession: expireSession,
	})
}

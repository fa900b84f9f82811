package mysqlbackend

import (
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
)

// TestConformance runs the conformance suite on MariaDB over TCP, with a
// 5 s session timeout and a 50 ms poll interval.
func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL:        func(t testing.TB) string { return isolate(t, mysqlURL(t)) },
		ExpireSession: killSession,
		Options:       []backend.Option{backend.WithPollInterval(50 * time.Millisecond)},
	})
}

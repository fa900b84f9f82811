package membackend_test

import (
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/backend/membackend"
)

// TestConformance runs the conformance suite, each subtest on a store of
// its own.
func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string { return "mem://" + newStore(t) },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			name, ok := membackend.StoreName(b)
			if !ok {
				t.Fatalf("member %q is not connected to a mem:// store", b.MemberID())
			}
			if err := membackend.ExpireSession(name, b.MemberID()); err != nil {
				t.Fatalf("expire session: %v", err)
			}
		},
		Options: []backend.Option{backend.WithPollInterval(10 * time.Millisecond)},
	})
}

// The conformance suite on lease mode: TTL liveness renewed by the
// Backend, locks bound to the session lease.
func TestConformanceLease(t *testing.T) {
	drivertest.Run(t, leaseHarness("ttl=2s"))
}

// The conformance suite on lease mode with locks of their own lease,
// refreshed by the Backend (as on Redis).
func TestConformanceLeaseOwnLocks(t *testing.T) {
	drivertest.Run(t, leaseHarness("ttl=2s&lock_ttl=2s"))
}

func leaseHarness(query string) drivertest.Harness {
	return drivertest.Harness{
		NewURL: func(t testing.TB) string { return "mem://" + newStore(t) + "?" + query },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			name, _ := membackend.StoreName(b)
			if err := membackend.ExpireSession(name, b.MemberID()); err != nil {
				t.Fatalf("expire session: %v", err)
			}
		},
		Options: []backend.Option{backend.WithPollInterval(10 * time.Millisecond)},
	}
}

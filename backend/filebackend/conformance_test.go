//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend_test

import (
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/backend/filebackend"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string { return newURL(t, "check_interval=10ms") },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			if err := filebackend.ExpireSession(b.Config().String(), b.MemberID()); err != nil {
				t.Fatalf("expire session of %q: %v", b.MemberID(), err)
			}
		},
		Options: []backend.Option{backend.WithPollInterval(20 * time.Millisecond)},
	})
}

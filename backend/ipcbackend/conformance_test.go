//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/backend/ipcbackend"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string { return newURL(t, "check_interval=10ms") },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			if err := ipcbackend.ExpireSession(b.Config().String(), b.MemberID()); err != nil {
				t.Fatalf("expire session of %q: %v", b.MemberID(), err)
			}
		},
		Options: []backend.Option{backend.WithPollInterval(20 * time.Millisecond)},
	})
}

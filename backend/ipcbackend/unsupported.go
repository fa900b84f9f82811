//go:build !(linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x))

package ipcbackend

import (
	"context"
	"fmt"
	"runtime"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// open fails: System V IPC is driven through raw Linux system calls, on
// 64-bit architectures only.
func open(_ context.Context, cfg *driver.Config) (driver.Conn, error) {
	if _, err := resolve(cfg); err != nil {
		return nil, err
	}
	return nil, driver.Wrap(driver.CodeUnimplemented, errUnsupported())
}

func errUnsupported() error {
	return fmt.Errorf("ipc:// is not supported on this OS (%s/%s): it needs Linux on a 64-bit architecture", runtime.GOOS, runtime.GOARCH)
}

// ExpireSession is not supported on this system: it returns a
// *backend.Error coded unimplemented.
func ExpireSession(rawURL, memberID string) error {
	return &backend.Error{Code: driver.CodeUnimplemented, Op: "expire session", Err: errUnsupported()}
}

// RemoveNamespace is not supported on this system: it returns a
// *backend.Error coded unimplemented.
func RemoveNamespace(rawURL string) error {
	return &backend.Error{Code: driver.CodeUnimplemented, Op: "remove ipc namespace", Err: errUnsupported()}
}

//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filebackend

import (
	"context"
	"fmt"
	"runtime"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// watchKind is nominal here: connections cannot be opened.
const watchKind = driver.WatchPoll

// open fails: this system has no flock(2) with the semantics the driver
// needs.
func open(_ context.Context, cfg *driver.Config) (driver.Conn, error) {
	if _, err := resolve(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path, cfg.Options); err != nil {
		return nil, err
	}
	return nil, driver.Errorf(driver.CodeUnimplemented, "file:// is not supported on %s", runtime.GOOS)
}

// ExpireSession is not supported on this system: it returns a
// *backend.Error coded unimplemented.
func ExpireSession(rawURL, memberID string) error {
	return &backend.Error{Code: driver.CodeUnimplemented, Op: "expire session",
		Err: fmt.Errorf("file:// is not supported on %s", runtime.GOOS)}
}

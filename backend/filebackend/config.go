package filebackend

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// settings are a connection's resolved configuration.
type settings struct {
	root          string // DIR/namespace
	timeout       time.Duration
	checkInterval time.Duration
	lockRetry     time.Duration
	fsync         bool
}

// resolve checks the parts of a parsed file:// URL and returns the
// settings. Everything it rejects is coded CodeInvalidArgument.
func resolve(user string, passwordSet bool, hosts []string, path string, opts driver.Values) (settings, error) {
	bad := func(format string, args ...any) (settings, error) {
		return settings{}, driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	switch {
	case user != "" || passwordSet:
		return bad("file:// takes no user information")
	case len(hosts) > 1 || (len(hosts) == 1 && !strings.EqualFold(hosts[0], "localhost")):
		return bad("file:// takes no host (got %q); write the directory as an absolute path with three slashes: file:///var/lib/dir",
			strings.Join(hosts, ","))
	case path == "" || !strings.HasPrefix(path, "/"):
		return bad("file:// needs an absolute directory: file:///var/lib/dir")
	case strings.ContainsRune(path, 0):
		return bad("directory contains NUL")
	}
	ns := opts.String(optNamespace)
	if err := checkNamespace(ns); err != nil {
		return settings{}, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optNamespace, Reason: err.Error()})
	}
	return settings{
		root:          filepath.Join(filepath.Clean(path), ns),
		timeout:       opts.Duration(optTimeout),
		checkInterval: opts.Duration(optCheckInterval),
		lockRetry:     opts.Duration(optLockRetry),
		fsync:         opts.Bool(optFsync),
	}, nil
}

// checkNamespace accepts one path component that is neither "." nor "..".
func checkNamespace(ns string) error {
	switch {
	case ns == "":
		return errors.New("is empty")
	case ns == "." || ns == "..":
		return fmt.Errorf("%q is not a directory name", ns)
	case strings.ContainsAny(ns, "/\x00"):
		return errors.New("must be one path component (no '/')")
	case len(ns) > 200:
		return errors.New("is longer than 200 bytes")
	}
	return nil
}

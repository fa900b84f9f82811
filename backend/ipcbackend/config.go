package ipcbackend

import (
	"errors"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// settings are a connection's resolved configuration.
type settings struct {
	keys          keys
	timeout       time.Duration
	checkInterval time.Duration
	segmentSize   int
	lockSlots     int
}

// maxNamespaceLen bounds the namespace (it is stored in the segment).
const maxNamespaceLen = 200

// resolve checks the parts of a parsed ipc:// URL and returns the
// settings. Everything it rejects is coded CodeInvalidArgument.
func resolve(cfg *driver.Config) (settings, error) {
	bad := func(format string, args ...any) (settings, error) {
		return settings{}, driver.Errorf(driver.CodeInvalidArgument, format, args...)
	}
	switch {
	case cfg.Username != "" || cfg.PasswordSet:
		return bad("ipc:// takes no user information")
	case len(cfg.Hosts) > 1 || (len(cfg.Hosts) == 1 && cfg.Hosts[0] != "" && !strings.EqualFold(cfg.Hosts[0], "localhost")):
		return bad("ipc:// takes no host (got %q): System V IPC is local to one host", strings.Join(cfg.Hosts, ","))
	case cfg.Path != "" && cfg.Path != "/":
		return bad("ipc:// takes no path (got %q); use the namespace option", cfg.Path)
	}
	ns := cfg.Options.String(optNamespace)
	if err := checkNamespace(ns); err != nil {
		return settings{}, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optNamespace, Reason: err.Error()})
	}
	s := settings{
		keys:          keys{ns: ns},
		timeout:       cfg.Options.Duration(optTimeout),
		checkInterval: cfg.Options.Duration(optCheckInterval),
		segmentSize:   cfg.Options.Int(optSegmentSize),
		lockSlots:     cfg.Options.Int(optLockSlots),
	}
	if need := headerSize + s.lockSlots*slotSize + 2*minBlob; s.segmentSize < need {
		return settings{}, driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optSegmentSize,
			Reason: "too small for " + optLockSlots + " lock records and the group state"})
	}
	return s, nil
}

// checkNamespace accepts at most maxNamespaceLen bytes without NUL.
func checkNamespace(ns string) error {
	switch {
	case len(ns) > maxNamespaceLen:
		return errors.New("is longer than 200 bytes")
	case strings.ContainsRune(ns, 0):
		return errors.New("contains NUL")
	}
	return nil
}

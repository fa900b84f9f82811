package backend

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/baton-go/baton/backend/driver"
)

// MaxNameLen is the longest group ID, member ID or lock name, in bytes.
const MaxNameLen = 1024

// MaxCapabilitiesLen is the largest capabilities value, in bytes. Every
// driver stores at least this much (Consul's KV limit is 512 KiB).
const MaxCapabilitiesLen = 256 << 10

// checkName validates a user-chosen name.
func checkName(what, name string) error {
	if name != "" && len(name) <= MaxNameLen && utf8.ValidString(name) && strings.IndexByte(name, 0) < 0 {
		return nil
	}
	op := "check " + what
	switch {
	case name == "":
		return newError(driver.CodeInvalidArgument, op, errors.New("empty"))
	case len(name) > MaxNameLen:
		return newError(driver.CodeInvalidArgument, op, fmt.Errorf("%d bytes; at most %d", len(name), MaxNameLen))
	case !utf8.ValidString(name):
		return newError(driver.CodeInvalidArgument, op, errors.New("not valid UTF-8"))
	}
	for _, r := range name {
		if r == 0 {
			return newError(driver.CodeInvalidArgument, op, errors.New("contains NUL"))
		}
	}
	return nil
}

func checkCaps(caps []byte) error {
	if len(caps) > MaxCapabilitiesLen {
		return newError(driver.CodeInvalidArgument, "check capabilities",
			fmt.Errorf("%d bytes; at most %d", len(caps), MaxCapabilitiesLen))
	}
	return nil
}

// Internal key spaces: user lock names and leader locks never collide.
const (
	userLockPrefix   = "l/"
	leaderLockPrefix = "e/"
)

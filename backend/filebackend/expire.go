//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// ExpireSession ends, from outside, every session of member memberID in
// the directory and namespace of the file:// connection string rawURL, as
// if it had expired: it removes their session files. Every other
// connection sees the member gone at once (its memberships are no longer
// listed and Holder no longer reports its locks); the owning connection
// notices within its check_interval, then releases its locks, removes its
// memberships and reports its session lost (its Backend's Done closes
// with an error matching backend.ErrLost). It is meant for fault-injection
// tests and for administrators. It does not block. Its errors are
// *backend.Error values: not found (wrapping ErrNoSession) when the member
// has no session there, invalid argument for a bad connection string.
//
// With compat=tooz (tooz's layout, where a member is its files) it removes
// the member's files in every group, so tooz and baton stop listing it at
// once, and ends this process's connections of that member at once (a
// connection in another process ends at its next Renew, finding its
// member file gone).
func ExpireSession(rawURL, memberID string) error {
	cfg, err := backend.ParseURL(rawURL)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		code, _ := driver.CodeOf(err)
		return &backend.Error{Code: code, Op: "expire session of " + strconv.Quote(memberID), Err: err}
	}
	if cfg.Driver.CanonicalScheme() != scheme {
		return fail(driver.Errorf(driver.CodeInvalidArgument, "%s is not a file:// connection string", cfg.Redacted))
	}
	s, err := resolve(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path, cfg.Options)
	if err != nil {
		return fail(err)
	}
	if cfg.Options.String("compat") == driver.CompatTooz {
		n, err := expireTooz(filepath.Clean(cfg.Path), memberID)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return fail(driver.Errorf(driver.CodeNotFound, "%w in %s", ErrNoSession, cfg.Path))
		}
		return nil
	}
	l := newLayout(s.root)
	ents, err := os.ReadDir(l.sessions)
	if err != nil {
		return fail(ioErr("list sessions", err))
	}
	n := 0
	for _, e := range ents {
		if _, ok := parseSessionName(e.Name()); !ok {
			continue
		}
		si, err := readSessionInfo(l, e.Name())
		if err != nil || si.Member != memberID {
			continue
		}
		if err := os.Remove(l.sessionPath(e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(ioErr("remove session", err))
		}
		n++
	}
	if n == 0 {
		return fail(driver.Errorf(driver.CodeNotFound, "%w in %s", ErrNoSession, l.root))
	}
	return nil
}

//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"strconv"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// ExpireSession ends every session of memberID in the namespace of the
// ipc:// connection string rawURL, as ipcrm would: it removes their
// session semaphores (and their records). Other processes see the member
// gone at once; its own connections notice within check_interval, then
// release their locks and report the session lost. It returns a
// *backend.Error coded not found (wrapping ErrNoSession) when the member
// has no session there. Fault injection for tests.
func ExpireSession(rawURL, memberID string) error {
	fail := func(err error) error {
		code, _ := driver.CodeOf(err)
		return &backend.Error{Code: code, Op: "expire session of " + strconv.Quote(memberID), Err: err}
	}
	cfg, err := backend.ParseURL(rawURL)
	if err != nil {
		return err
	}
	if cfg.Driver.CanonicalScheme() != scheme {
		return fail(driver.Errorf(driver.CodeInvalidArgument, "%s is not an ipc:// connection string", cfg.Redacted))
	}
	s, err := resolve(&driver.Config{Username: cfg.Username, PasswordSet: cfg.PasswordSet, Hosts: cfg.Hosts,
		Path: cfg.Path, Options: cfg.Options})
	if err != nil {
		return fail(err)
	}
	st, err := openStore(context.Background(), s)
	if err != nil {
		return fail(err)
	}
	defer st.detach()
	state, err := st.readLocked()
	if err != nil {
		st.unlock()
		return fail(err)
	}
	n := 0
	for id, rec := range state.Sessions {
		if rec.Member != memberID {
			continue
		}
		if sid, err := semget(rec.Key, 0, 0); err == nil && sid == rec.SemID {
			_ = semRemove(sid)
		}
		delete(state.Sessions, id)
		n++
	}
	prune(state)
	if len(state.Sessions) == 0 && len(state.Groups) == 0 {
		st.removeAll(zap.NewNop()) // nothing is left: the namespace goes, as on a last Close
	} else {
		err = st.writeLocked(state)
		st.unlock()
	}
	if err != nil {
		return fail(err)
	}
	if n == 0 {
		return fail(driver.Errorf(driver.CodeNotFound, "%w in namespace %q", ErrNoSession, s.keys.ns))
	}
	return nil
}

// RemoveNamespace removes every System V object of the namespace of the
// ipc:// connection string rawURL: its segment (groups, members, lock
// table), its mutex and its lock semaphores that are free. It fails with a
// *backend.Error coded unavailable while a baton connection of the
// namespace is alive, and does nothing when the namespace does not
// exist. Use it to drop groups that nobody will delete; `ipcs` and
// `ipcrm` remove what a crashed process left elsewhere (see the package
// documentation).
func RemoveNamespace(rawURL string) error {
	fail := func(err error) error {
		code, _ := driver.CodeOf(err)
		return &backend.Error{Code: code, Op: "remove ipc namespace", Err: err}
	}
	cfg, err := backend.ParseURL(rawURL)
	if err != nil {
		return err
	}
	if cfg.Driver.CanonicalScheme() != scheme {
		return fail(driver.Errorf(driver.CodeInvalidArgument, "%s is not an ipc:// connection string", cfg.Redacted))
	}
	s, err := resolve(&driver.Config{Username: cfg.Username, PasswordSet: cfg.PasswordSet, Hosts: cfg.Hosts,
		Path: cfg.Path, Options: cfg.Options})
	if err != nil {
		return fail(err)
	}
	st, err := openStore(context.Background(), s)
	if err != nil {
		return fail(err)
	}
	defer st.detach()
	state, err := st.readLocked()
	if err != nil {
		st.unlock()
		return fail(err)
	}
	prune(state)
	if n := len(state.Sessions); n > 0 {
		_ = st.writeLocked(state)
		st.unlock()
		return fail(driver.Errorf(driver.CodeUnavailable, "namespace %q has %d live sessions", s.keys.ns, n))
	}
	if cfg.Options.String("compat") == driver.CompatTooz && s.keys.ns != "" {
		// tooz's group list and internal lock of this (non-tooz)
		// namespace; the empty namespace's are tooz's, left alone.
		s.keys.removeToozObjects()
	}
	st.removeAll(zap.NewNop())
	return nil
}

package membackend

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
)

// ErrNoConn is returned by the fault-injection functions when the store
// has no open connection of the member.
var ErrNoConn = errors.New("membackend: no open connection of that member in that store")

// connsOf returns the store called name and the connections of member in
// it that match keep, or ErrNoConn when there are none. The caller holds
// nothing; on success it receives the store with faultMu and mu locked.
func connsOf(name, memberID string, keep func(*conn) bool) (*store, []*conn, error) {
	s := lookupStore(name)
	if s == nil {
		return nil, nil, fmt.Errorf("%w (store %q does not exist)", ErrNoConn, name)
	}
	s.faultMu.Lock()
	s.mu.Lock()
	var out []*conn
	found := false
	for c := range s.conns {
		if c.member != memberID || c.closed {
			continue
		}
		found = true
		if keep(c) {
			out = append(out, c)
		}
	}
	if !found {
		s.mu.Unlock()
		s.faultMu.Unlock()
		return nil, nil, fmt.Errorf("%w (store %q, member %q)", ErrNoConn, name, memberID)
	}
	return s, out, nil
}

// ExpireSession expires the session of every open connection of memberID
// in the store called name, as a server whose session timed out would: at
// once, the member leaves every group it joined (watchers see it leave),
// its locks are released (each goes to its first waiter, with a larger
// fencing token), its blocking calls return, every later call of those
// connections fails with an error coded lost that wraps
// ErrSessionExpired (Unlock and RefreshLock: coded not held, since the
// grant expired), and each connection reports the loss to its
// Backend (Observer.Lost), which closes the Backend's Done channel and
// cancels its grants. The connections stay open until closed. Expiring an
// expired session does nothing. It returns ErrNoConn when the store has no
// open connection of memberID. Safe for concurrent use; it does not block.
func ExpireSession(name, memberID string) error {
	s, cs, err := connsOf(name, memberID, func(c *conn) bool { return c.lost == nil })
	if err != nil {
		return err
	}
	defer s.faultMu.Unlock()
	cause := fmt.Errorf("%w: store %q, member %q", ErrSessionExpired, name, memberID)
	for _, c := range cs {
		c.lost = cause
		c.endSessionLocked()
		close(c.gone)
		c.signalLocked()
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.log.Info("mem session expired by fault injection")
		c.obs.Lost(cause)
	}
	return nil
}

// SetUnreachable cuts every open connection of memberID in the store
// called name off from it (on) or reconnects them (off). While cut off,
// every call of those connections, blocking calls under way included,
// fails with an error coded unavailable that wraps ErrUnreachable, while
// the store keeps the member's session, locks and memberships, as a
// server does while a session is within its timeout. Each connection
// reports the change to its Backend: Observer.Suspended when cut off (the
// Backend then cancels its grants), Observer.Resumed when reconnected
// unless its session expired meanwhile. Setting the current state again
// does nothing. It returns ErrNoConn when the store has no open connection
// of memberID. Safe for concurrent use; it does not block.
func SetUnreachable(name, memberID string, on bool) error {
	s, cs, err := connsOf(name, memberID, func(c *conn) bool { return c.unreachable != on })
	if err != nil {
		return err
	}
	defer s.faultMu.Unlock()
	var notify []*conn
	for _, c := range cs {
		c.unreachable = on
		if on {
			c.cuts++
		}
		c.signalLocked()
		if c.lost == nil {
			notify = append(notify, c)
		}
	}
	s.mu.Unlock()
	cause := fmt.Errorf("%w: store %q, member %q", ErrUnreachable, name, memberID)
	for _, c := range notify {
		c.log.Info("mem reachability changed by fault injection", zap.Bool("unreachable", on))
		if on {
			c.obs.Suspended(cause)
		} else {
			c.obs.Resumed()
		}
	}
	return nil
}

// SetDelay makes every later call of every open connection of memberID in
// the store called name wait d before it runs (0 removes the delay). The
// wait honours the call's context and ends early when the connection is
// closed or its session expires; Close itself is never delayed. It returns
// ErrNoConn when the store has no open connection of memberID. Safe for
// concurrent use; it does not block.
func SetDelay(name, memberID string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("membackend: negative delay %v", d)
	}
	s, cs, err := connsOf(name, memberID, func(*conn) bool { return true })
	if err != nil {
		return err
	}
	defer s.faultMu.Unlock()
	defer s.mu.Unlock()
	for _, c := range cs {
		c.delay = d
	}
	return nil
}

// StoreName returns the name of the store b is connected to, for the
// fault-injection functions, and false when b was not opened on mem://.
func StoreName(b *backend.Backend) (string, bool) {
	cfg := b.Config()
	if cfg.Driver.CanonicalScheme() != scheme {
		return "", false
	}
	name, err := storeName(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path)
	return name, err == nil
}

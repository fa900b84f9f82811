package membackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Errors wrapped by the driver's classified errors; reach them with
// errors.Is.
var (
	// ErrSessionExpired is the cause of a session expired by
	// ExpireSession: every later call of the connection fails with an
	// error coded lost that wraps it.
	ErrSessionExpired = errors.New("mem session expired")
	// ErrUnreachable is wrapped by the errors, coded unavailable, of
	// every call made while SetUnreachable is on.
	ErrUnreachable = errors.New("mem store unreachable")
	// ErrConnClosed is wrapped by the errors, coded canceled, of calls on
	// a closed connection and of blocking calls that Close interrupted.
	ErrConnClosed = errors.New("mem connection closed")
)

var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.SharedLocker  = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// conn is one connection to a store, acting as one member. Every method is
// safe for concurrent use; the driver starts no goroutine: blocking calls
// wait in their caller's goroutine.
type conn struct {
	s      *store
	member string
	obs    driver.SessionObserver
	log    *zap.Logger

	// Guarded by s.mu.
	closed      bool
	lost        error // the cause, once the session expired
	unreachable bool
	cuts        uint64 // how many times unreachable was switched on
	delay       time.Duration
	changed     chan struct{} // closed and replaced on every state change
	gone        chan struct{} // closed once, when lost or closed
	grants      map[*grant]struct{}
	joined      map[string]struct{} // groups with a membership this conn created
	faults      map[Op]*fault
	drops       uint64    // how many times DropWatches hit this conn
	liveUntil   time.Time // lease mode: the session's expiry

	// Set at open.
	clock   driver.Clock
	ttl     time.Duration // lease mode when positive
	lockTTL time.Duration
	// sessionLiveness: lease mode reported as a session backend's timeout.
	sessionLiveness bool
}

// open is the driver's OpenFunc.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	name, err := storeName(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path)
	if err != nil {
		return nil, err
	}
	c := &conn{
		member:  cfg.MemberID,
		obs:     cfg.Observer,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		ttl:     cfg.Options.Duration(optTTL),
		lockTTL: cfg.Options.Duration(optLockTTL),

		sessionLiveness: cfg.Options.String(optLiveness) == "session",
		changed:         make(chan struct{}),
		gone:            make(chan struct{}),
		grants:          map[*grant]struct{}{},
		joined:          map[string]struct{}{},
	}
	if c.clock == nil {
		c.clock = driver.RealClock{}
	}
	if err := checkLeaseMode(cfg.Options); err != nil {
		return nil, err
	}
	c.liveUntil = c.clock.Now().Add(c.ttl)
	attach(name, c)
	c.log.Debug("mem store attached", zap.String("store", name))
	return c, nil
}

// Session reports an in-process session that needs no renewal and never
// times out (TTL 0): it ends only with Close or ExpireSession. In lease
// mode it reports TTL liveness of the ttl option.
func (c *conn) Session() driver.SessionInfo {
	if c.leaseMode() {
		l := driver.LivenessTTL
		if c.sessionLiveness {
			l = driver.LivenessSession
		}
		return driver.SessionInfo{Liveness: l, TTL: c.ttl}
	}
	return driver.SessionInfo{Liveness: driver.LivenessSession}
}

// Renew checks that the session is usable and, in lease mode, extends its
// lease to ttl from now.
func (c *conn) Renew(ctx context.Context) error {
	if err := c.injected(ctx, OpRenew); err != nil {
		return err
	}
	if err := c.begin(ctx); err != nil {
		return err
	}
	if c.leaseMode() {
		c.liveUntil = c.clock.Now().Add(c.ttl)
	}
	c.s.mu.Unlock()
	return nil
}

// Close ends the session: it releases every lock of this connection
// (handing each to its first waiter), leaves every group it joined, and
// makes every blocking call of this connection return. It never waits for
// anything and is not delayed by SetDelay; it always succeeds, also while
// the connection is unreachable (the store then ends the session as a
// server would once it timed out). Closing twice is a no-op.
func (c *conn) Close(ctx context.Context) error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true // first, so that no lock is handed to c's own waiters
	if c.lost == nil {
		c.endSessionLocked()
		close(c.gone)
	}
	c.signalLocked()
	s.detachLocked(c)
	return nil
}

// endSessionLocked releases every lock and membership of c. c must already
// be unusable (closed or lost), so that none of its own waiters gets a
// released lock.
func (c *conn) endSessionLocked() {
	s := c.s
	keys := map[string]*lockState{}
	for g := range c.grants {
		ls := s.locks[g.key]
		ls.remove(g)
		delete(c.grants, g)
		keys[g.key] = ls
	}
	for key, ls := range keys {
		s.settleLocked(key, ls)
	}
	for name := range c.joined {
		gr := s.groups[name]
		for id, m := range gr.members {
			if m.owner == c {
				removeMemberLocked(name, gr, id)
			}
		}
	}
}

// signalLocked wakes every blocking call of c so it re-checks c's state.
func (c *conn) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// begin waits out any injected delay, then locks the store and checks
// that c may make a call. On success the caller holds s.mu and must
// unlock it.
func (c *conn) begin(ctx context.Context) error {
	s := c.s
	s.mu.Lock()
	if d := c.delay; d > 0 {
		gone := c.gone
		s.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-gone:
		}
		t.Stop()
		s.mu.Lock()
	}
	c.expireLocked()
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return ctxErr(err)
	}
	if err := c.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	return nil
}

// usableLocked returns the error every call of c fails with now, if any.
func (c *conn) usableLocked() error {
	switch {
	case c.closed:
		return driver.Wrap(driver.CodeCanceled, ErrConnClosed)
	case c.lost != nil:
		return driver.Wrap(driver.CodeLost, c.lost)
	case c.unreachable:
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%w: store %q", ErrUnreachable, c.s.name))
	}
	return nil
}

// checkLocked is usableLocked for blocking calls that woke up: they also
// fail when ctx is done, and when the connection was cut off since they
// started (cuts was c.cuts then), even if it is reachable again.
func (c *conn) checkLocked(ctx context.Context, cuts uint64) error {
	c.expireLocked()
	if err := c.usableLocked(); err != nil {
		return err
	}
	if c.cuts != cuts {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%w: store %q (connection was cut)", ErrUnreachable, c.s.name))
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	return nil
}

// ctxErr classifies a context error.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return driver.Wrap(driver.CodeDeadlineExceeded, err)
	}
	return driver.Wrap(driver.CodeCanceled, err)
}

// checkLeaseMode refuses an own lock lease without lease mode.
func checkLeaseMode(v driver.Values) error {
	if v.Duration(optLockTTL) > 0 && v.Duration(optTTL) == 0 {
		return driver.Errorf(driver.CodeInvalidArgument, "mem: %s needs lease mode (%s > 0)", optLockTTL, optTTL)
	}
	return nil
}

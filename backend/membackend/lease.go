package membackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Lease mode (URL option ttl > 0) makes the store behave like a TTL
// server such as Redis or etcd: a member stays alive for ttl after the
// store last received a renewal from it, and a lock held with a lease of
// its own (LockRequest.TTL, or the lock_ttl option) expires ttl after the
// store last received its acquisition or refresh. Expiry is evaluated on
// the clock of the connection that makes a call (Config.Clock: a test's
// fake clock drives it), at every call and at every expiry instant a
// blocked call is waiting for. An expired member leaves its groups and
// loses its session-bound locks exactly as ExpireSession does.

// Options of the mem:// driver.
const (
	optTTL      = "ttl"
	optLockTTL  = "lock_ttl"
	optLiveness = "liveness"
)

func options() []driver.OptionSpec {
	return []driver.OptionSpec{
		{
			Key: optTTL, Type: driver.Duration, Default: "0", Min: driver.MinValue(0),
			Doc: "0 (the default): a session that never times out, ended only by Close or ExpireSession. " +
				"Positive: lease mode, for tests of TTL paths: the member's liveness is a TTL renewed by the Backend " +
				"(Renew), and expires ttl after the store last received a renewal, on the connection's clock.",
		},
		{
			Key: optLiveness, Type: driver.String, Default: "ttl", Enum: []string{"ttl", "session"},
			Doc: "Lease mode only: how the Backend treats the lease. ttl: a TTL session (Redis, etcd), lost for good " +
				"when renewals fail for the whole TTL. session: a session backend's timeout (ZooKeeper, a database " +
				"session), whose renewals are pings: grants are cancelled when nothing was heard for TTL − margin, " +
				"and the session is suspended, not lost, until the store expires it.",
		},
		{
			Key: optLockTTL, Type: driver.Duration, Default: "0", Min: driver.MinValue(0),
			Doc: "Lease mode only: the own lease of every lock acquired without a TTL of its own (refreshed by the " +
				"Backend with RefreshLock). 0 binds such locks to the member's session lease, as etcd does.",
		},
	}
}

// Op names the calls fault injection can target.
type Op int

// The calls FailNext and DelayNext can target.
const (
	// OpRenew is Conn.Renew: the session's renewal.
	OpRenew Op = iota + 1
	// OpRefresh is Conn.RefreshLock: an own lease's refresh.
	OpRefresh
	// OpUnlock is Conn.Unlock.
	OpUnlock
	// OpAcquire is Conn.TryLock, TryLockShared and WaitLock.
	OpAcquire
)

// String names the call.
func (o Op) String() string {
	switch o {
	case OpRenew:
		return "renew"
	case OpRefresh:
		return "refresh"
	case OpUnlock:
		return "unlock"
	case OpAcquire:
		return "acquire"
	}
	return "unknown"
}

// ErrInjected is wrapped by the errors, coded unavailable, of calls failed
// by FailNext.
var ErrInjected = errors.New("mem fault injected")

// fault is a pending injection for one Op of one connection.
type fault struct {
	fail  int           // how many more calls fail
	delay int           // how many more calls are delayed
	by    time.Duration // by how much
}

// FailNext makes the next n calls of op by every open connection of
// memberID in the store called name fail with an error coded unavailable
// that wraps ErrInjected, without reaching the store (the lease is not
// extended). It returns ErrNoConn when there is no such connection.
func FailNext(name, memberID string, op Op, n int) error {
	return inject(name, memberID, op, func(f *fault) { f.fail += n })
}

// DelayNext makes the next n calls of op by every open connection of
// memberID in the store called name wait d on the connection's clock
// before they reach the store, as a slow network would: the store sees
// the request d late. A delayed call still honours its context.
func DelayNext(name, memberID string, op Op, n int, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("membackend: negative delay %v", d)
	}
	return inject(name, memberID, op, func(f *fault) { f.delay, f.by = f.delay+n, d })
}

// DropWatches ends every group and holder watch of every open connection
// of memberID in the store called name with an error coded unavailable,
// as a broken stream would; the Backend restarts them and reports a
// resync. Changes made before the restart are not lost: they show in the
// new snapshot.
func DropWatches(name, memberID string) error {
	s, cs, err := connsOf(name, memberID, func(*conn) bool { return true })
	if err != nil {
		return err
	}
	defer s.faultMu.Unlock()
	defer s.mu.Unlock()
	for _, c := range cs {
		c.drops++
		c.signalLocked()
	}
	return nil
}

func inject(name, memberID string, op Op, set func(*fault)) error {
	if op < OpRenew || op > OpAcquire {
		return fmt.Errorf("membackend: unknown op %d", op)
	}
	s, cs, err := connsOf(name, memberID, func(*conn) bool { return true })
	if err != nil {
		return err
	}
	defer s.faultMu.Unlock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if c.faults == nil {
			c.faults = map[Op]*fault{}
		}
		f := c.faults[op]
		if f == nil {
			f = &fault{}
			c.faults[op] = f
		}
		set(f)
	}
	return nil
}

// injected applies a pending fault of op before a call reaches the store.
func (c *conn) injected(ctx context.Context, op Op) error {
	s := c.s
	s.mu.Lock()
	f := c.faults[op]
	var fail bool
	var delay time.Duration
	switch {
	case f == nil:
	case f.fail > 0:
		f.fail--
		fail = true
	case f.delay > 0:
		f.delay--
		delay = f.by
	}
	gone := c.gone
	s.mu.Unlock()
	if fail {
		c.log.Debug("mem call failed by fault injection", zap.Stringer("op", op))
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%w: %s", ErrInjected, op))
	}
	if delay > 0 {
		t := c.clock.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
			return ctxErr(ctx.Err())
		case <-gone:
		}
	}
	return nil
}

// leaseMode reports whether the connection's store counts TTLs.
func (c *conn) leaseMode() bool { return c.ttl > 0 }

// expireLocked ends, at instant now, every session whose lease ran out
// and every own-lease grant that was not refreshed in time. The caller
// holds s.mu.
func (s *store) expireLocked(now time.Time) []*conn {
	var lost []*conn
	for c := range s.conns {
		if c.ttl == 0 || c.closed || c.lost != nil || now.Before(c.liveUntil) {
			continue
		}
		c.lost = fmt.Errorf("%w: store %q, member %q: lease of %v not renewed since %s",
			ErrSessionExpired, s.name, c.member, c.ttl, c.liveUntil.Add(-c.ttl).Format(time.RFC3339Nano))
		c.endSessionLocked()
		close(c.gone)
		c.signalLocked()
		lost = append(lost, c)
	}
	for key, ls := range s.locks {
		var expired []*grant
		for _, g := range ls.all() {
			if g.ttl > 0 && !now.Before(g.expires) {
				expired = append(expired, g)
			}
		}
		for _, g := range expired {
			ls.remove(g)
			delete(g.c.grants, g)
		}
		if len(expired) > 0 {
			s.settleLocked(key, ls)
		}
	}
	return lost
}

// expireLocked runs the store's expiry on c's clock. The caller holds
// s.mu; the observers of expired sessions are told with s.mu released,
// which is held again on return.
func (c *conn) expireLocked() {
	s := c.s
	if !s.leased {
		return
	}
	lost := s.expireLocked(c.clock.Now())
	if len(lost) == 0 {
		return
	}
	s.mu.Unlock()
	for _, l := range lost {
		l.log.Info("mem session lease expired")
		l.obs.Lost(l.lost)
	}
	s.mu.Lock()
}

// nextExpiryLocked returns the earliest instant a session or an own lease
// of the store expires, or zero when nothing can.
func (s *store) nextExpiryLocked() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for c := range s.conns {
		if c.ttl > 0 && !c.closed && c.lost == nil {
			earlier(c.liveUntil)
		}
	}
	for _, ls := range s.locks {
		for _, g := range ls.all() {
			if g.ttl > 0 {
				earlier(g.expires)
			}
		}
	}
	return next
}

// expiryTimer returns a channel that fires when the store's next expiry
// is due on c's clock (nil when nothing can expire) and its stop func.
// The caller holds s.mu.
func (c *conn) expiryTimerLocked() (<-chan time.Time, func()) {
	next := c.s.nextExpiryLocked()
	if next.IsZero() {
		return nil, func() {}
	}
	t := c.clock.NewTimer(max(next.Sub(c.clock.Now()), 0))
	return t.C(), func() { t.Stop() }
}

package backend

import (
	"context"
	"errors"
	"strings"
	"time"
)

// GrantKind says whether a grant is a lock or a leadership.
type GrantKind int

// The kinds of grant.
const (
	GrantLock GrantKind = iota + 1
	GrantLeader
)

// String returns "lock" or "leader".
func (k GrantKind) String() string {
	if k == GrantLeader {
		return "leader"
	}
	return "lock"
}

// GrantEvent describes a grant for an Observer.
type GrantEvent struct {
	Kind GrantKind
	// Name is the lock name, or the group of a leadership.
	Name  string
	Token uint64
	// Held is how long the grant was held (Released, Lost): from when the
	// acquiring request was sent.
	Held time.Duration
	// Cause says why a grant was lost (it matches ErrLost; see
	// LossReasonOf for its reason).
	Cause error
}

// Observer receives a Backend's operational events, for metrics (see
// package metrics/prom). Methods are called synchronously from the
// Backend's goroutines and from callers' goroutines: they must be safe for
// concurrent use and return quickly, without calling the Backend. Session
// state changes are not part of it: register with OnSessionState.
//
// The default is no observer: each hook then costs one nil check.
type Observer interface {
	// GrantAcquired: a lock or leadership was granted.
	GrantAcquired(e GrantEvent)
	// GrantReleased: the holder released a grant it still held.
	GrantReleased(e GrantEvent)
	// GrantLost: a grant was lost or put in doubt; e.Cause says why.
	GrantLost(e GrantEvent)
	// LockWaited: a blocking Lock or Campaign ended after d, with the
	// grant (acquired) or without it.
	LockWaited(kind GrantKind, name string, d time.Duration, acquired bool)
	// Renewed: one session renewal (Renew round trip) took d; err is its
	// failure, nil on success.
	Renewed(d time.Duration, err error)
	// Refreshed: one refresh of a grant's own lease took d; err is its
	// failure, nil on success.
	Refreshed(kind GrantKind, name string, d time.Duration, err error)
	// WatchEvent: a membership watch delivered an event (EventResync
	// included).
	WatchEvent(group string, t EventType)
}

// WithObserver reports the Backend's grants, renewals, refreshes, lock
// waits and watch events to o (nil: none, the default).
func WithObserver(o Observer) Option {
	return optionFunc(func(opts *options) { opts.observer = o })
}

// LossReasonOf returns the short name of why a grant or session was lost:
// "expired", "suspended", "no-longer-held", "session-lost", or "other".
func LossReasonOf(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrSuspended):
		return "suspended"
	case errors.Is(err, ErrNoLongerHeld):
		return "no-longer-held"
	case errors.Is(err, ErrSessionLost):
		return "session-lost"
	}
	return "other"
}

func (g *Grant) kind() GrantKind {
	if strings.HasPrefix(g.key, leaderLockPrefix) {
		return GrantLeader
	}
	return GrantLock
}

func (g *Grant) event(cause error) GrantEvent {
	return GrantEvent{Kind: g.kind(), Name: g.name, Token: g.token, Held: g.b.o.clock.Now().Sub(g.sent), Cause: cause}
}

func (b *Backend) observeAcquired(g *Grant) {
	if b.o.observer != nil {
		b.o.observer.GrantAcquired(g.event(nil))
	}
}

// observeReleased reports a release of a grant that was still held (a lost
// one was reported when lost).
func (b *Backend) observeReleased(g *Grant, lostCause error) {
	if b.o.observer != nil && lostCause == nil {
		b.o.observer.GrantReleased(g.event(nil))
	}
}

func (b *Backend) observeLost(g *Grant, cause error) {
	if b.o.observer != nil {
		b.o.observer.GrantLost(g.event(cause))
	}
}

func (b *Backend) observeRenew(sent time.Time, err error) {
	if b.o.observer != nil {
		b.o.observer.Renewed(b.o.clock.Now().Sub(sent), err)
	}
}

func (b *Backend) observeRefresh(g *Grant, sent time.Time, err error) {
	if b.o.observer != nil {
		b.o.observer.Refreshed(g.kind(), g.name, b.o.clock.Now().Sub(sent), err)
	}
}

func (b *Backend) observeWatch(ev Event) {
	if b.o.observer != nil {
		b.o.observer.WatchEvent(ev.Group, ev.Type)
	}
}

// observedWait is waitGrant reporting how long the wait took.
func (b *Backend) observedWait(ctx context.Context, key, name string, op opName, o LockOptions) (*Grant, error) {
	if b.o.observer == nil {
		return b.waitGrant(ctx, key, name, op, o)
	}
	start := b.o.clock.Now()
	g, err := b.waitGrant(ctx, key, name, op, o)
	kind := GrantLock
	if strings.HasPrefix(key, leaderLockPrefix) {
		kind = GrantLeader
	}
	b.o.observer.LockWaited(kind, name, b.o.clock.Now().Sub(start), err == nil)
	return g, err
}

// observeSessionLost reports the grants that the session's loss (cause)
// ended: their contexts end with their parent's, not through lose.
func (b *Backend) observeSessionLost(cause error) {
	if b.o.observer == nil {
		return
	}
	b.mu.Lock()
	var ended []*Grant
	for g := range b.grants {
		if context.Cause(g.ctx.Context) == cause {
			ended = append(ended, g)
		}
	}
	b.mu.Unlock()
	for _, g := range ended {
		b.observeLost(g, cause)
	}
}

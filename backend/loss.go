package backend

import (
	"fmt"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Why a grant ended. The context cause of a lost grant (a lock, a term, a
// partition) matches ErrLost and exactly one of ErrExpired,
// ErrNoLongerHeld, ErrSuspended and ErrSessionLost; a grant given up
// matches ErrReleased or ErrClosed instead (both coded canceled). Each
// cause also wraps the last failure that led to it (the last renew or
// refresh error, the driver's disconnection cause), so errors.As reaches
// the native client's error.
var (
	// ErrExpired: the lease (the grant's own or the session's) may expire
	// within the safety margin: nothing was heard from the server for
	// TTL − margin since the last successful renewal or refresh was sent.
	ErrExpired error = &LossReason{"lease expired or may expire within the safety margin"}
	// ErrNoLongerHeld: the server no longer has the grant (a refresh found
	// it gone: broken, deleted, evicted, lost in a failover).
	ErrNoLongerHeld error = &LossReason{"no longer held on the server"}
	// ErrSuspended: the connection to the server was lost and the session
	// may expire before it comes back: every grant bound to it is in
	// doubt.
	ErrSuspended error = &LossReason{"connection lost; the session is in doubt"}
	// ErrSessionLost: the session ended for good (expired, revoked, closed
	// by the server); the Backend is unusable. Backend.Err matches it too.
	ErrSessionLost error = &LossReason{"session lost"}
)

// LossReason is the type of the loss reasons ErrExpired, ErrNoLongerHeld,
// ErrSuspended and ErrSessionLost. The errors that carry one are
// *Error values coded lost, so errors.Is matches both the reason and
// ErrLost.
type LossReason struct{ msg string }

// Error returns the reason's description.
func (r *LossReason) Error() string { return r.msg }

// lossError is the detail of a loss: its reason (one of the sentinels
// above), what was observed, and the last failure that led to it.
type lossError struct {
	reason error
	detail string
	last   error
}

func (e *lossError) Error() string {
	msg := e.reason.Error()
	if e.detail != "" {
		msg += " (" + e.detail + ")"
	}
	if e.last != nil {
		msg += ": " + e.last.Error()
	}
	return msg
}

func (e *lossError) Unwrap() []error {
	if e.last == nil {
		return []error{e.reason}
	}
	return []error{e.reason, e.last}
}

// lost builds the cause of a loss: an *Error coded lost, for op, matching
// reason and wrapping last.
func lost(op string, reason error, detail string, last error) error {
	return &Error{Code: driver.CodeLost, Op: op, Err: &lossError{reason: reason, detail: detail, last: last}}
}

// MinWatchRetryBudget is the shortest time a watch or a leader
// observation keeps retrying a failing source before it ends with the
// last error; the budget is twice the session TTL when that is longer.
const MinWatchRetryBudget = 30 * time.Second

// retryBudget ends a watch or an observation whose attempts kept failing
// for the whole budget, so that a source that cannot recover reaches the
// caller as the stream's Err instead of a log line.
type retryBudget struct {
	b     *Backend
	since time.Time // first failure of the current run; zero after a success
}

func (r *retryBudget) succeeded() { r.since = time.Time{} }

// failed records a failure; it returns the stream's error, coded as err,
// once failures lasted the budget, else nil.
func (r *retryBudget) failed(op string, err error) error {
	now := r.b.o.clock.Now()
	if r.since.IsZero() {
		r.since = now
	}
	budget := max(2*r.b.timing.TTL, MinWatchRetryBudget)
	if now.Sub(r.since) < budget {
		return nil
	}
	return &Error{Code: CodeOf(err), Op: op, Err: fmt.Errorf("failing for %v, the retry budget: %w", ms(now.Sub(r.since)), err)}
}

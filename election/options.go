package election

import (
	"fmt"
	"time"

	"github.com/baton-go/baton/backend"
)

// Option configures an Election.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	ttl         time.Duration
	margin      time.Duration
	maxPoll     time.Duration
	retryDelay  time.Duration
	onElected   func(Term)
	onDemoted   func(cause error)
	onNewLeader func(LeaderChange)
}

// WithTTL sets the leadership lease on TTL-based backends (zero: the
// backend's lock_timeout). Session-based backends ignore it.
func WithTTL(d time.Duration) Option { return optionFunc(func(o *options) { o.ttl = d }) }

// WithSafetyMargin sets how long before the lease could expire the term's
// context is cancelled (default: a fifth of the lease). Must be below the
// TTL.
func WithSafetyMargin(d time.Duration) Option {
	return optionFunc(func(o *options) { o.margin = d })
}

// WithMaxPollInterval caps the wait between campaign attempts on backends
// that wait by polling (250ms by default where the backend polls, the
// driver's own default where the driver does: memcached:// 10ms): it
// bounds how long a successor waits after a graceful resignation.
func WithMaxPollInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.maxPoll = d })
}

// WithRetryDelay sets the pause before Run campaigns again after a
// failed campaign (default 100ms).
func WithRetryDelay(d time.Duration) Option {
	return optionFunc(func(o *options) { o.retryDelay = d })
}

// OnElected registers a callback run (on Run's goroutine) when this member
// becomes leader, before the work function starts.
func OnElected(fn func(Term)) Option { return optionFunc(func(o *options) { o.onElected = fn }) }

// OnDemoted registers a callback run when this member stops leading, after
// the work function returned; cause says why (lost, resigned, cancelled).
func OnDemoted(fn func(cause error)) Option {
	return optionFunc(func(o *options) { o.onDemoted = fn })
}

// OnNewLeader registers a callback run, from a goroutine of Run, whenever
// the observed leader changes (including "no leader").
func OnNewLeader(fn func(LeaderChange)) Option {
	return optionFunc(func(o *options) { o.onNewLeader = fn })
}

func (o *options) validate() error {
	if o.ttl < 0 || o.margin < 0 || o.maxPoll < 0 || o.retryDelay < 0 {
		return fmt.Errorf("negative duration option: %w", backend.ErrInvalidArgument)
	}
	if o.retryDelay == 0 {
		o.retryDelay = 100 * time.Millisecond
	}
	return nil
}

func (o *options) lockOptions() backend.LockOptions {
	return backend.LockOptions{TTL: o.ttl, Margin: o.margin, MaxPoll: o.maxPoll}
}

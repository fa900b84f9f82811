package lock

import (
	"errors"
	"fmt"
	"time"

	"github.com/baton-go/baton/backend"
)

// Option configures a Lock.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	ttl     time.Duration
	margin  time.Duration
	maxPoll time.Duration
	shared  bool
}

// WithTTL sets the lease of the lock on TTL-based backends (Redis,
// memcached); zero, the default, uses the backend's lock_timeout option.
// Session-based backends ignore it: there the lock lives as long as the
// session. The backend refreshes the lease every third of the TTL.
func WithTTL(d time.Duration) Option { return optionFunc(func(o *options) { o.ttl = d }) }

// WithSafetyMargin sets how long before the lease could expire the grant
// is reported lost (its context cancelled). The lease is measured from when
// the acquiring or refreshing request was sent. It must be below the TTL;
// the default is a fifth of the lease.
func WithSafetyMargin(d time.Duration) Option {
	return optionFunc(func(o *options) { o.margin = d })
}

// WithMaxPollInterval caps the wait between attempts of Acquire on
// backends that wait by polling: 250ms by default where the backend polls
// (attempts start at 5ms and grow with jittered exponential backoff), and
// the driver's own default where the driver polls (memcached://: 10ms).
func WithMaxPollInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.maxPoll = d })
}

// Shared makes the handle take the lock shared (a read lock): shared
// grants coexist, and exclude exclusive ones. Acquiring returns an error
// matching backend.ErrUnimplemented on backends without shared locks
// (see backend.Characteristics().SharedLocks).
func Shared() Option { return optionFunc(func(o *options) { o.shared = true }) }

func (o *options) validate() error {
	switch {
	case o.ttl < 0 || o.margin < 0 || o.maxPoll < 0:
		return fmt.Errorf("negative duration option: %w", backend.ErrInvalidArgument)
	case o.ttl > 0 && o.ttl < 10*time.Millisecond:
		return errors.Join(fmt.Errorf("TTL %v is below 10ms", o.ttl), backend.ErrInvalidArgument)
	}
	return nil
}

func (o *options) lockOptions() backend.LockOptions {
	return backend.LockOptions{TTL: o.ttl, Margin: o.margin, Shared: o.shared, MaxPoll: o.maxPoll}
}

package etcdproto

import (
	"math"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// LeaseOptionSpecs returns the option specs of lock_timeout and
// membership_timeout, whose smaller value is the session lease TTL of
// both drivers (see LeaseTTL). Each call returns a new slice.
func LeaseOptionSpecs() []driver.OptionSpec {
	return []driver.OptionSpec{
		{
			Key: "lock_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(1),
			Doc: "How long a crashed holder keeps a lock. Locks live on the session lease, whose TTL is the smaller of lock_timeout and membership_timeout, rounded up to whole seconds.",
		},
		{
			Key: "membership_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: driver.MinValue(1),
			Doc: "How long a crashed member stays in its groups: the session lease TTL (the smaller of lock_timeout and membership_timeout, rounded up to whole seconds).",
		},
	}
}

// LeaseTTL returns the session lease TTL to request: the smaller of the
// options lock_timeout and membership_timeout, each defaulting to def
// (the timeout option). The server may grant more.
func LeaseTTL(o driver.Values, def time.Duration) time.Duration {
	lockTTL, memberTTL := def, def
	if o.IsSet("lock_timeout") {
		lockTTL = o.Duration("lock_timeout")
	}
	if o.IsSet("membership_timeout") {
		memberTTL = o.Duration("membership_timeout")
	}
	return min(lockTTL, memberTTL)
}

// LeaseSeconds rounds a TTL up to etcd's whole seconds, at least one.
func LeaseSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

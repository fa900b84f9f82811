package redisbackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	t := v.Duration("timeout")
	return driver.Schedule{SessionTTL: v.DurationOr("membership_timeout", t), LockTTL: v.DurationOr("lock_timeout", t)}
}

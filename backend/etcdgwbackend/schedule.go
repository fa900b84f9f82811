package etcdgwbackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	t := v.Duration("timeout")
	return driver.Schedule{SessionTTL: min(v.DurationOr("lock_timeout", t), v.DurationOr("membership_timeout", t)),
		Note: "locks and members live on the session lease; TTLs are rounded up to whole seconds"}
}

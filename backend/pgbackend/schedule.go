package pgbackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	return driver.Schedule{SessionTTL: v.Duration("timeout"),
		Note: "the session is the dedicated connection's: renewal is a ping on it"}
}

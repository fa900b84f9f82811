package consulbackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	return driver.Schedule{SessionTTL: v.Duration("ttl"),
		Note: "Consul may keep an unrenewed session up to twice its TTL: a successor can wait that long after a crash, never less than TTL"}
}

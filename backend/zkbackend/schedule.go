package zkbackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	return driver.Schedule{SessionTTL: v.Duration("timeout"),
		Note: "the server may negotiate another session timeout (2 to 20 ticks); the Backend uses the negotiated one, and renewal is a round trip on the session's connection"}
}

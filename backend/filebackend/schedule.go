package filebackend

import "github.com/baton-go/baton/backend/driver"

// schedule tells the timing model how a connection with options v is
// kept (docs/drivers.md and `baton url explain` show it).
func schedule(v driver.Values) driver.Schedule {
	if v.String("compat") == driver.CompatTooz {
		return driver.Schedule{SessionTTL: v.Duration(optTimeout),
			Note: "compat=tooz: tooz's liveness, a member file's mtime; renewal touches the member files, which count for timeout after the last touch"}
	}
	return driver.Schedule{SessionTTL: v.Duration(optTimeout), RenewInterval: v.Duration(optCheckInterval),
		Note: "the session is a held flock: \"renewal\" checks the session file, and a failing check (a hung network file system) for TTL − margin cancels grants"}
}

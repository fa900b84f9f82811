package ipcbackend

import "github.com/baton-go/baton/backend/driver"

// toozCharacteristics are the driver's characteristics; with compat=tooz
// tooz's holders take the lock semaphores without a token, and shared
// locks are gone (a baton shared hold would leave tooz's semaphore free).
func toozCharacteristics(v driver.Values) driver.Characteristics {
	c := info().Characteristics
	if v.String("compat") == driver.CompatTooz {
		c.Fencing = driver.FencingPartial
		c.SharedLocks = false
	}
	return c
}

const compatDoc = "tooz: groups are tooz's group list (the 1 KiB shared memory segment at tooz's ftok(\"GROUP_LIST\", \"_TOOZ_INTERNAL\"), msgpack, under tooz's IPC lock TOOZ_INTERNAL_LOCK), so tooz and baton create, list and delete the same groups; " +
	"locks are tooz's semaphores (as in every mode with the empty namespace), tooz's holders have no token (fencing partial) and shared locks are unavailable; " +
	"members and leaders stay in baton's segment (tooz's ipc driver has none). With a non-empty namespace every key, tooz's included, is the namespace's own, shared with no tooz process."

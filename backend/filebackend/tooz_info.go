package filebackend

import "github.com/baton-go/baton/backend/driver"

// checkTooz refuses what compat=tooz cannot honour: a namespace (tooz's
// layout lives in the directory itself).
func checkTooz(opts driver.Values) error {
	if opts.String("compat") == driver.CompatTooz && opts.IsSet(optNamespace) {
		return driver.Wrap(driver.CodeInvalidArgument, &driver.OptionError{Key: optNamespace,
			Reason: "has no meaning with compat=tooz: tooz's layout lives in the directory itself"})
	}
	return nil
}

// toozCharacteristics are the driver's characteristics; with compat=tooz
// they are those of tooz's layout: liveness is the mtime of member files
// (a TTL: timeout after the last heartbeat), watches poll, tooz's
// holders have no token.
func toozCharacteristics(v driver.Values) driver.Characteristics {
	c := info().Characteristics
	if v.String("compat") == driver.CompatTooz {
		c.NonTimeoutBased = false
		c.Liveness = driver.LivenessTTL
		c.Watch = driver.WatchPoll
		c.Fencing = driver.FencingPartial
	}
	return c
}

const compatDoc = "tooz: the directory is tooz's own (groups/SHA1(group)/.metadata and SHA1(member).raw in msgpack, .driver_lock, a lock NAME is the fcntl-locked file DIR/NAME), " +
	"so baton and tooz (file://) processes share groups, members, capabilities and locks (both ways, including shared locks, which exclude tooz's); " +
	"liveness becomes tooz's: a member counts while its file's mtime is within timeout (heartbeats touch it; a crashed member lingers for timeout), " +
	"watches poll, tooz's holders have no token (fencing partial), namespace is refused; leaders and names tooz cannot lock use baton's files under DIR/.baton."

package memcachedbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// scheme is the URL scheme this driver serves.
const scheme = "memcached"

// Defaults shared with tooz.
const (
	defaultTimeout   = "30"
	defaultNamespace = "baton"
	defaultPort      = "11211"
)

func init() { backend.Register(info()) }

// info is the driver's registration record.
func info() driver.Info {
	return driver.Info{
		Name:            "memcached",
		Schemes:         []string{scheme},
		Summary:         summary,
		URLForm:         urlForm,
		Examples:        examples(),
		Characteristics: characteristics(),
		CharacteristicsFor: func(v driver.Values) driver.Characteristics {
			if v.String("compat") == driver.CompatTooz {
				return toozCharacteristics()
			}
			return characteristics()
		},
		Options:  optionSpecs(),
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

const urlForm = `memcached://[host[:port]][,host2[:port2]...][?options]`

const summary = `memcached 1.6 or later (meta commands), one server or several, through github.com/bradfitz/gomemcache plus a small meta-command connection of the driver's own. ` +
	`The host defaults to localhost and the port to 11211; with several hosts, keys are spread over the servers by gomemcache's ServerList (CRC32 of the key modulo the number of servers), so every client must list the same servers in the same order. ` +
	`A lock is a key set held, compared with the CAS value of its free state (one round trip when this connection released it last, two otherwise), or added when absent; release sets it free again, compared with the grant's CAS value (never a blind delete), and refresh sets it again, compared, with a new expiry. ` +
	`Fencing tokens are EPOCH<<24|SEQ: SEQ counts grants in the key's value, EPOCH comes from a per-lock counter (meta arithmetic incr) drawn whenever the key is created, in the same write as the add; ` +
	`a counter created anew (after an eviction or a restart) starts at the server's clock in seconds times 256, above every earlier epoch unless more than 256 epochs a second were drawn, the old counter was created less than about two seconds before (the clock's resolution is a second), or the server's clock went back: fencing strength is "evictable", and Require(StrongFencing) refuses this driver. ` +
	`CAS values are compared only on the server run (process id and start time) they were read on. ` +
	`Liveness is a TTL key per connection (membership_timeout), touched every third of it; when it is gone (expired, evicted, or the server restarted empty) the session is reported lost. ` +
	`Groups and the list of groups are values updated by bounded gets/cas loops (a clear "contended" error after 64 conflicts); members are records of their own tied to the members' liveness keys and pruned when a group is listed or deleted. ` +
	`Watches poll (the backend diffs member lists with incarnations). Leadership is a lock with leader_timeout as its lease. ` +
	`memcached cannot notify a waiter: a blocked Lock or Campaign tries again after 1 ms, each wait half as long again, up to 10 ms (or lock.WithMaxPollInterval), with jitter; a try on a held lock is one read. ` +
	`Memcached may evict anything under memory pressure, groups and locks included: a refresh that finds its lock gone reports the grant lost (with its cause), an evicted group is reported as not found, an evicted member record as a member that left. ` +
	`Keys are NAMESPACE:KIND:NAME with names of at most 64 characters of [A-Za-z0-9._-] kept verbatim and every other name replaced by its SHA-256 (the full name is in the value), so keys stay within 250 bytes without spaces or control characters. ` +
	`tooz's options are accepted with tooz's meaning; executor is accepted and changes nothing (every call blocks its caller; the driver is safe for concurrent use).`

// characteristics are tooz's (across threads, processes and hosts;
// causal) plus TTL liveness, polled watches, evictable fencing and
// evictable data.
func characteristics() driver.Characteristics {
	return driver.Characteristics{
		DistributedAcrossThreads:   true,
		DistributedAcrossProcesses: true,
		DistributedAcrossHosts:     true,
		Causal:                     true,
		Liveness:                   driver.LivenessTTL,
		Watch:                      driver.WatchPoll,
		Fencing:                    driver.FencingEvictable,
		Evictable:                  true,
	}
}

// examples are connection strings that must parse: tooz's forms and
// baton's own.
func examples() []string {
	return []string{
		"memcached://localhost:11211",
		"memcached://127.0.0.1",
		"memcached://",
		"memcached://localhost:11212?timeout=10",
		"memcached://localhost?timeout=30&membership_timeout=10&lock_timeout=20&leader_timeout=15&max_pool_size=8&executor=threaded",
		"memcached://cache1:11211,cache2:11211,cache3?namespace=myapp",
		"memcached://[::1]:11211?socket_timeout=0.5",
	}
}

func optionSpecs() []driver.OptionSpec {
	positive := driver.MinValue(0.001)
	ttl := driver.MinValue(1)
	return []driver.OptionSpec{
		{Key: "timeout", Type: driver.Duration, Default: defaultTimeout, Min: ttl,
			Doc: "As in tooz: the default of membership_timeout, lock_timeout and leader_timeout (and the upper bound of socket_timeout)."},
		{Key: "membership_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: ttl,
			Doc: "How long a member stays alive without renewal: its liveness key lives this long plus one second (memcached counts whole seconds), touched every third of it."},
		{Key: "lock_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: ttl,
			Doc: "The lease of a lock when the caller gives no TTL; the backend refreshes it every third of it."},
		{Key: "leader_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: ttl,
			Doc: "The lease of a leadership (a lock of its own key space) when the caller gives no TTL."},
		{Key: "socket_timeout", Type: driver.Duration, DefaultDoc: "= min(timeout, membership_timeout/3)", Min: positive,
			Doc: "Dial, read and write timeout of every request, so that one request always ends well before the next renewal is due."},
		{Key: "max_pool_size", Type: driver.Int, Default: "0", Min: driver.MinValue(0),
			Doc: "As in tooz: the most connections to each server for meta commands (locks; a request waits for a free one), and the idle connections gomemcache keeps per server. 0 (tooz's None) means no limit, with 8 idle connections kept."},
		{Key: "namespace", Type: driver.String, Default: defaultNamespace,
			Doc: "Prefix of every key (NAMESPACE:...): 1 to 64 characters of [A-Za-z0-9._-]. With compat=tooz, tooz's keys have no prefix unless namespace is given (then tooz processes do not see them); baton's own fencing counters keep it."},
		{Key: "executor", Type: driver.String, Default: "threaded", Enum: []string{"threaded", "thread", "threading", "synchronous", "sync"},
			Doc: "Accepted for tooz compatibility; it has no effect (tooz runs calls on a one-thread executor; baton's calls block their caller and the driver is safe for concurrent use)."},
		driver.CompatOption(toozCompatDoc),
	}
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	s, err := parseSettings(cfg)
	if err == nil && cfg.Options.String("compat") == driver.CompatTooz {
		err = toozCheck(s)
	}
	return err
}

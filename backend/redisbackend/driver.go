package redisbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// The URL schemes this driver serves: rediss:// is redis:// with TLS.
const (
	schemeRedis  = "redis"
	schemeRediss = "rediss"
)

// Defaults shared with tooz.
const (
	defaultTimeout   = "30"
	defaultNamespace = "baton"
	defaultPort      = "6379"
	defaultSentinel  = "26379"
)

func init() { backend.Register(info()) }

// info is the driver's registration record.
func info() driver.Info {
	return driver.Info{
		Name:            "Redis",
		Schemes:         []string{schemeRedis, schemeRediss},
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

const urlForm = `redis://[[user]:password@]host[:port][/db][?options]
rediss://[[user]:password@]host[:port][/db][?options]        (TLS)
redis://[[user]:password@]/path/to/redis.sock[?options]        (unix socket)
redis://[[user]:password@]sentinel[:port][,sentinel2[:port]...]?sentinel=MASTER[&sentinel_fallback=host:port...][&options]`

const summary = `Redis 3.2 or later, standalone or behind Sentinel (not Redis Cluster), through github.com/redis/go-redis/v9. ` +
	`The port defaults to 6379 (26379 for sentinels); with no host the path is a unix socket; with a host, a path "/N" selects database N. ` +
	`With ?sentinel=MASTER the URL's hosts and every sentinel_fallback are sentinels, asked for the current master of MASTER; a failover is followed automatically. ` +
	`Locks are keys set with PX by a Lua script that also advances a per-lock counter to max(counter + 1, the server's TIME in microseconds): the fencing token. Release and refresh are Lua scripts comparing the token and the acquiring request's nonce. ` +
	`Shared locks are entries of a sorted set per lock, scored by their expiry in the server's clock. ` +
	`A lock has its own lease (lock_timeout unless the caller asks for another TTL), refreshed by the backend every third of it. ` +
	`Blocked acquirers wait on a pub/sub channel published by every release (in the same script), with a fallback retry when the blocking grant's lease runs out; ` +
	`a blocked Lock queues in arrival order (a sorted set per lock, each entry with a lease its waiter refreshes), and a release names the first live waiter, which alone tries at once; the others try too when the lock has not changed hands for a handover window (8 round trips, 10 to 250 ms), so a waiter that died costs a window. Campaigns do not queue. ` +
	`Liveness is a TTL key per connection (membership_timeout), renewed every third of it with one PEXPIRE; when the key is gone the session is reported lost. ` +
	`Groups are hashes of member records (capabilities, incarnation, joined and updated times) tied to the members' liveness keys: ` +
	`members whose key expired are pruned atomically when a group is listed or deleted, and by every watcher when the earliest liveness key of its group runs out, ` +
	`so a dead member never blocks a group's deletion and watchers learn of an expiry within milliseconds. ` +
	`Watches and leader observation are pushed over pub/sub; messages carry the group's version and every reconnect or gap leads to a fresh listing (a resync). ` +
	`Keyspace notifications are not used (managed Redis often forbids CONFIG SET). ` +
	`Fencing strength is "strong" under one condition: tokens strictly increase, and because they follow the server's clock they keep increasing across a failover (or a restart without persistence) that lost the last acquires and counter increments, unless the new master's clock is behind the old one's by more than the failover took; ` +
	`the holder of a lock lost that way is told on its next refresh (its grant is reported lost, never kept). ` +
	`A restart without persistence also loses the liveness keys: every session is then reported lost; with persistence, sessions and grants survive a restart. ` +
	`During a graceful Sentinel failover the client follows the new master and resends interrupted commands; grants and sessions whose keys were replicated go on, and tokens keep growing. ` +
	`A killed or frozen master stops writes until Sentinel fails over: grants are cancelled a safety margin before their TTL if that takes longer, and writes the replica missed are lost and reported at the next refresh or renewal. ` +
	`Data is never evicted unless maxmemory-policy evicts keys (use noeviction). ` +
	`Keys live under the namespace (default "baton"; the layout is not tooz's, so tooz's default "_tooz" is not reused) as NAMESPACE:... . ` +
	`tooz's options are all accepted with tooz's meaning and defaults; executor and encoding are accepted for compatibility and change nothing.`

// characteristics are tooz's (across threads, processes and hosts;
// causal) plus TTL liveness, pushed watches and fencing tokens with the
// server's clock as a floor (strong while the servers' clocks agree).
func characteristics() driver.Characteristics {
	return driver.Characteristics{
		DistributedAcrossThreads:   true,
		DistributedAcrossProcesses: true,
		DistributedAcrossHosts:     true,
		Causal:                     true,
		Liveness:                   driver.LivenessTTL,
		Watch:                      driver.WatchPush,
		Fencing:                    driver.FencingStrong,
		SharedLocks:                true,
	}
}

// examples are connection strings that must parse: every form tooz's
// documentation shows, and baton's own.
func examples() []string {
	return []string{
		"redis://localhost:6379",
		"redis://localhost:6379/",
		"redis://127.0.0.1",
		"redis://:password@localhost:6379",
		"redis://:password@localhost:6379?db=0",
		"redis://user:password@localhost:6379?db=0",
		"redis://localhost:6379?db=2&socket_timeout=5&retry_on_timeout=true",
		"redis://localhost:26379?sentinel=mymaster",
		"redis://sentinel-host?sentinel=mymaster",
		"redis://sentinel1:26379?sentinel=mymaster&sentinel_fallback=sentinel2:26379&sentinel_fallback=sentinel3:26379",
		"redis://:secret@192.0.2.10:26379?sentinel=mymaster&sentinel_password=secret&ssl=true&sentinel_ssl=true",
		"redis://[::1]:26379?sentinel=mymaster&sentinel_fallback=[::1]:26380&sentinel_username=admin",
		"redis:///var/run/redis/redis.sock",
		"redis://:password@/var/run/redis.sock?db=1",
		"rediss://redis.example.com:6380?ssl_ca_certs=/etc/ssl/certs/ca.pem",
		"redis://redis.example.com:6380?ssl=true&ssl_certfile=/etc/ssl/client.pem&ssl_keyfile=/etc/ssl/client.key&ssl_ca_certs=/etc/ssl/ca.pem",
		"redis://localhost:6379?timeout=10&membership_timeout=5&lock_timeout=20&namespace=myapp&executor=threaded&encoding=utf8",
		"redis://localhost:6379?socket_connect_timeout=2.5&socket_keepalive=1&health_check_interval=10",
		"redis://localhost:6379/3?socket_timeout=1.5s",
	}
}

func optionSpecs() []driver.OptionSpec {
	positive := driver.MinValue(0.001)
	return []driver.OptionSpec{
		{Key: "timeout", Type: driver.Duration, Default: defaultTimeout, Min: positive,
			Doc: "As in tooz: the default of socket_timeout, membership_timeout and lock_timeout."},
		{Key: "membership_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: positive,
			Doc: "How long a member stays alive without renewal: the TTL of its liveness key, renewed every third of it."},
		{Key: "lock_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: positive,
			Doc: "The lease of a lock when the caller gives no TTL; the backend refreshes it every third of it."},
		{Key: "namespace", Type: driver.String, Default: defaultNamespace, DefaultDoc: "baton (_tooz with compat=tooz)",
			Doc: "Prefix of every key and channel this driver uses (as NAMESPACE:...). Namespaces must not be nested (\"a\" and \"a:g:b\"). With compat=tooz it is tooz's namespace (NAMESPACE_...), tooz's _tooz by default."},
		{Key: "db", Type: driver.Int, Min: driver.MinValue(0), Default: "0",
			Doc: "The database number (SELECT). A URL path \"/N\" says the same."},
		{Key: "socket_timeout", Type: driver.Duration, DefaultDoc: "= timeout", Min: positive,
			Doc: "Read and write timeout of every command (redis-py's socket_timeout)."},
		{Key: "socket_connect_timeout", Type: driver.Duration, DefaultDoc: "= socket_timeout", Min: positive,
			Doc: "Timeout of establishing a connection, TLS handshake included."},
		{Key: "socket_keepalive", Type: driver.Bool, Default: "false",
			Doc: "Enable TCP keep-alive probes on every connection (a number is read as a boolean: 0 or 1)."},
		{Key: "retry_on_timeout", Type: driver.Bool, Default: "false",
			Doc: "Retry a command whose reply timed out, as it is retried after a broken connection; without it a timeout is returned at once."},
		{Key: "health_check_interval", Type: driver.Duration, Default: "0",
			Doc: "Connections idle longer than this are re-dialled before use, and the pub/sub connection is PINGed when idle this long (5s when 0, the default)."},
		{Key: "ssl", Type: driver.Bool, Default: "false",
			Doc: "Use TLS to the Redis server (always on with rediss://; ssl=false is then an error)."},
		{Key: "ssl_certfile", Type: driver.String,
			Doc: "PEM file with the client certificate for TLS (and its key when ssl_keyfile is not given)."},
		{Key: "ssl_keyfile", Type: driver.String,
			Doc: "PEM file with the client certificate's private key; needs ssl_certfile."},
		{Key: "ssl_ca_certs", Type: driver.String,
			Doc: "PEM file with the CA certificates that verify the server; the system roots when not given."},
		{Key: "sentinel", Type: driver.String,
			Doc: "Name of the master to ask the sentinels for; the URL's hosts are then sentinels."},
		{Key: "sentinel_fallback", Type: driver.Strings,
			Doc: "Another sentinel, host[:port] (repeat the key for each); tried after the URL's hosts."},
		{Key: "sentinel_username", Type: driver.String,
			Doc: "User name for the sentinels (ACL); the URL's user information is for the Redis server."},
		{Key: "sentinel_password", Type: driver.String, Secret: true,
			Doc: "Password for the sentinels."},
		{Key: "sentinel_ssl", Type: driver.Bool, Default: "false",
			Doc: "Use TLS to the sentinels, with the same ssl_certfile, ssl_keyfile and ssl_ca_certs."},
		{Key: "encoding", Type: driver.String, Default: "utf8",
			Doc: "Accepted for tooz compatibility: names are stored as UTF-8 bytes, so only UTF-8 spellings (utf8, utf-8, ...) are accepted."},
		{Key: "executor", Type: driver.String, Default: "threaded", Enum: []string{"threaded", "thread", "threading", "synchronous", "sync"},
			Doc: "Accepted for tooz compatibility; it has no effect (every call blocks its caller, and the driver is safe for concurrent use)."},
		driver.CompatOption(toozCompatDoc),
		{Key: "tooz_lock_key", Type: driver.String, Default: lockKeyBytes, Enum: []string{lockKeyBytes, lockKeyStr, lockKeyPlain},
			Doc: "With compat=tooz, how tooz names lock keys: bytes (tooz before 9.0 given bytes names, as OpenStack passes them: b'_tooz'_b'NAME'_lock), " +
				"str (tooz before 9.0 given str names: b'_tooz'_NAME_lock; leader locks keep the bytes form) or plain (tooz 9.0 and later: _tooz_NAME_lock)."},
	}
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	if _, err := s.tlsConfig(s.ssl); err != nil {
		return err
	}
	_, err = s.tlsConfig(s.sentinelSSL)
	return err
}

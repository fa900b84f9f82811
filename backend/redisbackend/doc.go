// Package redisbackend is baton's Redis driver, registered for the URL
// schemes redis:// and rediss:// (TLS). Import it for its side effect, or
// import backend/all. It needs Redis 3.2 or later, standalone or behind
// Sentinel (not Redis Cluster), and talks to it with
// github.com/redis/go-redis/v9.
//
// # Connection strings
//
//	redis://[[user]:password@]host[:port][/db][?options]
//	rediss://[[user]:password@]host[:port][/db][?options]
//	redis://[[user]:password@]/path/to/redis.sock[?options]
//	redis://sentinel[:port][,sentinel2...]?sentinel=MASTER[&sentinel_fallback=host:port...]
//
// Every option of tooz's Redis driver is accepted with tooz's meaning and
// defaults: timeout (30 s: the default of socket_timeout,
// membership_timeout and lock_timeout), membership_timeout, lock_timeout,
// namespace (baton), db, socket_timeout, socket_connect_timeout,
// socket_keepalive, retry_on_timeout, health_check_interval, ssl,
// ssl_certfile, ssl_keyfile, ssl_ca_certs, sentinel, sentinel_fallback
// (repeatable), sentinel_username, sentinel_password, sentinel_ssl,
// encoding and executor. The last two are accepted for compatibility and
// change nothing (names are stored as UTF-8; every call blocks its
// caller). The option table in driver.go documents each.
//
// With sentinel=MASTER, the URL's hosts (port 26379 by default) and the
// sentinel_fallback entries are sentinels; the client asks them for the
// master and follows failovers. The URL's user information authenticates
// to Redis, sentinel_username and sentinel_password to the sentinels.
//
// # Data layout
//
// Every key starts with the namespace and a colon (tooz's own keys start
// with the namespace and an underscore, so the two never meet; the layouts
// are not compatible). Names are embedded verbatim: Redis keys are
// binary-safe and each kind of key has its own fixed prefix, so no two
// names collide.
//
//	NS:G          hash   group ID -> creation nonce: the list of groups
//	NS:g:GROUP    hash   "v" -> version, "m:MEMBER" -> member record
//	NS:s:SESSION  string member ID, expiring after membership_timeout
//	NS:l:KEY      string "TOKEN:NONCE:MEMBER", expiring after the lock's TTL
//	NS:r:KEY      zset   shared grants "TOKEN:NONCE:MEMBER" -> expiry (server ms)
//	NS:f:KEY      string the lock's fencing counter (never expires)
//	NS:q:KEY      zset   the lock's queued waiters: waiter ID -> arrival (server µs)
//	NS:w:KEY      zset   the queued waiters' leases: waiter ID -> expiry (server ms)
//
// A member record holds the member's session ID, its incarnation (new for
// every join), its joined and updated times and its capabilities. Pub/sub
// channels NS:DB:g:GROUP and NS:DB:l:KEY carry the changes of a group and
// of a lock.
//
// # Locks and fencing tokens
//
// One Lua script acquires a lock: when the key is free and no shared
// grant is live, it advances the lock's counter and SETs the key with PX to
// "TOKEN:NONCE:MEMBER" (NONCE identifies the request), publishing the
// acquisition. A shared grant is an entry of the same form in the lock's
// readers sorted set, scored by its expiry in the server's clock (TIME),
// taken while the key is free; shared grants coexist, also several of
// one connection. Release and refresh are scripts comparing the token and
// the nonce of the grant; release publishes too. The lease is the lock's
// own TTL (the request's TTL, else lock_timeout), measured by the backend
// from when the request was sent and refreshed every third of it; a
// refresh that finds the grant gone reports it lost.
//
// A blocked Lock queues: its failed acquire adds it to the lock's queue in
// arrival order, with a lease of the lock's TTL that the waiter refreshes
// every third of it, so that the entry of a waiter that died expires. A
// release (or a break) removes up to 8 expired entries, pops the first
// live waiter and names it in its message ("R>ID"): only that waiter
// tries at once, and the others keep waiting, so a handoff costs one
// acquire, not one per waiter. They do not depend on it: when the lock
// has not changed hands for a handover window (eight of the connection's
// round trips, 10 to 250 ms) after a release naming another waiter (one
// that died after its last refresh), they try too. A named waiter that
// loses the race queues again at its place; a waiter that gives up
// withdraws its entry. Every waiter also tries on every
// (re)subscription, on a release naming nobody (nobody queued, or an
// older baton's release), and when the blocking grant's TTL runs out (an
// expiry publishes nothing). Older baton waiters try on any message, so
// versions mix. Campaigns do not queue: they try on every release, so a
// candidate that dies delays nobody. TryLock takes a free lock whoever
// waits. Commands
// interrupted by a broken connection are sent again: an acquire
// recognises its own nonce, and an acquire whose reply is lost for good
// is released by its nonce in the background.
//
// The token is max(counter + 1, the server's TIME in microseconds),
// computed in the acquire script (TIME before a write needs effects
// replication: always on since Redis 5, asked for on Redis 3.2 and 4).
// Tokens of a key strictly increase while the master keeps its data, and
// because they follow the server's clock they keep increasing across a
// failover to a replica that missed the last writes, or a restart without
// persistence, that lost the counter's last increments: a token issued
// after it is above every token issued before it, unless the new
// master's clock is behind the old master's by more than the failover
// took (keep the servers' clocks synchronised, e.g. with NTP). The
// driver therefore declares FencingStrong, with that clock condition, as
// file:// does with its host's clock. A failover or restart that lost a
// write still loses the acquisition itself: the holder of a lock the
// new master lacks is told on its next refresh: its grant's context is
// cancelled, never silently kept, and because release and refresh compare
// the nonce as well as the token, it never refreshes or releases another
// member's grant. Nothing is evicted unless maxmemory-policy evicts keys;
// run Redis with noeviction (and with AOF for durability across restarts).
//
// # Liveness and membership
//
// Each connection is a session: a key NS:s:SESSION with a TTL of
// membership_timeout, renewed with one PEXPIRE every third of it. When
// the key is gone (expired, deleted, or lost by a failover or a restart
// without persistence), Renew reports the session lost: other members may
// already have seen this member leave. A group member is alive while the
// liveness key of its record's session exists. Expired members are pruned
// atomically (in Lua, publishing their departure) when a group is listed
// or deleted, and by every watcher of the group when the earliest
// liveness key among its members runs out (a join replaces its own
// member's dead record), so dead members never block
// DeleteGroup and watchers learn of an expiry within milliseconds of it.
// Keyspace notifications are not used: managed Redis services often
// forbid CONFIG SET, and they are lossy anyway.
//
// # Watches
//
// Group watches and leader observation are pushed over one pub/sub
// connection per Backend. Every script that changes a group publishes the
// change with the group's new version; a watcher applies a message only if
// its version follows the last one seen, and lists the group afresh (a
// resync) after a gap, a reconnect or a failover. The pub/sub connection
// is PINGed when idle (health_check_interval, 5 s by default) and rebuilt
// when it breaks or stops answering.
//
// # Server restart and failover
//
// Clients reconnect by themselves; commands interrupted by a broken
// connection are sent again (they are idempotent). After a restart with
// persistence, sessions, locks and groups survive and grants go on. After
// a restart without persistence, or a failover that lost recent writes,
// the lost sessions are reported lost and the lost locks' grants are
// cancelled at their next refresh.
//
// # Leader change, frozen member, lost quorum (Sentinel)
//
// Redis has no quorum of data servers: one master takes every write and
// Sentinel decides failovers.
//
//   - Graceful failover (SENTINEL FAILOVER): the failover client follows
//     the new master when Sentinel announces it; commands in flight fail
//     on the demoted master (READONLY, or a closed connection) and are sent
//     again. Grants and sessions whose keys reached the replica go on;
//     tokens keep growing across it, because each is at least the server's
//     TIME in microseconds (measured: 0 of ~1,200 grants through two
//     failovers went backwards, against 2 of 2 failovers before the clock
//     floor). The lock had no holder for up to about 2 s while the client
//     re-discovered the master (60 ms at the median of two failovers,
//     2.0 s at most, counted from the holder's call to Release).
//   - Master killed: Sentinel fails over after down-after-milliseconds;
//     until then writes fail, renewals fail, and grants are cancelled a
//     safety margin before their TTL if the failover takes longer than
//     that. Writes the replica had not received are lost: their grants are
//     reported lost at the next refresh, lost liveness keys are reported as
//     lost sessions; tokens issued afterwards are still above the lost ones.
//     A Release sent to the dead master gets no answer and returns an
//     error matching ErrUnavailable; the Backend keeps releasing in the
//     background and reaches the new master, so the successor does not
//     wait out the lock's TTL. Measured with Sentinel's down-after at 2 s
//     and a 6 s TTL: the lock had no holder for 2.8-3.9 s (6.0 s, the TTL,
//     before releases were retried), no session lost, no token backwards.
//   - Frozen master: as a killed one for the clients (each command is
//     bounded by its caller's deadline, at most socket_timeout); when it
//     resumes, Sentinel demotes it and its late writes are discarded.
//     Measured as above: no holder for 3.3-3.4 s, no session lost, no token
//     backwards.
//   - No master reachable (lost quorum of sentinels, or both data servers
//     down): every command fails; grants are cancelled before their TTL and
//     sessions are lost once their liveness TTL passes.
//
// # Logging
//
// The driver logs through the Backend's logger. go-redis itself reports
// dial failures and sentinel events (a new master, a discovered sentinel)
// through its own process-wide logger, which writes to stderr by default:
// the driver replaces it (redis.SetLogger, once, at the first Open) with
// one that sends each line, at info level, to the loggers of the open
// redis:// connections, and drops it while none is open.
//
// # compat=tooz
//
// With ?compat=tooz a connection reads and writes the layout of tooz's
// Redis driver and of redis-py's Lock, so that baton and tooz processes
// (OpenStack's Python services) share groups, members, capabilities,
// liveness, leaders and locks on one server. It works through Sentinel as
// well (tooz's sentinel=MASTER and sentinel_fallback keys are baton's).
// The namespace defaults to tooz's "_tooz"; a namespace given in the URL
// is tooz's namespace option. The layout (NS the namespace):
//
//	NS_groups              set    group IDs (tooz's get_groups)
//	NS_group:GROUP         hash   "__created__" -> "1"; MEMBER -> msgpack capabilities
//	NS_beats:MEMBER        string "Not dead!", PX membership_timeout (tooz's heartbeat)
//	b'NS'_b'NAME'_lock     string a lock, SET NX PX lock_timeout (redis-py's Lock)
//	b'NS'_b'leader_of_GROUP'_lock  the leader lock of GROUP
//	NS_baton_members:GROUP: hash  baton's records: MEMBER -> incarnation, joined, updated
//	NS_baton_fence:LOCKKEY: string baton's fencing counter of a lock
//
// The last two are baton's own; tooz never reads them. The lock keys are
// those tooz 3.x-8.x builds on Python 3 from bytes names (str() of bytes,
// Python's repr); tooz_lock_key=str is the form tooz before 9.0 builds
// from str names (leader locks keep the bytes form), tooz_lock_key=plain
// the form of tooz 9.0 and later (NS_NAME_lock). Every process of a
// fleet must use the same form.
//
// What is shared, and how:
//
//   - Groups are created, listed and deleted with tooz's scripts. Members
//     are fields of the group hash whose values are the capabilities as
//     they are given: membership encodes them with msgpack exactly as
//     tooz's utils.dumps does, so tooz reads them; other bytes are stored
//     verbatim (tooz cannot decode those). Empty capabilities are stored
//     as msgpack b"", tooz's default, and read back as empty.
//   - A member is alive while its NS_beats:MEMBER key exists: baton
//     writes it at Open and renews it (SET XX PX, so that a key already
//     gone is reported as a lost session); a killed tooz process's key
//     expires after its membership_timeout. Listing or deleting a group
//     prunes dead members as tooz's get_members does (never the caller).
//   - Locks: a baton grant SETs tooz's key NX PX with the value
//     "TOKEN:NONCE:MEMBER" (redis-py never parses another holder's
//     value; it compares its own uuid token), and releases and refreshes
//     it only while that value is there. A tooz holder's value is an
//     anonymous uuid: baton reports such a holder (LockHolder, Leader)
//     with an empty member ID and token 0.
//   - Leadership of GROUP is tooz's leader lock leader_of_GROUP: tooz's
//     candidates take it without blocking in run_watchers and hold it
//     until they stop (tooz has no stand-down on Redis); a baton campaign
//     waits for it like any lock.
//
// What is given up, declared by the connection's Characteristics:
// fencing is "partial" (tokens come from baton's counter next to tooz's
// key and order baton's grants only; a tooz holder has none); watches and
// lock waits are polled (tooz publishes nothing); there are no shared
// locks. tooz keeps no incarnations or join times: baton keeps them in
// its own hash, and gives a tooz member an incarnation and a joined time
// when a baton client first lists it, so a tooz member that leaves and
// joins again between two listings is not seen as a rejoin (tooz's own
// watchers miss it too). The member ID "__created__" is refused.
//
// tooz's behaviours baton interoperates with rather than copies: tooz's
// join overwrites the capabilities of a member that already joined before
// it reports MemberAlreadyExist (baton's join changes nothing); tooz
// prunes dead members only when somebody lists the group, so until then
// tooz's delete_group refuses a group whose only members are dead (baton's
// DeleteGroup prunes first); tooz's lock refresh (redis-py's reacquire)
// resets the TTL to its own lock_timeout.
package redisbackend

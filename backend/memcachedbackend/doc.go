// Package memcachedbackend is baton's memcached driver, registered for
// the URL scheme memcached://. Import it for its side effect, or import
// backend/all. It needs memcached 1.6 or later (for the meta commands)
// and talks to it with github.com/bradfitz/gomemcache plus a small
// meta-command connection pool of its own.
//
// # Connection strings
//
//	memcached://[host[:port]][,host2[:port2]...][?options]
//
// The host defaults to localhost and the port to 11211. Several hosts
// spread the keys over several servers with gomemcache's ServerList
// (CRC32 of the key modulo the number of servers), as every gomemcache
// program does: every client must list the same servers in the same
// order, and a server that goes away takes its keys (and the grants and
// groups they hold) with it. User information and paths are refused
// (memcached's text protocol has no authentication).
//
// Every option of tooz's memcached driver is accepted with tooz's meaning
// and defaults: timeout (30 s: the default of membership_timeout,
// lock_timeout and leader_timeout), membership_timeout, lock_timeout,
// leader_timeout, max_pool_size (the most meta-command connections per
// server, and the idle connections gomemcache keeps; 0, tooz's None, is no
// limit) and executor. executor is accepted and changes
// nothing: tooz runs every call on a one-thread executor, while baton's
// calls block their caller and the driver is safe for concurrent use.
// baton adds socket_timeout (every request's deadline; by default the
// smaller of timeout and a third of membership_timeout, so that a request
// ends before the next renewal is due) and namespace. Durations are Go
// durations or a bare number of seconds; memcached counts whole seconds,
// so every key lives ceil(TTL)+1 seconds and the backend is told TTL.
//
// # Data layout
//
// Every key is NAMESPACE:KIND:NAME. A name of at most 64 characters of
// [A-Za-z0-9._-] is kept verbatim after a "v"; any other name (spaces,
// control characters, unicode, up to baton's 1 KiB names) is replaced by
// "h" and the unpadded base64url SHA-256 of the name, and the full name is
// kept in the value and checked on read. Keys thus stay within memcached's
// 250 bytes without spaces or control characters (the longest, a member
// record, is 215 bytes), and the two forms never meet.
//
//	NS:G                     the list of group names (JSON), no expiry
//	NS:g:GROUP               a group: name, creation nonce, and for each
//	                         member its incarnation and session; no expiry
//	NS:m:GROUP:MEMBER:INC    a member's record: capabilities, joined and
//	                         updated times; no expiry
//	NS:s:SESSION             a connection's liveness key (the member ID),
//	                         expiring after membership_timeout
//	NS:l:LOCK                a lock: held (token, nonce, member, full
//	                         name), expiring after the lock's lease; or
//	                         free (the last token), no expiry
//	NS:f:LOCK                the lock's epoch counter, no expiry
//
// The layout is not tooz's (tooz's keys start with _TOOZ_), so tooz and
// baton processes do not see each other's locks or groups.
//
// # Locks and fencing tokens
//
// A fencing token is EPOCH<<24 | SEQ. SEQ counts the grants of a lock key
// and lives in its value; EPOCH is drawn from the lock's counter (meta
// arithmetic, an incr) whenever the key is created. Every grant and every
// release changes the key, and with it the CAS value memcached gives it,
// so an acquire that stores the key compared with the CAS value it read
// proves that no grant came between, and takes the last token plus one:
//
//   - A connection that released the lock last remembers the key's CAS
//     value and token, and takes the lock again in one round trip: a
//     compare-and-set of the key to held (ms KEY S C<cas> T<ttl> c).
//   - Otherwise it reads the key (mg KEY v c): held means refused; free
//     is followed by the same compare-and-set.
//   - An absent key (never used, expired with a dead holder, evicted, lost
//     in a restart) is added (ms KEY S T<ttl> ME c) and, in the same write,
//     the counter is incremented (ma COUNTER N0 J<floor> v, creating a
//     missing counter with the initial value floor). The server runs the
//     two in order, so the epoch is drawn after the add succeeded: above
//     every epoch of the key's earlier lives. A second round trip writes
//     the token into the key; Holder waits out the moment between the two.
//
// Release is a compare-and-set of the key to free, keeping the token
// (ms KEY S C<cas> T0 c): it changes the key only while it is still this
// grant's, never blindly (tooz's release is a get, then a delete of
// whatever is there by then). Refresh is a compare-and-set of the same
// value with a new expiry. An epoch used up (2^24 grants) is ended by a
// compare-and-delete of the free key (md KEY C<cas>), and breaking a lock
// is a compare-and-set to free. gomemcache's classic commands cannot do
// these (the text protocol's add returns no CAS value, and its delete
// compares nothing), hence the driver's own meta connections. CAS values
// are unique within one run of a server only, so every meta connection
// reads the server's process id and start time (stats) when it dials, a
// grant and a remembered CAS value record the run they come from, and a
// compare over a connection to another run is never sent: the grant is
// reported lost.
//
// The counter's floor is the server's clock (stats "time", kept up to
// date with the local monotonic clock) in seconds, plus one, times 256. A
// counter that was evicted or lost in a restart therefore starts above
// every earlier epoch, unless more than 256 epochs a second were drawn
// with the old one (a lock key is created at most once per lease of a
// dead holder, eviction or restart), the old counter was created less
// than about two seconds before (the server's clock, as stats reports
// it, has a resolution of one second), or the server's clock went back.
// Fencing strength is "evictable" accordingly: a token may repeat after
// an eviction or a restart in those cases, and
// backend.Require(StrongFencing) refuses this driver.
//
// A lock's lease is the request's TTL, else lock_timeout (leader_timeout
// for a leadership, which is a lock of its own key space); the backend
// refreshes it every third of it. Lock waits poll.
//
// # Liveness and membership
//
// Each connection has a liveness key, touched (one round trip) every
// third of membership_timeout. A touch that finds the key gone (expired,
// evicted, or the server restarted empty) reports the session lost: the
// Backend ends and every grant is cancelled with that cause.
//
// Groups, the list of groups and member records are updated with bounded
// gets/cas loops: after 64 conflicting writes in a row a call fails with
// ErrUnavailable ("too many concurrent updates"), never loops forever. A
// join first writes the incarnation's record, then adds the member to the
// group (replacing a dead incarnation of the same member ID; a live one is
// ErrMemberExists). A member is alive while its session's liveness key
// holds its member ID and its record exists; dead members are dropped from
// the group whenever it is listed or deleted, so a dead member never
// blocks DeleteGroup. Deleting a group is a compare-and-delete of its
// record (md KEY C<cas>) after checking it has no live member. (These
// gets/cas loops run over gomemcache's connections, which do not track the
// server's run: a restart between a gets and its cas could, in theory,
// meet a new item that got the same CAS value in the new run within that
// round trip.)
//
// Watches poll: the backend lists the group every poll interval and diffs
// incarnations, so a member that leaves and joins again between two polls
// is reported as a departure and a new join.
//
// # Eviction
//
// memcached may evict any key under memory pressure, groups and locks
// included (Characteristics().Evictable; Require(NotEvictable) refuses
// this driver). The driver detects and reports what it loses:
//
//   - an evicted lock key: the next refresh finds it gone or replaced and
//     the grant is lost, its context cancelled with a cause saying the key
//     is gone (at most a third of the lease after the eviction; until then
//     another member may take the lock, which is why the fencing token
//     exists);
//   - an evicted liveness key: the session is lost at the next renewal;
//   - an evicted group: every call on it fails with ErrGroupNotFound (the
//     error says the group may have been evicted when this member had
//     joined it) and watchers see the group deleted; a Groups listing
//     drops it;
//   - an evicted member record: the member is dropped from its group as if
//     it had left (watchers see it leave), and its own
//     UpdateCapabilities fails with ErrNotMember;
//   - an evicted list of groups: Groups lists only groups created (or
//     re-created: CreateGroup of an existing group lists it again) since.
//
// Run memcached with enough memory (-m) for the coordination data, or a
// memcached of its own, to keep evictions away.
//
// # Server restart
//
// A restarted memcached is empty: every session is reported lost at its
// next renewal and every grant at its next refresh, groups are gone, and
// the counters start again from the clock floor.
//
// # compat=tooz
//
// With ?compat=tooz a connection reads and writes the layout of tooz's
// memcached driver, so that baton and tooz processes (OpenStack's Python
// services) share groups, members, capabilities, liveness, leaders and
// locks on one memcached server (tooz talks to one; several hosts are
// refused in this mode). tooz's keys have no namespace: without a
// namespace in the URL they are exactly tooz's; an explicit namespace
// prefixes them ("NS:_TOOZ_..."), which isolates a fleet that tooz does
// not share. The layout, with tooz's client flags (1: raw bytes, 2:
// msgpack):
//
//	_TOOZ_GROUP_LIST                       flag 2  [group IDs], no expiry
//	_TOOZ_GROUP_GROUP                      flag 2  {MEMBER: {b"capabilities": caps, b"baton": record}}, no expiry
//	_TOOZ_MEMBER_MEMBER                    flag 1  "It's alive!", expiry membership_timeout
//	__TOOZ_LOCK_NAME                       flag 1  the holder's member ID, expiry lock_timeout
//	__TOOZ_LOCK__TOOZ_GROUP_LEADER_GROUP   flag 1  the leader's member ID, expiry leader_timeout
//	NAMESPACE:f:...                        baton's fencing counter of a lock (never read by tooz)
//
// What is shared, and how:
//
//   - The group list and group values are read-modify-written with
//     gets/cas, as tooz does, so tooz's loops and baton's interleave
//     safely. Group and member IDs are written as msgpack bin (tooz's
//     bytes IDs); str IDs written by tooz are read too and kept as they
//     are. Fields of a member's dict that baton does not know are kept.
//   - Capabilities that are one msgpack value (as membership encodes
//     them, exactly as tooz's utils.dumps does) are stored as they are and
//     tooz reads them; empty ones as msgpack b"", tooz's default; any
//     other bytes are stored as a msgpack bin (tooz reads those bytes) and
//     baton's record says to unwrap them, so no value can break tooz's
//     decoding of the group.
//   - baton's record (field b"baton" of the member's dict) holds the
//     incarnation and the joined and updated times. tooz keeps the field
//     when it updates its own capabilities and drops it when it joins
//     again; a tooz member without one gets one when a baton client first
//     lists it (its joined time is then when it was first seen).
//   - A member is alive while _TOOZ_MEMBER_MEMBER exists. baton sets it at
//     Open and touches it on renewal; a key already gone is a lost
//     session. Listing and deleting a group prune dead members (written
//     back with cas) as tooz's get_members does.
//   - A lock is added (never overwritten) with the holder's member ID as
//     its value, as tooz does, so tooz's get_leader names a baton leader
//     and baton names a tooz holder. A baton grant remembers the key's CAS
//     value: release deletes it compared (meta md C), refresh sets it
//     again compared with a new expiry, so baton never deletes another
//     holder's key (tooz's release is a get, a comparison with its member
//     ID and a delete, which can delete a successor's key; a baton member
//     sharing a member ID with a tooz process would be exposed to it).
//
// What is given up, declared by the connection's Characteristics:
// fencing is "partial" (tokens come from baton's counter, advanced once a
// baton grant holds the key, and order baton's grants only; Holder
// reports the counter's value, the last baton token, also for a tooz
// holder); watches poll as in baton's own layout; data is evictable as
// always with memcached. Names memcached refuses in a key (spaces,
// control characters, more than 200 bytes) cannot be in tooz's layout at
// all; baton stores such group and lock names as "#" and their base64url
// SHA-256, which no tooz process can share. tooz builds a member's
// liveness key from the ID it finds in a group value, through pymemcache,
// which refuses spaces, control characters and non-ASCII bytes (tooz's
// listing of the whole group would fail): a baton member ID of that kind
// (or one starting with "#") appears in tooz's layout as "#" and its
// base64url SHA-256, with the real ID in the field b"baton_id" of its
// dict, which baton reads back; tooz lists it under the hashed ID.
//
// tooz's behaviours baton interoperates with rather than copies: tooz's
// gets/cas loops (join, leave, capability updates, get_members' pruning,
// the group list) retry without bound; baton's stop after 64 conflicts
// with a clear "contended" error. tooz's delete_group first sets the
// group value to msgpack nil, then deletes it, then removes it from the
// list: baton reads a nil group value as a deleted group. tooz prunes dead
// members only when somebody lists the group, so tooz's delete_group
// refuses a group whose only members are dead until then (baton's
// DeleteGroup prunes first). A timed tooz acquire that runs out of time
// raises tenacity's RetryError rather than returning False.
package memcachedbackend

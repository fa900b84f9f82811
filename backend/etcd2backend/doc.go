// Package etcd2backend is baton's etcd:// driver: etcd's v2 keys API
// (/v2/keys) over net/http, with no client library. It serves etcd 2.x and
// etcd 3.4/3.5 started with --enable-v2=true; etcd 3.6 removed the v2 API.
// Enable it with a blank import:
//
//	import _ "github.com/baton-go/baton/backend/etcd2backend"
//
// # Connection strings
//
//	etcd://[user:password@][host[:port]][,host[:port]...][?option=value&...]
//
// The host defaults to localhost and the port to 2379, as in tooz. Several
// endpoints go in the authority, comma-separated: requests go to one of
// them and move to the next when it cannot be reached (reads, and writes
// that certainly did not leave, are sent again at once; other writes fail
// with ErrUnavailable and are retried by their caller). The user
// information is sent as HTTP basic authentication (etcd's v2 auth); the
// password never appears in errors or logs.
//
// tooz's options keep tooz's names and defaults: protocol (http or https),
// timeout (30 s) and lock_timeout (= timeout). tooz used timeout only as
// the default of lock_timeout and sent every request without a timeout, so
// a dead server hung it; here timeout is also the timeout of every request
// that does not wait (a long-poll waits as long as its caller's context),
// as in tooz's other drivers. baton adds membership_timeout (= timeout,
// the TTL of the session and member keys), namespace (default "baton") and
// the TLS files ca_cert, cert_cert and cert_key. The option table in Info
// is the complete reference. An unknown option is an error naming the
// closest valid one.
//
// # Data layout
//
// Under the directory /<ns> (names are escaped so that any name is one key
// segment: letters, digits and '-' stay, '.' too except first, every other
// byte is "~XX"; no segment is "." or "..", contains '/', or starts with
// '_', which would hide it from listings and watches):
//
//	/<ns>/s/<session>             member ID; TTL membership_timeout
//	/<ns>/g/<group>               a group: a directory
//	/<ns>/g/<group>/<member>      member record (JSON); TTL membership_timeout
//	/<ns>/l/<lock>                holder record; TTL lock_timeout or the grant's
//	/<ns>/q/<lock>/<in-order>     queued waiter; TTL membership_timeout
//	/<ns>/r/<lock>/<in-order>     shared holder; TTL of the grant
//
// # Liveness
//
// Each Backend writes a session key; Renew restarts the TTL of the session
// key, of its member keys and of its queue entries with refresh=true
// requests (which wake no watcher), sent side by side: one round trip.
// The Backend measures liveness from when that renewal was sent and
// cancels grants a safety margin before it could run out. A session key
// found missing means the session expired: Renew reports it lost, and
// other members may already have seen this member leave. Member keys
// expire by themselves: watchers see an "expire" event, and an expired
// member never blocks deleting its group.
//
// # Locks
//
// A lock is one key created with prevExist=false (compare-and-swap on
// absence) holding "x:<nonce>:<member>", with the TTL of the grant (the
// acquisition's own, else lock_timeout; whole seconds), refreshed by the
// Backend every third of it with refresh=true&prevValue=<value>, released
// with DELETE prevValue=<value>. The random nonce makes every grant's
// value unique, so a late release or refresh can never touch a later grant
// (prevIndex would not do: every refresh moves modifiedIndex). TryLock and
// an uncontended Lock cost one request, a release one more: the raw v2
// compare-and-swap recipe, nothing added.
//
// A Lock that finds the lock taken queues: an in-order key (POST) under
// /<ns>/q/<lock>/, renewed with the session. It long-polls
// (wait=true&waitIndex=) the deletion of the entry just before its own,
// and the head of the queue long-polls the lock key's deletion or expiry
// and tries again, so a release wakes one waiter instead of every waiter
// racing (a thundering herd of compare-and-swaps, one request per waiter
// per release). The queue orders the waiters of this driver; a TryLock
// that comes between a release and the head's attempt takes the lock
// first (the head waits again): the lock is not strictly fair. A waiter
// whose context ends deletes its entry; a crashed waiter's entry expires
// with its session.
//
// Shared locks: the lock key holds a marker "s:<nonce>", and each shared
// holder an in-order reader entry under /<ns>/r/<lock>/. A reader is
// granted by a compare-and-swap on the marker's modifiedIndex made after
// its entry exists; a releasing reader deletes the marker only with
// prevIndex equal to the index it read before finding no reader entry.
// A reader's grant and a releaser's delete of the marker therefore never
// both succeed unless the releaser saw the reader; exclusive grants need
// the key absent. See shared.go for the argument.
//
// # Fencing tokens
//
// A grant's token is the store index of the write that granted it: the
// lock key's createdIndex for an exclusive grant, the marker's new
// modifiedIndex for a shared one. The v2 store's index is one counter per
// cluster, replicated by Raft, growing with every write and never reused;
// it survives restarts and leader changes (a member recovers it from its
// snapshot and log). Tokens are strong within one v2 store. They are not
// across a migration of the keys to another store: restoring from a v3
// snapshot (etcdctl snapshot restore keeps only the v3 keyspace), moving
// to a new cluster, or `etcdctl migrate` to v3 all start a v2 index over
// (from a small number), so a token can repeat one granted before. After
// such a migration, fence with something else (or start a new fencing
// epoch in the protected resource).
//
// # Watches
//
// WatchGroup long-polls the group's directory recursively, WatchHolder the
// lock key, each from the index after the last event seen. A broken
// long-poll is sent again (to the next endpoint) with the same waitIndex,
// so nothing is lost or repeated. The store keeps only its last 1000
// events (of the whole store, refreshes included); when a watcher falls
// further behind, or a member is recovered from a snapshot, etcd answers
// error 401 ("the event in requested index is outdated and cleared") or
// 400: the watcher reads the state again and emits a fresh snapshot,
// which the Backend reports as a resync.
//
// # Leader change, frozen member, lost quorum
//
// Requests go to one endpoint at a time; one that cannot connect moves to
// the next. Refreshes (Renew, RefreshLock) and releases (DELETE with
// prevValue, safe to repeat) run attempt by attempt: each bounded by a
// tenth of the TTL concerned (at least 200 ms), the next sent to another
// endpoint after one that got no answer, met a member without a leader
// or timed out, until one is answered or the deadline (at most timeout)
// ends; a release whose earlier attempt got no answer and whose retry
// finds the key gone has released it. A proposal forwarded to a leader
// that then dies is not answered before etcd's own request timeout
// (seconds): the short attempt moves on instead. Writes that take a lock
// or queue (compare-and-swap on absence, in-order POST) get one attempt;
// the Backend tries again.
//
//   - Leader change (the leader killed; a quorum remains): requests in
//     flight on it fail and are repeated on another member once a leader
//     is elected; keys keep their TTLs (the v2 store expires them by the
//     leader's clock, and the new leader carries on), so grants, sessions
//     and memberships go on; long-polls are sent again with the same
//     waitIndex, so a waiter misses no release. Measured on a 3-member
//     cluster (election timeout 500 ms, TTL 3 s, 3 rounds under a churn of
//     three members): the lock had no holder (from the holder's call to
//     Release to the next grant) for 0.95 s at the median and 0.97 s at
//     most, no session lost, no token backwards (3.0 s at most before lock
//     attempts were bounded: an acquisition forwarded to the dying leader
//     held the lock until the lock TTL). Killing a follower: 16 ms.
//   - Frozen member (SIGSTOP; the other two keep a quorum): attempts sent
//     to it get no answer and are abandoned after their bound; renewals
//     reach the others once a new leader is elected, so no session is lost
//     while a quorum is reachable. A long-poll on the frozen member waits
//     until its connection is abandoned (TCP keep-alive) or the member
//     resumes, then resumes from its index. Measured with the leader frozen
//     2 s (plus the time to resume it; TTL 6 s): no holder for 1.1 s at the
//     median and 1.2 s at most, no session lost, no token backwards (in an
//     earlier run on a loaded machine, one round of three had a grant
//     whose refreshes did not get through in time cancelled, and its key
//     kept the lock until its 6 s TTL).
//   - Lost quorum (two of three members down): writes and quorum reads
//     fail; renewals fail, so every grant's context is cancelled a safety
//     margin before its key could expire, and the session is lost if the
//     quorum is not back before the session key expires (the leader that
//     takes over expires every key whose TTL ran out meanwhile).
//
// # compat=tooz
//
// With compat=tooz, locks are shared with tooz's etcd driver (tooz's
// drivers/etcd.py, which has locks only). A lock is then tooz's key
// /<urlsafe-base64(name)> at the top of the v2 keyspace (no namespace,
// as tooz writes it), taken with the same PUT prevExist=false and
// ttl=lock_timeout, so a baton holder and a tooz holder exclude each other
// and hand over both ways: tooz long-polls the key and takes it when it
// is deleted or expires; baton's waiters do the same (keeping their own
// queue, which tooz ignores, under the namespace). baton still writes
// "x:<nonce>:<member>" as the value (tooz writes none, and never reads
// values), so its release and refresh act on its own grant only; a tooz
// holder is reported with an empty member ID. Shared grants put their
// marker on the same key, so tooz waits for them too.
//
// Shared: lock exclusion and handover, and expiry (a killed tooz holder's
// lock is free after its lock_timeout, a dead baton holder's after the
// grant's TTL). Given up: fencing is partial (baton grants still carry
// the key's createdIndex; tooz holders take none). Groups, members,
// leaders and sessions keep baton's layout under the namespace: tooz has
// none of them on this driver. The option tooz_lock_dir (baton's own, not
// tooz's) puts tooz's lock keys below a directory, for instances that
// share no lock with tooz, such as tests. tooz's defects left alone: its
// heartbeat reads the reply before checking for an error (it raises once
// its key expired), and its acquire may use an unbound reply after a
// connection error; neither changes the keys. It runs against etcd 3.4
// and 3.5 with --enable-v2=true (tooz checks /v2/stats/self at start).
//
// # Characteristics
//
//   - Distributed across threads, processes and hosts: yes.
//   - Non-timeout-based: no. Liveness and locks are TTL keys; a crashed
//     holder's lock is free when its key expires.
//   - Linearizable, sequential, causal, serializable: yes. Writes go
//     through Raft, and every read the driver makes is a quorum read
//     (quorum=true, also through Raft).
//   - Same view under partitions: no. Long-polls are served by the member
//     they reach from its local store: a member cut off from its cluster
//     keeps a watch open without delivering newer events (reads and
//     writes fail there instead).
//   - Same view across clients: no (a watcher sees a change after the
//     writer's call returned).
//   - Liveness TTL, push watches, strong fencing (within one v2 store, see
//     above), not evictable, shared locks.
//
// The v2 store expires keys when the leader's periodic sync (every 500
// ms) passes their expiry time, which the member that took the request
// computed from its own wall clock: keys expire up to half a second late,
// and early on a leader whose clock runs ahead. Keep the members' clocks
// synchronised (as etcd's own documentation asks).
package etcd2backend

// Package etcdbackend is baton's etcd3:// driver: etcd's v3 API over gRPC
// with go.etcd.io/etcd/client/v3. Enable it with a blank import:
//
//	import _ "github.com/baton-go/baton/backend/etcdbackend"
//
// # Connection strings
//
//	etcd3://[user:password@][host[:port]][,host[:port]...][?option=value&...]
//
// Several endpoints go in the authority, comma-separated; the client
// balances requests across them and moves away from an unreachable one.
// The host defaults to localhost and the port to 2379, as in tooz. The user
// information is etcd's user name and password. Every tooz etcd3 option is
// accepted with tooz's meaning and default: timeout (30 s: the timeout of
// every request and the default of the two TTLs), lock_timeout and
// membership_timeout (default timeout), ca_cert, cert_cert, cert_key (TLS).
// tooz documented but ignored protocol; here protocol=https turns TLS on.
// baton adds namespace (key prefix, default "baton") and dial_timeout
// (default timeout). The option table in Info is the complete reference.
//
// # Why not the concurrency package
//
// go.etcd.io/etcd/client/v3/concurrency has the right data model (keys on
// a lease, holder = lowest create revision, wait for the predecessor's
// deletion) and this package reuses that model, but not the package:
//
//   - concurrency.Session keeps its lease alive with a background KeepAlive
//     stream run by its own goroutine. baton's Backend owns liveness: it
//     calls Renew every third of the TTL, notes when each request was sent
//     and cancels grants a safety margin before sent+TTL. That needs one
//     KeepAliveOnce per renewal, whose send time the Backend knows. A
//     stream's refresh times are invisible to the caller, so the margin
//     could not be computed.
//   - Mutex keys are "<prefix>/<lease>": two acquisitions through one
//     session share a key, and the second one "succeeds" (Mutex is
//     reentrant per session). baton's locks are not reentrant, so each
//     live attempt writes its own entry "<lease>-<slot>"; a slot is reused
//     only once its entry is known to be deleted, so a hot lock does not
//     pile up distinct keys in etcd's index until the next compaction.
//   - Mutex.TryLock writes its key and deletes it again when it lost, two
//     writes that wake watchers; here TryLock is one transaction that
//     writes only when the lock's prefix is empty (an etcd compare over a
//     key range).
//   - Mutex.Lock leaves its key behind when the context ends during the
//     final read, and Election.Campaign keeps waiting after its lease died
//     (a "zombie candidate", etcd-io/etcd#21128). Here an abandoned wait
//     deletes its entry, a failed delete is retried on the next renewal,
//     and a wait whose lease died returns CodeLost.
//   - Election.Observe only reports puts, never "no leader", and its channel
//     closes without an error. Leader observation here is HolderWatcher:
//     the holder (or its absence) after every change, with an error when
//     the watch ends.
//   - The only fencing concurrency exposes is the key's create revision
//     (Mutex.Header, Election.Rev); baton returns exactly that as the token.
//
// The wait-for-deletes loop is short enough to reimplement; it also
// requires a leader on its watch, so a waiter cut off on a minority member
// does not wait on a stale stream.
//
// # Data layout
//
// Under the escaped namespace ('%' and '/' in names are escaped as %25
// and %2F, so no name can leave its segment or collide with another):
//
//	<ns>/sessions/<lease>                   value: member ID; on the lease
//	<ns>/groups/<group>/                    group record; no lease
//	<ns>/groups/<group>/members/<member>    JSON {caps, joined, updated}; on the lease
//	<ns>/locks/<lock>/<lease>-<slot>        value: member ID; on the lease
//
// One lease per Backend carries everything the member owns. Its TTL is the
// smaller of lock_timeout and membership_timeout, rounded up to whole
// seconds (etcd's unit); the server may raise it to its minimum, and the
// granted TTL is what the Backend uses.
//
// Groups: Join is one transaction "group record exists and member key
// does not → put member key on the lease". DeleteGroup is one transaction
// "group record exists and no key exists under members/ → delete the
// record" (a compare over the prefix range), so a concurrent Join either
// commits first and the delete is refused, or finds the group gone. Members
// whose lease expired were deleted by etcd and never block a delete. A
// member's incarnation is its key's create revision, new at every join.
// JoinedAt and UpdatedAt are the writing client's wall clock.
//
// Locks: the holder is the entry with the lowest create revision and the
// fencing token is that revision. etcd's revision is global and only grows
// (it survives restarts and leader changes), and a new holder is always
// the oldest remaining entry, created after the previous holder's, so
// tokens of one lock strictly increase: fencing is strong. Grants live on
// the session lease (Lease.TTL is 0; a per-request TTL is ignored).
//
// Watches: WatchGroup and WatchHolder are prefix watches. After a broken
// stream they resume from the last revision delivered, so nothing is lost
// or repeated and no resync is reported; only when etcd compacted that
// revision away do they re-read the state (a fresh snapshot, reported by
// the Backend as a resync).
//
// # Losing the lease
//
// The lease is a timeout, and the driver is honest about it
// (NonTimeoutBased is false). When renewals fail (server down, network
// partition) the Backend cancels every grant's context a safety margin
// before the lease could expire on the server, measured from the send
// time of the last successful renewal; the server cannot expire the lease
// earlier, because it restarts the TTL only when a renewal arrives. When
// the lease does expire (or an operator revokes it), etcd deletes every
// member key and lock entry of the Backend in one revision: watchers see
// the members leave, and the oldest waiter of each lock becomes the holder
// with a larger token. The Backend learns it at once through a watch on
// its session key, or at the latest from the next renewal, which answers
// "lease not found" (CodeLost); it then ends with ErrLost and is not
// reconnected: open a new Backend.
//
// # Characteristics
//
//   - Distributed across threads, processes and hosts: yes.
//   - Non-timeout-based: no. Liveness is a lease TTL; a crashed holder's
//     lock is freed only when its lease expires.
//   - Linearizable, sequential, causal, serializable: yes. Reads are etcd's
//     default linearizable (quorum) reads and writes go through Raft;
//     Jepsen found etcd's key-value operations strict-serializable.
//   - Same view under partitions: yes. A client on a minority member gets
//     errors, not stale data: reads are linearizable and watches require a
//     leader.
//   - Same view across clients: no. Writes are acknowledged by a majority,
//     not by every member, and a watcher sees a change when it is delivered,
//     after the writer's call returned.
//   - Liveness TTL, push watches, strong fencing, not evictable, no shared
//     locks.
//
// # Leader change, frozen member, lost quorum
//
// Requests that are safe to repeat (reads, the lease keep-alive of Renew,
// and Unlock, a compare-and-delete by token) run attempt by attempt: each
// attempt is bounded by a sixth of the lease TTL (at least 100 ms, at most
// the timeout option) and asks for a member that has a leader
// (WithRequireLeader), and a failed attempt is repeated after a short
// pause, the client sending it to the next endpoint, until it succeeds,
// the caller's deadline (for Renew, the renewal's) or the timeout option
// runs out. Writes of the lock path (taking, confirming or skipping a
// queue entry) have one attempt of the same bound, and the Backend tries
// again. The gRPC keep-alive pings every 10 s (gRPC's floor) and abandons
// a connection whose ping is not answered within a third of the TTL
// (between 1 s and 5 s).
//
//   - Leader change (the leader killed or stopped; a quorum remains):
//     requests in flight on the old leader fail, or get "no leader" from a
//     member still electing, and are repeated on another member; the lease
//     survives (etcd extends leases on a leader change), so grants,
//     memberships and sessions go on. A release interrupted by the change
//     completes on another member rather than leaving the lock held until
//     the lease expires; a waiter's watch is re-established from its
//     revision, so no release is missed. Measured on a 3-member cluster
//     (election timeout 500 ms, lease TTL 3 s): the lock has no holder for
//     at most the election time plus a few round trips (0.55-0.6 s; 0.7 s
//     at the median and 1.2 s at most on a loaded machine, counted from
//     the holder's call to Release to the next grant).
//   - Frozen member (SIGSTOP, a VM stall; the other two keep a quorum):
//     an attempt sent to it gets no answer and is abandoned after its
//     bound; the next goes to a live member. Renewals therefore succeed
//     within the renew interval and no session is lost while a quorum is
//     reachable. Watches opened on the frozen member stall until the
//     keep-alive abandons its connection; waiters and watchers then resume
//     from their revision. When a frozen leader resumes, an etcd server
//     older than 3.4.28 or 3.5.11 (etcd-io/etcd#15247) still believes for
//     a moment that it leads, finds every lease expired by its own clock
//     and has the new leader revoke them: every session ends at the
//     resume, although every renewal succeeded. Run a fixed etcd; the
//     driver sees the revocation as "lease not found" and reports the
//     session lost.
//   - Lost quorum (two of three members down or cut off): nothing can be
//     written or read linearizably; renewals fail, so every grant's context
//     is cancelled a safety margin before its lease could expire, and if
//     the quorum is not back before the lease expires the Backend ends with
//     ErrLost once it hears "lease not found". A quorum regained within the
//     TTL is invisible (leases are extended on the new leader's election).
//
// A waiter killed while queued (kill -9) leaves its entry until its lease
// expires. Entries written behind another are pending until their owner,
// finding every older entry gone, confirms them (writes them again: when
// the entry just before it goes, one transaction both checks that no
// older entry is left and confirms, so a handover costs one round trip
// after the release, as a recipe that does not confirm re-reads), and
// the waiter behind a pending entry that has been the oldest for the
// handover window deletes it, so a resignation hands over past one dead
// candidate within the window plus a round trip. The window is eight of
// the connection's round trips (the least of the last 16 it timed: the
// path's cost without a busy moment's queueing), at least 10 ms; before
// the connection has timed any, a thirtieth of the TTL within 50 to
// 250 ms. Measured at TTL 3 s on loopback: 3.1-3.3 s with no window,
// 0.11-0.23 s with the TTL-based one, 16-30 ms with this one. A live
// candidate slower than the window to confirm queues again at the back
// (fairness is kept otherwise); two dead candidates in a row still cost a
// lease TTL.
//
// Leadership does not queue. A candidate sends TryLock's transaction
// ("if no entry exists, write mine", whose failure branch reads the
// holder's entry) and watches the holder's entry, trying again when it
// changes: a losing try writes nothing, so a waiting candidate keeps
// nothing on the server, and a resignation hands over within one round
// trip of its notification even when a candidate was killed while
// waiting (1.3-2.8 ms here, against 16-30 ms past a dead queued one).
// Elections need no first-come order; every live candidate tries on a
// release, and one transaction wins. In a fleet upgraded from a version
// whose candidates queued, exclusion holds (a racing candidate writes
// only when no entry exists); racing candidates wait until the old
// queue has drained.
package etcdbackend

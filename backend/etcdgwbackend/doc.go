// Package etcdgwbackend is baton's etcd3+http:// and etcd3+https://
// driver: etcd's v3 API through its JSON gateway (grpc-gateway), over
// net/http only, for users behind HTTP-only proxies or who cannot ship
// gRPC. Enable it with a blank import:
//
//	import _ "github.com/baton-go/baton/backend/etcdgwbackend"
//
// # Connection strings
//
//	etcd3+http://[user:password@][host[:port]][,host[:port]...][?option=value&...]
//	etcd3+https://[user:password@][host[:port]][,host[:port]...][?option=value&...]
//
// The host defaults to localhost and the port to 2379, as in tooz. Every
// tooz etcd3+http option is accepted with tooz's meaning and default:
// timeout (30 s: the timeout of every request and the default of the two
// TTLs), lock_timeout and membership_timeout (default timeout), ca_cert,
// cert_cert, cert_key (TLS, etcd3+https:// only) and api_version. baton
// adds namespace (key prefix, default "baton") and dial_timeout. The
// option table in Info is the complete reference.
//
// # The gateway path
//
// etcd serves the gateway at /v3alpha/ (3.2), /v3beta/ (3.3, and 3.4 for
// compatibility) and /v3/ (3.4 and later; 3.4 no longer serves
// /v3alpha/). With api_version=auto (the default) Open asks GET /version
// and picks the path of that version, as tooz 5.0 (etcd3gw) does; an
// explicit api_version is used as given, and when the server does not
// serve it Open fails with CodeInvalidArgument naming the path the
// server's version serves. tooz 5.0 also reads ETCD3GW_API_PATH from the
// environment; baton reads nothing from the environment: set api_version.
//
// # The wire
//
// Every call is a POST of JSON: kv/range, kv/put, kv/txn, kv/deleterange,
// lease/grant, lease/keepalive (one message on the keep-alive stream per
// renewal), kv/lease/revoke, auth/authenticate, and the streaming watch
// (one HTTP request per watch; the answer is a chunked stream of JSON
// messages). Keys and values are base64, 64-bit integers decimal strings.
// Watches ask the member for a leader (the gRPC metadata hasleader=true,
// sent as the Grpc-Metadata-Hasleader header), so a member cut off from
// its cluster cancels the watch and the driver reconnects elsewhere.
//
// Requests go to one endpoint at a time. A connection failure, no answer
// within the attempt deadline, or a member answering "unavailable" (no
// leader) moves every later request to the next endpoint. Reads, deletes,
// keep-alives and the session key ask the member for a leader (the
// Grpc-Metadata-Hasleader header) and are retried there at once, and with
// several endpoints again and again (pausing 10 ms, doubling to 200 ms,
// after each round of the endpoints) until they succeed or their deadline
// ends; a request that could not be connected is retried too. A
// transaction that may have reached the server is not retried (the
// Backend decides); a lock entry it may have written is deleted by the
// next renewal. With several endpoints each attempt has a deadline of a
// sixth of the lease TTL (at least 0.25 s, at most timeout), so a member
// that accepts connections but never answers costs a fraction of the
// renewal interval, not the whole request timeout.
//
// A watch stream that carries nothing for a third of the TTL is checked
// by a one-key count on the same endpoint; when that gets no answer
// within the attempt deadline the stream sits on a silent connection (a
// partition, a frozen member) and is cut and resumed elsewhere from its
// last revision. TCP keep-alive (10 s idle, 3 probes 5 s apart) ends
// connections to hosts that vanished.
//
// TLS: etcd3+https:// verifies the server against ca_cert (or the
// system's pool) and presents cert_cert/cert_key when given. etcd's
// gateway dials its own server with the server certificate as a client
// certificate, so that certificate needs both the server and the client
// extended key usage, or every gateway call fails with "connection
// closed" (etcd's requirement, not the driver's).
//
// # Data layout and semantics: etcd3://'s
//
// The keys, values, transactions and fencing are exactly those of the
// etcd3:// driver, so that a gRPC member and an HTTP member of one cluster
// and namespace see each other's groups and members, exclude each other
// on locks (one queue per lock, ordered by create revision) and agree on
// leaders. Under the escaped namespace ('%' and '/' in names are escaped
// as %25 and %2F):
//
//	<ns>/sessions/<lease>                   value: member ID; on the lease
//	<ns>/groups/<group>/                    group record; no lease
//	<ns>/groups/<group>/members/<member>    JSON {caps, joined, updated}; on the lease
//	<ns>/locks/<lock>/<lease>-<slot>        value: member ID; on the lease
//
// One lease per Backend carries everything the member owns. Its TTL is the
// smaller of lock_timeout and membership_timeout, rounded up to whole
// seconds; the granted TTL is what the Backend uses.
//
// Locks: TryLock is one transaction "no key under the lock's prefix →
// write my entry"; a waiter writes its entry and watches only the
// deletion of the next older entry. The holder is the entry with the
// lowest create revision and the fencing token is that revision: etcd's
// global revision, which only grows (across restarts and leader changes),
// and a new holder is always the oldest remaining entry, so tokens of one
// lock strictly increase: fencing is strong.
//
// Watches: WatchGroup and WatchHolder are prefix watches. After a broken
// stream they resume from the last revision delivered, on the next
// endpoint, so nothing is lost or repeated; only when etcd compacted that
// revision away do they re-read the state (reported by the Backend as a
// resync).
//
// # compat=tooz
//
// With compat=tooz the driver reads and writes tooz's etcd3gw layout
// (tooz's drivers/etcd3gw.py), so baton and tooz processes share groups,
// members and locks on one cluster:
//
//	tooz/groups/<group>/           group record, value = the key itself
//	tooz/groups/<group>/<member>   member: msgpack capabilities (tooz's b"" when none), on the session lease
//	/tooz/locks<name>              lock: create-if-absent on a lease, no separator (tooz's key)
//
// Groups are created and deleted with transactions on the record (delete
// only while no member key follows it); members are put on the
// connection's lease, so a dead member of either side vanishes when its
// lease expires (tooz: membership_timeout, refreshed by its heartbeat).
// A lock is tooz's transaction "create_revision == 0 → put"; baton's
// value is "b:<nonce>:<member>" (tooz's 16 random bytes), released by
// "value == mine → delete", on the session lease. A tooz holder is
// reported with an empty member ID. baton waits for a lock by watching
// the key's deletion; tooz polls (backoff capped at 1 s). Group and member
// IDs are escaped as in baton's layout ('%' and '/' only), so every ID
// tooz can use keeps its key.
//
// Kept in baton's layout under the namespace: leaders (tooz has no
// election on this driver), sessions, and member join/update times
// (<ns>/minfo/..., on the session lease: tooz's records have none, so
// tooz members have zero times). Given up: fencing is partial (tooz
// holders take no token) and locks have no queue (whoever writes first
// after a release holds the lock). tooz's defects interoperated with:
// its get_groups lists member keys as bogus groups (g/membe...), which
// baton does not; its lock keys have no separator (locks "a" and "ab"
// are /tooz/locksa and /tooz/locksab), so baton uses exact keys, never a
// prefix; its delete_group checks emptiness and deletes in two steps.
// tooz 3.1 defaults to the gateway path /v3alpha, which etcd 3.4 and
// later no longer serve: tooz processes need api_version=v3. The option
// tooz_prefix (baton's own) puts tooz's keys below a prefix, for
// instances that share nothing with tooz, such as tests.
//
// # Losing the lease
//
// Liveness is a lease TTL (NonTimeoutBased is false). The Backend renews
// with one keep-alive request at a time and cancels every grant's
// context a safety margin before sent+TTL of the last successful renewal.
// When the lease expires or is revoked etcd deletes every key of the
// Backend in one revision; a watch on the session key tells the Backend
// at once, or the next renewal does (the keep-alive answers TTL 0), and
// the Backend ends with ErrLost.
//
// # Leader change, frozen member, lost quorum
//
// The gateway is a member's own: every request is served (or forwarded
// to the leader) by the member it is sent to, so what etcd3:// does with
// gRPC this driver does with the attempts above.
//
//   - Leader change (the leader killed or stopped; a quorum remains):
//     requests in flight on the old leader fail or get no answer within
//     their attempt and are sent to the next member; members still
//     electing answer "no leader" at once to the idempotent ones, which
//     are retried. The lease survives (etcd extends leases on a leader
//     change), so grants, memberships and sessions go on. A release
//     interrupted by the change is retried (by the driver, then by the
//     Backend in the background) rather than left to the lease; a
//     waiter's watch stream is resumed from its revision on another
//     member, so no release is missed. Measured on a 3-member cluster
//     (election timeout 500 ms, lease TTL 3 s, 3 rounds under a churn of
//     three members): the lock had no holder (from the holder's call to
//     Release to the next grant) for 0.5-1.0 s at the median and 1.4 s at
//     most over two runs, no session lost, no token backwards. Killing a follower:
//     55 ms / 93 ms.
//   - Frozen member (SIGSTOP, a VM stall; the other two keep a quorum):
//     attempts sent to it get no answer and are abandoned after their
//     deadline. While the frozen member is the leader, a keep-alive sent
//     to a follower is forwarded to it and held until the follower has
//     elected another leader and the attempt is sent again, so renewals
//     stall for about the election time plus an attempt: grants taken in
//     that window may be cancelled at once (their session is within the
//     safety margin), but no session is lost while a quorum is reachable.
//     A watch stream on the frozen member is found silent by its watchdog
//     and resumed elsewhere. Measured with the leader frozen 2 s (plus the
//     time to resume it; lease TTL 6 s): no holder for 1.0-2.0 s at the
//     median and 2.0 s at most, no session lost, no token backwards. When a
//     frozen leader resumes after more than the TTL, an etcd server older
//     than 3.4.28 or 3.5.11 revokes every lease it finds expired by its own
//     clock (etcd-io/etcd#15247): the sessions end although every renewal
//     succeeded; run a fixed etcd.
//   - Lost quorum (two of three members down or cut off): nothing can be
//     written or read linearizably; renewals fail, so every grant's context
//     is cancelled a safety margin before its lease could expire, and if
//     the quorum is not back before the lease expires the Backend ends with
//     ErrLost once it hears that the lease is gone. A quorum regained
//     within the TTL is invisible (leases are extended on the new leader's
//     election).
//
// # Characteristics
//
// The same as etcd3://: distributed across threads, processes and hosts;
// timeout-based; linearizable, sequential, causal, serializable (reads
// are linearizable, writes go through Raft); the same view under
// partitions (a minority member answers errors, watches require a
// leader) but not the same view across clients at every instant; TTL
// liveness, push watches, strong fencing, not evictable, no shared locks.
package etcdgwbackend

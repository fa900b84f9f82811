// Package consulbackend is baton's consul:// driver: Consul's HTTP API
// with github.com/hashicorp/consul/api. Enable it with a blank import:
//
//	import _ "github.com/baton-go/baton/backend/consulbackend"
//
// # Connection strings
//
//	consul://[host[:port]][?option=value&...]
//
// One agent address (default localhost:8500, as in tooz): a Consul client
// talks to its local agent, which forwards to the servers. tooz's options
// keep tooz's meaning: ttl (session TTL, default 15 s), namespace (a key
// prefix; see below for its default), acl_token (a secret; when absent,
// the CONSUL_HTTP_TOKEN environment variable, as every Consul tool does),
// timeout (of every request). baton adds lock_delay, datacenter, and TLS:
// protocol=https, ca_cert, cert_cert, cert_key (any of the last three turns
// TLS on). The option table in Info is the complete reference.
//
// The namespace defaults to "baton", not tooz's "tooz": baton's key layout
// is not tooz's, and a baton lock under tooz's prefix would look like, but
// not exclude, a tooz lock of the same name. compat=tooz (section
// "compat=tooz") switches to tooz's layout and defaults to "tooz".
//
// # TLS
//
// The agent's HTTPS port (Consul's ports.https, 8501 by convention) is
// reached with protocol=https or with any of the TLS options, which name
// PEM files read once by Open:
//
//   - ca_cert: the CA certificates the agent's certificate must chain to,
//     instead of the system's pool (which protocol=https alone uses). The
//     certificate must name the address in the URL (an IP address SAN
//     for consul://127.0.0.1:8501).
//   - cert_cert and cert_key (together): the client certificate and its
//     key, sent when the agent asks for one; an agent with verify_incoming
//     (tls.https.verify_incoming, or tls.defaults) refuses connections
//     without a certificate signed by a CA it trusts.
//   - protocol: https turns TLS on; http with any TLS option is refused.
//
// Every request of a connection goes through one HTTP client and so over
// TLS: session creation and renewal, the blocking query that follows the
// session, member and lock writes and transactions, consistent reads, and
// the blocking queries of group watches, holder watches and lock waits.
// The driver dials TLS itself and speaks HTTP/1.1 on it, as over plain
// HTTP. A handshake that fails over a certificate (the agent's not
// trusted, or the client's refused or missing: with TLS 1.3 the agent
// refuses it after the client's handshake, and the first request's read
// or write fails) is reported as ErrCertificate, coded
// backend.ErrInvalidArgument, and not retried; the native
// *tls.CertificateVerificationError stays reachable with errors.As.
// Plain HTTP sent to the HTTPS port is refused by the agent (400) with the
// same code. Neither error shows the ACL token, which travels in a header.
//
// # Liveness
//
// Each Backend creates one Consul session: TTL from ttl, no health checks
// (the default would tie it to the agent's serfHealth check; with none, its
// liveness is exactly what the renewals prove, which is what the backend's
// timing model measures), Behavior=delete (every key acquired with it is
// deleted when it is invalidated: members leave and locks free themselves)
// and LockDelay from lock_delay (default 0, so that a resign or a crash
// hands over at once; the client library cannot send 0, which it omits and
// Consul replaces by 15 s, so the session is created through the raw API).
// The Backend renews it every third of the TTL with one PUT
// /v1/session/renew and measures liveness from when that request was sent;
// Consul keeps a session at least its TTL after it received a renewal (it
// waits up to twice the TTL), so that deadline is conservative. A renewal
// answering 404 means the session was invalidated: CodeLost, the Backend
// ends with ErrLost. A goroutine also follows the session with a blocking
// query and reports the loss within a round trip of it.
//
// A lock-delay above 0 is enforced by Consul only on its acquire endpoint
// (PUT /v1/kv/...?acquire), not in transactions; with lock_delay set,
// exclusive locks are therefore taken there and read back for their
// token (two round trips instead of one). The delay is therefore honoured
// by the Backends that set lock_delay (and by every client of the acquire
// endpoint, such as api.Lock), not by a Backend without it: give every
// Backend of an application the same option. It delays exclusive locks
// and leaderships only: each shared grant has its own key. The timing
// model needs no allowance for it: a lock-delay only postpones the next
// holder, after the former one's grants were already cancelled.
//
// # Data layout
//
//	<ns>/groups/<group>/                  group record
//	<ns>/groups/<group>/members/<member>  member record (msgpack: capabilities,
//	                                      join and update times), acquired
//	                                      with the session
//	<ns>/locks/<lock>/x                   exclusive holder, acquired with the session
//	<ns>/locks/<lock>/s/<session>.<n>     a shared holder, acquired with the session
//
// Names are escaped into one key segment each: ASCII letters, digits and
// "-_.~" stay, every other byte is %XX, as is every dot of a name made of
// dots only; the encoding is lossless and never produces '/', so no name
// escapes its parent or collides with another. Leaderships are locks whose
// names the backend prefixes. A member's incarnation is its key's
// CreateIndex.
//
// # Locks and fencing
//
// An exclusive TryLock is one transaction: "x does not exist; lock x with
// my session; list the shared holders". When the listing, taken in the
// same atomic step, shows a shared holder, the driver deletes x again and
// reports the lock taken. A shared TryLock is one transaction "x does not
// exist; lock my own key". Raft orders the two: a later exclusive
// transaction sees the shared key, a later shared one finds x. Release
// deletes the grant's key only if it is still the one the grant wrote
// (delete-cas on the token).
//
// The fencing token is the ModifyIndex of the acquiring write: the Raft
// index at which Consul applied it. Raft indexes grow with every write of
// the cluster and are never reused (they survive restarts, leader changes
// and snapshot restores, after which new writes still get higher indexes),
// so a later grant of a name always has a greater token: strong fencing.
// A key's LockIndex alone would not do: it starts over at 1 when the key
// is deleted, which every release and every session loss does here. The
// exception is a dev agent (consul agent -dev), which keeps nothing: its
// restart starts the indexes over.
//
// Lock waits and leader observation are blocking queries on the lock's
// prefix: a waiter is woken by the release (or the holder's session
// being invalidated) and tries again within a round trip. Shared waits are
// polled by the backend (the driver interface has no shared waiter).
//
// # Watches
//
// A group watch is a blocking query on the group's prefix that returns
// the complete listing whenever it changed; the driver diffs it against
// the previous one, so a member that left and came back in between is a
// new incarnation (left, then joined), never missed. A reply whose index
// went backwards (a snapshot restore, a restarted dev agent) is sent on
// as a fresh snapshot and the backend reports a resync.
//
// # compat=tooz
//
// With compat=tooz a connection reads and writes the layout and protocol
// of tooz's consul driver (tooz.drivers.consul, tooz 3.1, with its
// client python-consul2), so that baton and tooz processes on one agent
// and one namespace share groups, members, capabilities and exclusive
// locks. The namespace then defaults to tooz's "tooz"; ttl, namespace and
// acl_token keep tooz's meaning. The layout (names are written as they
// are, as tooz does):
//
//	<ns>/groups/<group>/            group record, value "", created with cas=0
//	<ns>/groups/<group>/<member>    the member's capabilities as given
//	                                (msgpack, as tooz's utils.dumps)
//	<ns>/group_locks/<group>        the lock tooz's join and delete_group hold
//	<ns>/locks/<name>               lock <name>
//	<ns>/baton/locks/<key>          leaderships, and user locks tooz cannot name
//	<ns>/baton/groups/<group>/...   groups tooz's layout cannot hold
//
// Sessions: one per connection, named by the member ID, as tooz names
// its own, with the ttl option, renewed as in baton's layout (tooz renews
// every half TTL). Unlike tooz's sessions (Behavior=release, lock-delay
// 15 s, tied to the node's serfHealth check), baton's keep Behavior=delete,
// no checks and lock_delay (default 0), so that a crashed baton member's
// member key and locks go with its session: tooz then lists it no more
// and can take its locks. Holder reports the holding session's name: the
// member ID on both sides.
//
// Locks follow tooz's protocol: a connection that holds the key does not
// try again (Consul would let the session take it twice); otherwise PUT
// /v1/kv/<ns>/locks/<name>?acquire=<session> with tooz's value "I got
// it!", which Consul refuses while another session holds the key, and,
// after a holder's session was invalidated, during that session's
// lock-delay (15 s for a tooz process): baton honours it as tooz does.
// The acquisition is then read back for its token. Release is tooz's
// ?release (the key stays, its value becomes the session ID), done as one
// transaction that first checks the grant still holds the key. A lock
// held by one side is refused to the other; a waiter of either side gets
// it after the other's release (baton's waiters wake on a blocking query;
// tooz's poll). BreakLock deletes the key; tooz's holder then finds no key
// to release. The token is the acquiring write's ModifyIndex, which every
// acquisition of the key, baton's or tooz's, increases; tooz's holders
// have none, so fencing is partial (driver.FencingPartial). tooz has no
// shared locks: SharedLocks is false and shared requests are refused
// with ErrUnimplemented.
//
// Groups follow tooz's protocol too: join and delete take the group lock
// (as a tooz lock, waited for), read the group, and write the member key
// with cas=0 (a transaction "absent; lock with my session"), or delete the
// group's keys and its group lock key; leave deletes the member key
// without the group lock, as tooz does. Groups lists the folders under
// <ns>/groups/, as tooz's get_groups. Members lists every key under the
// group record, with or without a session. Watches remain push: blocking
// queries on the group's prefix see tooz's writes at once (tooz itself
// polls get_members).
//
// What is given up, and tooz's bugs interoperated with:
//   - tooz binds neither its member keys nor anything but its locks to its
//     session, so a crashed tooz member never leaves: tooz keeps listing
//     it, and so does baton (as tooz would judge it), until someone
//     removes its key. Its locks go when Consul invalidates its session
//     (between the TTL and twice the TTL after its last renewal) plus the
//     15 s lock-delay.
//   - Fencing is partial: tooz's holders have no token.
//   - No shared locks, and no leader election in tooz (its
//     watch_elected_as_leader raises NotImplemented); baton's leaderships
//     keep working in baton's own subtree, which tooz never lists.
//   - A tooz member's join and update times are unknown (zero); a baton
//     member keeps them in its key's Flags, which tooz ignores.
//   - tooz writes names into keys as they are, so a group name with "/"
//     or equal to "." or "..", and a lock name with an empty, "." or ".."
//     segment, cannot be named by tooz (tooz's HTTP path would be cleaned
//     to another key). baton keeps such groups and locks, losslessly, in
//     its own subtree; tooz does not see them. Member IDs are written as
//     they are (transactions keep any key); tooz strips leading and
//     trailing "/" from the IDs it lists.
//   - tooz 3.1 requires python-consul2: with python-consul 0.7.1
//     (Debian's python3-consul) its start() fails with "TypeError:
//     Consul.Session.create() got an unexpected keyword argument 'token'".
//     python-consul2 refuses a session TTL below 10 s.
//
// # Consistency (characteristics)
//
// Writes go through Raft. Every read that decides something (members,
// groups, holders, the reads before a join or a delete) uses the
// consistent mode, which is linearizable: the leader confirms with a
// quorum that it still leads. Blocking queries use the default mode,
// served by the leader without that check; a watcher may therefore see a
// change a moment late after a leader change, never out of order. The
// characteristics claim linearizable, sequential, causal and serializable;
// same view under partitions (a minority cannot serve reads or writes);
// not the same view across clients at every instant (watches lag by a
// round trip); liveness is a TTL.
//
// # Limits
//
// Consul refuses KV values above 512 KiB (kv_max_value_size) and
// transaction bodies above 512 KiB (txn_max_req_len, with values in
// base64). Capabilities are at most 256 KiB (backend.MaxCapabilitiesLen),
// which the member record holds with room to spare; the backend refuses
// more with ErrInvalidArgument before any request. Names are at most
// 1 KiB, escaped into at most 3 KiB of key.
package consulbackend

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
// not exclude, a tooz lock of the same name.
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

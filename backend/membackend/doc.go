// Package membackend is baton's in-process reference driver, registered
// for the URL scheme mem:// (import it for its side effect, or import
// backend/all). It replaces tooz's zake test double: every coordination
// primitive is implemented natively over an in-memory store guarded by a
// single mutex, and exported fault-injection functions let tests expire a
// member's session, cut it off from the store or slow it down.
//
// # Stores
//
// The URL's host part names a store: every Backend of the process opened
// on mem://NAME shares one store, stores of different names are isolated,
// and mem:// (or mem:///) is the default store, whose name is "". Names are
// case-sensitive and compared byte for byte; a name is anything the URL
// syntax accepts as one host (no whitespace, '/', ',', '@', '?' or '#',
// and text after a last ':' must be a port number, e.g. mem://tests or
// mem://app-1.locks). The URL takes no user information, no path (other
// than "/"), a single host and no query options.
//
// A store lives in the process, never on disk and never across processes.
// It exists from the first Open of its name until it holds nothing: when
// its last connection closes and it has no groups left (locks and
// memberships always end with their connection), it is dropped, which is
// indistinguishable from keeping it. Groups outlive the connections that
// created them, as on a server.
//
// # Fencing tokens and incarnations
//
// Each store numbers its fencing tokens 1, 2, 3, ... across all its keys;
// when a store is dropped its last token is remembered (a few bytes per
// store name, for the life of the process) and a re-created store of the
// same name continues from it. Tokens of a key therefore strictly increase
// for the life of the process (FencingStrong within the process). Member
// incarnations come from one process-wide counter: every join gets a new
// one.
//
// # Liveness
//
// A connection is a session (LivenessSession, no renewal): its locks and
// memberships live exactly as long as it stays open and its session has
// not been expired with ExpireSession. Closing a connection releases its
// locks (the first waiter gets each) and leaves its groups.
//
// # Locks
//
// Exclusive locks are granted first come, first served: WaitLock queues in
// FIFO order and a released lock is handed to the first waiter at once.
// Shared locks (TryLockShared) coexist with each other, including several
// from one connection, and are refused while an exclusive lock is held or
// an exclusive waiter is queued (so writers do not starve). Holder reports
// the lowest-token holder of a shared lock.
//
// # Fault injection
//
// ExpireSession, SetUnreachable and SetDelay address a member by store name
// and member ID (Backend.MemberID; StoreName gives a Backend's store). They
// act on every open connection of that member in that store at the time of
// the call; connections opened later start healthy.
package membackend

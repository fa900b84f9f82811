// Package ipcbackend is baton's driver for coordination between the
// processes of one host through System V IPC, registered for the URL
// scheme ipc:// (import it for its side effect, or import backend/all).
// Every primitive works across goroutines and processes, never across
// hosts, with no server to run. It drives semaphores and shared memory
// with raw system calls (golang.org/x/sys/unix, no cgo) and works on
// Linux on 64-bit architectures (amd64, arm64, loong64, mips64, ppc64,
// riscv64, s390x); elsewhere the driver is registered but Open fails with
// an error coded unimplemented ("not supported on this OS").
//
// # Connection string
//
//	ipc://[?options]
//
// The URL has no host and no path. Options: namespace, timeout,
// check_interval, segment_size, lock_slots and executor (see the option
// table, or `baton url explain`); tooz's `ipc://` and its executor option
// are accepted with tooz's meaning.
//
// # Keys
//
// Every object is found by a System V key derived as tooz derives them
// (tooz.drivers.ipc.ftok): the MD5 of a project string followed by a
// name, reduced modulo the key range of Python's sysv_ipc (2⁶⁴-1 on
// 64-bit Linux), plus its KEY_MIN, narrowed to the 32 bits of key_t. A
// user lock NAME gets the key of NAME in the project "__TOOZ_LOCK_",
// which is exactly tooz's key in the default (empty) namespace: a tooz
// process and a baton process on one host then exclude each other on one
// lock name, and a baton process survives tooz's habit of removing the
// semaphore when it releases (a baton waiter sees EIDRM and queues on
// the next semaphore). Leadership locks, the namespace's mutex and
// segment and the session semaphores use projects of baton's own. With a
// namespace N, every project is prefixed by N and a NUL, so namespaces
// never share an object.
//
// Keys have 32 bits, so two lock names can map to one semaphore (with
// about 1 chance in 2³² per pair of names in use). They then exclude each
// other — never both held — and a TryLock of one can fail while the other
// is held; the lock table keeps them apart (it is keyed by SHA-256), so
// fencing tokens and Holder stay per name. A segment key shared by two
// namespaces is detected (the segment records its namespace) and Open
// fails with an internal error naming them.
//
// # Locks and fencing tokens
//
// A lock is a set of two semaphores: the first is 1 while the lock is
// free (tooz's semaphore), the second counts shared holders. An exclusive
// grant is one semop that takes the first from 1 to 0 while the second is
// 0, with SEM_UNDO; a shared grant checks the first is 1 and raises the
// second, with SEM_UNDO. SEM_UNDO makes the kernel undo the operation the
// instant the holding process exits or is killed, so a dead holder's
// lock is free at once. Grants exclude each other in one process too
// (locks are not reentrant). A release is the opposite semop: it never
// removes the semaphore, so waiters stay queued. Lock and Campaign wait
// natively (LockWaiter) in semtimedop, woken by the kernel on release.
// A set created by tooz has only the first semaphore; on it a shared hold
// is exclusive.
//
// A new set is created (and set to 1) under the namespace mutex; a set
// found at 0 that nobody ever operated on is being initialised by its
// creator, which is waited for (a second at most: then the creator died
// before initialising it and the set is initialised under the mutex).
//
// Each lock has an entry in the segment's lock table (64 bytes, found by
// the SHA-256 of the key): the last fencing token, the mode and the
// exclusive holder's token and session. The exclusive holder writes it
// without the mutex — the semaphore excludes every other writer — under a
// sequence counter that lock-free readers check; shared holders write it
// and the list of shared holders under the mutex. A new grant's token is
// the larger of the last token plus one and the wall clock in
// microseconds: tokens of a name strictly increase (FencingStrong on one
// host), also after the namespace was removed and created again, unless
// the clock was set back past those grants. Locks cannot be broken (no
// LockBreaker): a semaphore ends only with its holder.
//
// # Liveness
//
// Each connection is a session (LivenessSession): on Open it creates a
// semaphore of its own under a random key and raises it with SEM_UNDO.
// The session's record (member, key, semaphore ID) is kept in the
// segment. A session is alive while its semaphore exists, is the one
// recorded and is non-zero; when the process exits or is killed the
// kernel drops it to zero and every other process sees the session dead
// at once, with no timeout; whoever finds it dead removes it. A process
// that is stopped (SIGSTOP) or hung stays alive: liveness here is "the
// process exists", not "the process makes progress".
//
// A connection checks every check_interval (the backend's Renew) that its
// session semaphore still exists. When someone removed it (ipcrm, or
// ExpireSession in tests), the session ends: the connection releases its
// locks, removes its members and reports the loss (Backend.Done closes
// with ErrLost).
//
// # Groups and watches
//
// Groups, members (capabilities, incarnation, join and update times) and
// sessions are one JSON document in the namespace's shared memory
// segment, read and changed under the namespace mutex: a semaphore that
// is free at 0 and taken by "wait for zero, then add one" with SEM_UNDO,
// so a process killed in the critical section releases it. The segment
// keeps two copies of the state and a writer fills the inactive one
// before switching, so a writer killed half-way leaves the previous state
// in force (each copy carries a CRC-32C). Readers cache the decoded state
// by its generation number. Members of dead sessions are never listed,
// never block DeleteGroup and are removed by the next change. The
// segment's size is fixed when it is created (segment_size, lock_slots);
// a change that does not fit fails with an unavailable error.
//
// Watches are polled by the backend (every backend.WithPollInterval,
// 500 ms by default), which diffs the member lists and their
// incarnations, so a member that leaves and joins again between two
// polls is still reported; a killed process's members leave at the next
// poll.
//
// # Cleanup
//
// Closing a connection releases its locks, removes its members and its
// session semaphore. The namespace's last connection also removes the
// lock semaphores that are free with no waiter (a lock held or awaited by
// a tooz process is left alone) and, when no group is left, the segment
// and the mutex: nothing of the namespace remains. Groups, like those of
// a server, outlive their members until deleted; RemoveNamespace removes
// a namespace whose groups nobody will delete (it refuses while a baton
// connection of the namespace is alive).
//
// A process killed while it opened or closed a connection, or during a
// system-wide IPC limit error, can leave objects behind. They are listed
// by `ipcs -s` (semaphore sets) and `ipcs -m` (the shared memory
// segment), owned by the user that ran the processes, with mode 600:
// baton's lock sets have 2 semaphores, sessions and mutexes 1 (tooz's lock
// sets have 1). When no process of the namespace runs, remove them with
// `ipcrm -s SEMID` and `ipcrm -m SHMID` (or `ipcrm -S KEY`, `ipcrm -M
// KEY`), or, for one namespace, with RemoveNamespace. `ipcs -l` shows the
// system's limits (number of semaphore sets, segment size).
//
// # Fault injection
//
// ExpireSession removes a member's session semaphores, which ends its
// sessions as described under Liveness.
//
// # compat=tooz
//
// Locks need no mode: in the empty namespace a user lock is tooz's
// semaphore in every mode. With compat=tooz, groups are tooz's too
// (tooz.drivers.ipc): the group list is the shared memory segment of
// 1024 bytes at tooz's ftok("GROUP_LIST", "_TOOZ_INTERNAL"), holding a
// native-endian uint16 length and a msgpack array of the group ids as
// bytes, changed under tooz's IPC lock TOOZ_INTERNAL_LOCK (the semaphore
// at ftok("TOOZ_INTERNAL_LOCK", "__TOOZ_LOCK_"), created at 1 when
// missing and taken with SEM_UNDO, as tooz's IPCLock does; baton gives it
// back with a V instead of removing it, which tooz's waiters handle
// alike). CreateGroup, DeleteGroup and Groups read and write that list,
// so a group created by either side is listed, refused as existing and
// deletable by the other; the list holds at most 1021 bytes of msgpack
// (tooz's "Group list is too big"), beyond which CreateGroup fails as
// unavailable. Members, which tooz's ipc driver does not have (its
// get_members raises NotImplemented), stay in baton's segment: joining
// needs the group in tooz's list, and a group tooz deletes disappears
// with baton's members in it. tooz's stop removes the group list segment
// for every process (tooz's bug): every group then disappears for baton
// too, as it does for tooz. Shared locks are unavailable in this mode
// (ErrUnimplemented): baton's shared hold leaves tooz's semaphore free,
// so a tooz process could take it. Fencing is partial: tooz's holders
// have no token. With a namespace other than the empty one, every key,
// tooz's group list and internal lock included, is the namespace's own,
// and no tooz process shares anything (RemoveNamespace then removes that
// namespace's group list too).
package ipcbackend

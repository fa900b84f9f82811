// Package filebackend is baton's driver for coordination between the
// processes of one host through a directory, registered for the URL scheme
// file:// (import it for its side effect, or import backend/all). It is
// the embedded default for multi-process programs: every primitive works
// across goroutines and processes (never across hosts; do not put the
// directory on a network file system), with no server to run.
//
// # Connection string
//
//	file:///ABSOLUTE/DIRECTORY[?options]
//
// The directory is the URL's path, so an absolute one takes three slashes
// (file:///var/lib/app), as in tooz; file://localhost/dir is the same and
// any other host is an error. The directory is created (mode 0700) when
// missing, and every file the driver writes lives in its subdirectory
// named by the namespace option (default "baton"). Options: namespace,
// timeout, check_interval, lock_retry, fsync and executor (see the option
// table, or `baton url explain`); tooz's timeout and executor are accepted
// with tooz's defaults, but the layout on disk is baton's, not tooz's.
//
// # Layout
//
//	DIR/NAMESPACE/sessions/HEX          a session: flocked by its connection
//	DIR/NAMESPACE/groups/ENC/.group     a group's name
//	DIR/NAMESPACE/groups/ENC/.lock      flock serializing the group's changes
//	DIR/NAMESPACE/groups/ENC/ENC        a member's record (JSON)
//	DIR/NAMESPACE/locks/ENC             a lock: its flock and its record
//	DIR/NAMESPACE/locks/ENC.s           mutex for the record of a shared lock
//	DIR/NAMESPACE/tmp/                  files being written, groups being removed
//
// HEX is a random 128-bit session ID. ENC encodes a group ID, member ID or
// lock key: "n" followed by the name in lower-case base32 (a-z, 2-7, no
// padding) when that is at most 200 bytes, i.e. for names up to 124
// bytes, else "h" followed by the base32 SHA-256 of the name. Encoded names
// are therefore valid, case-insensitively distinct file names, never "."
// or "..", never contain '/', and never start with '.', so no name can
// escape the directory or collide with the driver's own files (tooz's
// prefix check let "../x" through). For hashed group and member names the
// full name is kept inside (.group, the member record) and compared on
// every read, so a SHA-256 collision would be reported as an internal
// error, never merged; a hashed lock key is identified by its SHA-256
// alone, which no one can make collide.
//
// Every file is written atomically: member records and groups are built
// under tmp/ and renamed into place; a lock record is one write at offset
// 0 carrying a CRC-32C, which readers that hold no lock check (a torn read
// is read again). An exclusive grant reads the last token and writes its
// record through a shared mapping of the lock file's first 4 KiB (the
// file is grown to that size once; zeros read as no record), so taking a
// lock costs one flock(2) and releasing it a pwrite (which wakes the
// waiters' inotify watches) and an unlock; the mapping is kept with the
// open lock file between grants, and a file truncated under it by
// someone else makes the grant fall back to pread and pwrite.
//
// # Liveness
//
// Each connection is a session (LivenessSession): on Open it creates a
// session file, takes an exclusive flock(2) on it and only then renames it
// into sessions/, so nobody ever sees a live session unlocked. The flock
// lives exactly as long as the connection's process holds it: when the
// process exits or is killed, the kernel drops it and every other process
// sees the session dead at once, with no timeout (tooz counted a member
// alive for `timeout` seconds after its last heartbeat and never removed
// dead ones). A session is probed with a non-blocking shared flock, which
// fails while its owner lives and never disturbs other probes; a dead
// session's file is removed by whoever finds it dead.
//
// A connection checks every check_interval (the backend's Renew) that its
// session file is still its own. When someone removed or replaced it (an
// administrator, or ExpireSession in tests), the session ends: the
// connection releases its locks, removes its member records and reports
// the loss (Backend.Done closes with ErrLost). Other processes already saw
// the member gone when the file went; its flocks, though, stay until the
// connection notices. A process that is stopped (SIGSTOP) or hung keeps
// its flocks and stays a member: liveness here is "the process exists",
// not "the process makes progress".
//
// # Locks and fencing tokens
//
// A lock is a flock on its lock file: exclusive (LOCK_EX) or shared
// (LOCK_SH, across processes: tooz's shared locks were exclusive between
// processes). Every grant opens the lock file anew, and flock belongs to
// the open file description, so two grants in one process, even on one
// connection, exclude each other (locks are not reentrant), and closing
// another descriptor of the file never releases a lock (the trap of
// fcntl(2) locks, which tooz used). A grant is released by clearing its
// record, then dropping the flock and closing the descriptor; the kernel
// releases it when the process dies.
//
// The lock record holds the last token granted for the key and the
// current holders (member ID, token, session). The exclusive holder writes
// it under its flock; shared holders update it under the mutex file
// locks/ENC.s. Holder reads it without locking and reports a holder only
// while that holder's session is alive, so a killed holder is never
// reported. A new grant's token is the larger of the last token plus one
// and the wall clock in microseconds since 1970: tokens of a key strictly
// increase (FencingStrong on one host), and because they follow the clock
// they keep increasing even if the record lost its last writes (a host
// crash without fsync) or the directory was deleted, unless the clock was
// also set back past those grants. Lock files are never removed: the
// locks directory holds one small file per key ever locked. Locks cannot
// be broken (no LockBreaker): a flock ends only with its holder.
//
// With fsync=true, lock records are fsynced when a grant is recorded and
// session and member files before they are published; directories are
// not, so a host crash can still lose a join or a group.
//
// Lock and Campaign wait natively (LockWaiter): the waiter keeps one
// descriptor and retries a non-blocking flock, woken at once by inotify
// when the lock file is written or closed (Linux; a release reaches a
// waiter in another process in about 0.1 ms), else after a jittered pause
// doubling from 1 ms to lock_retry. A blocking flock is never used, as it
// could not be cancelled.
//
// # Groups and watches
//
// A group is a directory created by renaming a complete one into place and
// deleted by renaming it away, under the group's flock, after checking that
// no member's session is alive (dead members are removed, never blocking
// the deletion). Joins, leaves and capability updates are serialized by
// the same flock; a member ID joins at most once while its record's
// session lives. Listing reads the records without locking and leaves out
// (and removes) members whose session is dead.
//
// On Linux, group watches and leader observation are pushed
// (GroupWatcher, HolderWatcher): inotify on the group directory reports
// joins, leaves and updates, inotify on the sessions directory reports a
// member's process dying (its session file is closed) or its session
// removed, and each wake-up re-lists and emits the difference. A watch
// re-checks a few times over the next 300 ms, because a dying process's
// close is reported just before the kernel drops its flocks, and every 5 s
// with no event at all. One inotify instance per connection serves every
// wait and watch; when inotify is unavailable (the per-user instance or
// watch limit is reached) waits poll every lock_retry and watches every
// check_interval. Elsewhere (macOS and the BSDs) watches are polled by the
// backend, every backend.WithPollInterval (500 ms by default).
//
// # Systems
//
// The driver works on Linux, macOS, FreeBSD, NetBSD, OpenBSD and
// DragonFly BSD (flock(2) semantics are the same there); elsewhere it is
// registered but Open fails as unimplemented. All processes must run as
// users that can write the directory (it is created 0700, files 0600).
//
// # Fault injection
//
// ExpireSession removes a member's session files, which ends its sessions
// as described under Liveness.
//
// # compat=tooz
//
// With compat=tooz the directory is tooz's own (tooz.drivers.file), the
// URL's directory itself (the namespace option is refused):
//
//	DIR/.driver_lock                    fcntl lock serializing members
//	DIR/groups/SHA1(group)/.metadata    msgpack {group_id: bytes, encoded: true}
//	DIR/groups/SHA1(group)/SHA1(member).raw
//	                                    msgpack {capabilities, joined_on, member_id, encoded}
//	DIR/tmp/                            files being written
//	DIR/NAME                            the lock NAME: an fcntl (lockf) lock on the file
//	DIR/.baton/keys/ENC, .baton/locks/ENC
//	                                    leaderships, and names tooz cannot lock
//
// SHA1 is the hex SHA-1 of the UTF-8 id; joined_on is oslo's msgpack
// datetime (extension 1, local time). Groups are created, listed and
// deleted as tooz does; joins, leaves, listings and capability updates
// hold the .driver_lock as tooz's do. Capabilities that are one msgpack
// object (what the membership package writes, as tooz's utils.dumps) are
// stored as that object, so tooz reads them as the value they encode;
// other bytes are stored as msgpack bytes with the extra key
// baton_raw_capabilities (tooz ignores extra keys), so baton reads the
// same bytes back. An update (which tooz's file driver lacks) rewrites
// the file with the key baton_updated_on.
//
// Liveness is tooz's: a member counts while its file's mtime is within
// timeout (default 10 s) of now; Renew (every third of it) touches this
// member's files as tooz's heartbeat does, so tooz sees baton's members
// alive, and a crashed baton process's members vanish for tooz timeout
// after its last touch, and a killed tooz member for baton alike
// (Liveness ttl, NonTimeoutBased false). tooz never removes a dead
// member's file and its delete_group then fails for ever; baton's
// DeleteGroup removes files older than timeout, and a Join replaces a
// stale file of the same member (tooz would say it exists). A member
// file someone removed ends the session at the next Renew (ExpireSession
// does so, and ends this process's connections of the member at once).
// Watches poll.
//
// Locks are tooz's: the lock NAME is the file at tooz's
// safe_abs_path(DIR, NAME), locked with fcntl(F_SETLK) on the whole file
// as fasteners' lockf does, and created with its parent directories.
// fcntl locks belong to a process, so this process's grants of one file
// share one descriptor (closing any other would release them), and
// grants exclude each other inside the process as tooz's _Barrier makes
// them. A shared lock is an F_RDLCK: it excludes tooz's (always
// exclusive) holders and coexists with baton's shared holders in every
// process. A killed holder's lock is freed by the kernel at once, both
// ways. Dot segments resolve as in tooz ("a/../b" is the lock "b"). A
// name tooz refuses (leaving DIR, or DIR, groups, tmp, .driver_lock) or
// cannot open (a directory in the way, a component over 255 bytes) can
// never be held by tooz, and uses baton's own file under DIR/.baton/locks;
// a name tooz's prefix check would let out of DIR (DIR=/a, "../ab") is
// refused as invalid. Fencing tokens, and the exclusive holder's process
// and member for Holder, are a JSON record baton writes into the lock
// file (tooz leaves it empty and never reads it); tooz's holders have
// no token (fencing partial) and are reported with an empty member.
// Leaders (tooz's file driver has none) are baton's locks under
// DIR/.baton/keys, which tooz never lists.
package filebackend

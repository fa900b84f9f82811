package ipcbackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// scheme is the URL scheme this driver serves.
const scheme = "ipc"

func init() { backend.Register(info()) }

// Option keys of the connection string.
const (
	optNamespace     = "namespace"
	optTimeout       = "timeout"
	optCheckInterval = "check_interval"
	optSegmentSize   = "segment_size"
	optLockSlots     = "lock_slots"
	optExecutor      = "executor"
)

// options is the option table: the single source of truth for parsing,
// validation and docs.
func options() []driver.OptionSpec {
	return []driver.OptionSpec{
		{
			Key: optNamespace, Type: driver.String, Default: "",
			DefaultDoc: `"" (tooz's keys)`,
			Doc: "Project mixed into every System V key the driver derives. Empty (the default) gives a user lock " +
				"tooz's own semaphore key, so tooz and baton processes on one host exclude each other on one lock name; " +
				"any other value (at most 200 bytes, no NUL) is a separate namespace whose locks, groups and members " +
				"are invisible to the others.",
		},
		{
			Key: optTimeout, Type: driver.Duration, Default: "10", Min: driver.MinValue(0),
			Doc: "Reported as the session TTL. A member is alive exactly while its process holds its session " +
				"semaphore (SEM_UNDO), so no timeout decides liveness.",
		},
		{
			Key: optCheckInterval, Type: driver.Duration, Default: "250ms", Min: driver.MinValue(0.001),
			Doc: "How often a connection checks that its session semaphore still exists. A session semaphore removed " +
				"by someone else (ipcrm, or ExpireSession in tests) ends the session within this interval: its locks " +
				"are released and its memberships removed.",
		},
		{
			Key: optSegmentSize, Type: driver.Int, Default: "4194304", Min: driver.MinValue(65536),
			Doc: "Size in bytes of the namespace's shared memory segment, used by the process that creates it " +
				"(later processes use the existing segment's size). It holds the lock table and two copies of the " +
				"group and session state; a change that does not fit fails with an unavailable error.",
		},
		{
			Key: optLockSlots, Type: driver.Int, Default: "8192", Min: driver.MinValue(16),
			Doc: "Number of lock records (64 bytes each) in a new segment: one per lock or leadership name in use " +
				"since the segment was created.",
		},
		{
			Key: optExecutor, Type: driver.String, Default: "threaded",
			Enum: []string{"threaded", "thread", "threading", "synchronous", "sync"},
			Doc:  "Accepted for tooz compatibility (tooz's worker-thread choice); every value behaves the same.",
		},
	}
}

// info is the driver's registration record.
func info() driver.Info {
	return driver.Info{
		Name:    "System V IPC",
		Schemes: []string{scheme},
		Summary: "Coordination between the processes of one host through System V semaphores and one shared " +
			"memory segment per namespace, with raw system calls (no cgo); Linux on 64-bit architectures only " +
			"(elsewhere Open fails as unimplemented). Every primitive, across threads and processes, never across hosts. " +
			"A lock is a semaphore taken with SEM_UNDO, so the kernel releases it the instant its holder exits or is " +
			"killed; waiters block in semtimedop and are woken by the release; a release never removes the semaphore. " +
			"Shared locks use a second semaphore of the set. In the default namespace a user lock's semaphore key is " +
			"tooz's (md5 of \"__TOOZ_LOCK_\" and the name), so tooz and baton exclude each other on one name. " +
			"Liveness is a session per connection: a semaphore the connection holds with SEM_UNDO; a member whose " +
			"process dies is gone at once, with no timeout. Groups, members and sessions live in the shared memory " +
			"segment, guarded by a semaphore mutex (SEM_UNDO) and written double-buffered, so a process killed while " +
			"writing leaves the previous state intact. Fencing tokens are kept in the segment's lock table and are " +
			"the larger of the previous token plus one and the wall clock in microseconds: they strictly increase, " +
			"also after the last process closed and the segment was removed, unless the clock is set back (strong on " +
			"one host). Watches are polled. The last connection of a namespace to close removes its semaphores and, when no group is left, " +
			"its segment; groups outlive their members until deleted (or RemoveNamespace).",
		URLForm: "ipc://[?options]",
		Examples: []string{
			"ipc://",
			"ipc://?namespace=app",
			"ipc://?executor=synchronous",
			"ipc://?namespace=app&segment_size=16777216&lock_slots=65536",
		},
		Characteristics: driver.Characteristics{
			DistributedAcrossThreads:   true,
			DistributedAcrossProcesses: true,
			NonTimeoutBased:            true,
			Linearizable:               true,
			Sequential:                 true,
			Causal:                     true,
			SameViewUnderPartitions:    true,
			SameViewAcrossClients:      true,
			Liveness:                   driver.LivenessSession,
			Watch:                      driver.WatchPoll,
			Fencing:                    driver.FencingStrong,
			SharedLocks:                true,
		},
		Options:  options(),
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg)
	return err
}

//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"testing"
	"time"

	"github.com/baton-go/baton/internal/proctest"
)

// procs runs the cross-process checks on ipc://: TestMain runs a helper
// instead of the tests when the binary was started as one. A helper still
// running when its test ends is given time to Close its Backend, so that
// the namespace's last connection removes its IPC objects.
var procs = proctest.Config{
	EnvPrefix:   "BATON_IPCBACKEND",
	NewURL:      newURL,
	WatchPoll:   20 * time.Millisecond,
	LogTakeover: true,
	StopGrace:   20 * time.Second,
}

// A process killed with SIGKILL while it holds a lock, a leadership and a
// membership loses all of them at once (the kernel undoes its semaphore
// operations, SEM_UNDO): another process's single TryLock
// succeeds right after the kill, with a larger token, the dead member is
// no longer listed and does not keep its group from being deleted, and a
// waiter blocked in Lock takes over within milliseconds.
func TestKilledProcessReleasesEverything(t *testing.T) {
	procs.KilledProcessReleasesEverything(t)
}

// Processes that increment a shared counter under one lock never overlap:
// no increment is lost, and every holder's fencing token is above the
// last one written by any process.
func TestProcessesExcludeEachOther(t *testing.T) { procs.ProcessesExcludeEachOther(t) }

// Shared locks are shared across processes and exclude exclusive ones;
// a killed shared holder's hold ends with it.
func TestSharedLockAcrossProcesses(t *testing.T) { procs.SharedLockAcrossProcesses(t) }

// A group watch sees another process join and, right after its SIGKILL,
// leave: no timeout is involved.
func TestWatchSeesKilledProcessLeave(t *testing.T) { procs.WatchSeesKilledProcessLeave(t) }

// BenchmarkLockHandover measures how long a lock takes to pass from a
// releasing process to one blocked in Lock in another process: the time
// from the release call to the waiter's acquisition, as both clocks (one
// host) tell it.
func BenchmarkLockHandover(b *testing.B) { procs.LockHandover(b) }

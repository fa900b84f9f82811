//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	_ "github.com/baton-go/baton/backend/ipcbackend"
)

// ipcEnv names the "server" of the ipc target: System V IPC needs none,
// so it is always ipc:// (set here unless given), and each benchmark
// works in a namespace of its own.
const ipcEnv = "BATON_TEST_IPC_URL"

// The ipc target: baton's ipc:// against a bare semop(2) P/V pair on one
// semaphore with SEM_UNDO (the floor: the same system calls baton's lock
// makes, and nothing else) and against tooz's ipc driver.
func init() {
	if os.Getenv(ipcEnv) == "" {
		_ = os.Setenv(ipcEnv, "ipc://")
	}
	targets = append(targets, &target{
		name: "ipc", env: ipcEnv, server: "ipc",
		lockPeer: "semop P/V, SEM_UNDO (floor)", newLockPeer: newSemopLocker,
		electPeer: "semop P/V, SEM_UNDO (floor)", newElectPeer: newSemopElector, crashPeer: true,
		toozURL: func(*site) string { return "ipc://" },
	})
}

// System V constants the unix package lacks.
const (
	semNoWait = 0o4000
	semUndo   = 0x1000
	semSetVal = 16
)

type sembuf struct {
	num uint16
	op  int16
	flg int16
}

func semop(id int, ops []sembuf, timeout *unix.Timespec) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])),
			uintptr(len(ops)), uintptr(unsafe.Pointer(timeout)), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// semopRaw performs ops that never block as a raw system call.
func semopRaw(id int, ops []sembuf) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), uintptr(len(ops)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// semaphore returns a semaphore set of one semaphore, free at 1, with
// the key derived from name (created when missing); it is removed when
// tb ends.
func semaphore(tb testing.TB, name string) int {
	h := fnv.New32a()
	h.Write([]byte("baton-bench-semop-" + name))
	key := int32(h.Sum32() | 1)
	id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 1, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	switch errno {
	case 0:
		if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, id, 0, semSetVal, 1, 0, 0); errno != 0 {
			tb.Fatalf("semctl SETVAL: %v", errno)
		}
	case unix.EEXIST:
		if id, _, errno = unix.Syscall(unix.SYS_SEMGET, uintptr(key), 1, 0); errno != 0 {
			tb.Fatalf("semget: %v", errno)
		}
	default:
		tb.Fatalf("semget: %v", errno)
	}
	tb.Cleanup(func() { _, _, _ = unix.Syscall(unix.SYS_SEMCTL, id, 0, unix.IPC_RMID) })
	return int(id)
}

// newSemopLocker is the floor: a non-blocking P (SEM_UNDO) and a V on a
// semaphore kept open.
func newSemopLocker(tb testing.TB, _ *site) lockOp {
	id := semaphore(tb, "lock-"+fmt.Sprint(time.Now().UnixNano()))
	p := []sembuf{{num: 0, op: -1, flg: semNoWait | semUndo}}
	v := []sembuf{{num: 0, op: 1, flg: semUndo}}
	return func(context.Context) error {
		if err := semopRaw(id, p); err != nil {
			return fmt.Errorf("semop P: %w", err)
		}
		return semopRaw(id, v)
	}
}

// newSemopElector is the floor of takeovers: a blocking P (SEM_UNDO, so
// the kernel releases it when the leader is killed) on the semaphore of
// name, in slices of 50ms to see ctx.
func newSemopElector(tb testing.TB, _ *site, _ bool, name string) elector {
	id := semaphore(tb, "elect-"+name)
	return funcElector(func(ctx context.Context) (func() error, error) {
		ts := unix.NsecToTimespec((50 * time.Millisecond).Nanoseconds())
		for {
			err := semop(id, []sembuf{{num: 0, op: -1, flg: semUndo}}, &ts)
			switch {
			case err == nil:
				return func() error { return semop(id, []sembuf{{num: 0, op: 1, flg: semUndo}}, nil) }, nil
			case errors.Is(err, unix.EAGAIN):
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			default:
				return nil, fmt.Errorf("semop P: %w", err)
			}
		}
	})
}

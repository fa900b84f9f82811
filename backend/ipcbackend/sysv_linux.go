//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System V constants the unix package does not define (linux/sem.h,
// linux/ipc.h).
const (
	ipcNoWait  = 0o4000
	semUndo    = 0x1000
	cmdGetPID  = 11
	cmdGetVal  = 12
	cmdGetNcnt = 14
	cmdSetVal  = 16
	permMode   = 0o600
)

// sembuf is struct sembuf: the same 6-byte layout on every Linux
// architecture.
type sembuf struct {
	num uint16
	op  int16
	flg int16
}

// semget returns the semaphore set of key with nsems semaphores, creating
// it when flags says so.
func semget(key int32, nsems, flags int) (int, error) {
	for {
		id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
		switch errno {
		case 0:
			return int(id), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

// semop performs ops atomically. A nil timeout waits for ever; EINTR is
// retried (with the full timeout again: callers loop on short timeouts).
func semop(id int, ops []sembuf, timeout *unix.Timespec) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])),
			uintptr(len(ops)), uintptr(unsafe.Pointer(timeout)), 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// semopNoWait performs ops that never block (IPC_NOWAIT, or only
// increments) as a raw system call, without telling the scheduler: the
// lock's fast path.
func semopNoWait(id int, ops []sembuf) error {
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])),
			uintptr(len(ops)), 0, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// semctl runs a semctl command that takes no buffer (GETVAL, SETVAL,
// GETPID, GETNCNT, IPC_RMID) and returns its result.
func semctl(id, num, cmd, arg int) (int, error) {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), uintptr(arg), 0, 0)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

// semRemove removes a semaphore set; waiters get EIDRM.
func semRemove(id int) error {
	_, err := semctl(id, 0, unix.IPC_RMID, 0)
	return err
}

// timespec converts d to a semtimedop timeout.
func timespec(d time.Duration) unix.Timespec { return unix.NsecToTimespec(d.Nanoseconds()) }

// gone reports whether err says the IPC object no longer exists (removed
// meanwhile, or never there).
func gone(err error) bool {
	return err == unix.EIDRM || err == unix.EINVAL || err == unix.ENOENT
}

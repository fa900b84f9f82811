//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tooz's file locks are fcntl(2) record locks on the whole file (Python's
// fcntl.lockf, as fasteners takes them). They belong to a process, not to
// an open file, and closing any descriptor of the file releases all the
// process's locks on it; so every fcntl lock of this process on a path
// goes through one entry of fcntlFiles, which keeps the one descriptor
// while anything is held and serializes every operation on the path, as
// tooz's in-process _Barrier does.

// fcntlFile is the process's state of one lock file.
type fcntlFile struct {
	mu         sync.Mutex
	fd         int // -1 when nothing is held
	size       int // of the file, while fd is open
	excl       bool
	exclToken  uint64
	exclMember string
	shared     map[uint64]string // token → member of the shared holds
}

var fcntlFiles = struct {
	sync.Mutex
	m map[string]*fcntlFile
}{m: map[string]*fcntlFile{}}

func fcntlEntry(path string) *fcntlFile {
	fcntlFiles.Lock()
	defer fcntlFiles.Unlock()
	f := fcntlFiles.m[path]
	if f == nil {
		f = &fcntlFile{fd: -1, shared: map[uint64]string{}}
		fcntlFiles.m[path] = f
	}
	return f
}

// setlk tries once to take (F_WRLCK, F_RDLCK) or drop (F_UNLCK) the
// whole-file record lock on fd; false when another process holds a
// conflicting one.
func setlk(fd int, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			return false, nil
		}
		return false, err
	}
}

// getlk reports the process holding a lock on fd's file that conflicts
// with an exclusive one (never this process's own).
func getlk(fd int) (pid int32, held bool, err error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
		return 0, false, err
	}
	return lk.Pid, lk.Type != unix.F_UNLCK, nil
}

// toozRecord is what a baton holder writes into a lock file, which tooz
// leaves empty and never reads: the last fencing token of the name and
// the exclusive holder (process and member), for Holder and the next
// token.
type toozRecord struct {
	Token  uint64 `json:"token"`
	PID    int32  `json:"pid,omitempty"`
	Member string `json:"member,omitempty"`
}

// readRecord reads the record of a lock file, and the file's length.
func readRecord(fd int) (toozRecord, int) {
	buf, err := preadAll(fd, make([]byte, 0, 2048))
	var r toozRecord
	if err != nil || json.Unmarshal(buf, &r) != nil {
		return toozRecord{}, len(buf)
	}
	return r, len(buf)
}

// writeRecord writes r over a file of size bytes, padded with spaces
// (which JSON ignores) to that size rather than truncated.
func writeRecord(fd int, r toozRecord, size int) (int, error) {
	b, _ := json.Marshal(r)
	for len(b) < size {
		b = append(b, ' ')
	}
	return len(b), pwriteAll(fd, b)
}

// nextToken is the larger of the last token plus one and the wall clock
// in microseconds, so tokens increase also when a record was lost.
func nextToozToken(last uint64) uint64 {
	return max(last+1, uint64(time.Now().UnixMicro()))
}

// errNoTooz means that tooz cannot open this lock file (a directory in
// the way, a name too long): no tooz process can hold the lock.
var errNoTooz = errors.New("tooz cannot lock this path")

// openLockFile opens (creating it and its parent directories, as
// fasteners does) the lock file path for reading and writing.
func openLockFile(path string) (int, error) {
	fd, err := openFileMode(path, unix.O_RDWR|unix.O_CREAT, 0o644)
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENAMETOOLONG) || errors.Is(err, unix.EEXIST) {
				return -1, errNoTooz
			}
			return -1, err
		}
		fd, err = openFileMode(path, unix.O_RDWR|unix.O_CREAT, 0o644)
	}
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENAMETOOLONG) {
		return -1, errNoTooz
	}
	return fd, err
}

func openFileMode(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// tryLockFile takes path exclusively or shared for member: false when
// another holder (of this process or another) excludes it.
func tryLockFile(path, member string, shared bool) (uint64, bool, error) {
	f := fcntlEntry(path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd >= 0 {
		if !shared || f.excl {
			return 0, false, nil
		}
		// Another shared hold of this process: the lock is ours already.
		r, size := readRecord(f.fd)
		r.Token = nextToozToken(r.Token)
		if _, err := writeRecord(f.fd, toozRecord{Token: r.Token}, size); err != nil {
			return 0, false, err
		}
		f.shared[r.Token] = member
		return r.Token, true, nil
	}
	fd, err := openLockFile(path)
	if err != nil {
		return 0, false, err
	}
	typ := int16(unix.F_WRLCK)
	if shared {
		typ = unix.F_RDLCK
	}
	ok, err := setlk(fd, typ)
	if err != nil || !ok {
		// Nothing of this process is held on path: closing is safe.
		closeFD(fd)
		return 0, false, err
	}
	r, size := readRecord(fd)
	token := nextToozToken(r.Token)
	rec := toozRecord{Token: token}
	if !shared {
		rec.PID, rec.Member = int32(os.Getpid()), member
	}
	size, err = writeRecord(fd, rec, size)
	if err != nil {
		closeFD(fd)
		return 0, false, err
	}
	f.fd, f.size = fd, size
	if shared {
		f.shared[token] = member
	} else {
		f.excl, f.exclToken, f.exclMember = true, token, member
	}
	return token, true, nil
}

// unlockFile releases the grant token of path; false when it does not
// hold it.
func unlockFile(path string, token uint64) bool {
	f := fcntlEntry(path)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.fd < 0:
		return false
	case f.excl && f.exclToken == token:
		_, _ = writeRecord(f.fd, toozRecord{Token: token}, f.size)
		f.excl, f.exclToken, f.exclMember = false, 0, ""
	case f.excl:
		return false
	default:
		if _, ok := f.shared[token]; !ok {
			return false
		}
		delete(f.shared, token)
		if len(f.shared) > 0 {
			return true
		}
	}
	_, _ = setlk(f.fd, unix.F_UNLCK)
	closeFD(f.fd)
	f.fd = -1
	return true
}

// holderOfFile reports the holder of path: this process's from memory,
// another process's from the lock (F_GETLK) and the record it wrote,
// which names the member only when the record's process is the one
// holding the lock (else the holder is outside baton: a tooz process,
// reported with an empty member and token 0).
func holderOfFile(path string) (member string, token uint64, held bool, err error) {
	f := fcntlEntry(path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd >= 0 {
		if f.excl {
			return f.exclMember, f.exclToken, true, nil
		}
		var best uint64
		for t, m := range f.shared {
			if best == 0 || t < best {
				best, member = t, m
			}
		}
		return member, best, true, nil
	}
	fd, err := openFileMode(path, unix.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENAMETOOLONG) {
			return "", 0, false, nil
		}
		return "", 0, false, err
	}
	defer closeFD(fd) // nothing of this process is held on path
	pid, held, err := getlk(fd)
	if err != nil || !held {
		return "", 0, false, err
	}
	if r, _ := readRecord(fd); r.PID != 0 && r.PID == pid {
		return r.Member, r.Token, true, nil
	}
	return "", 0, true, nil
}

// withDriverLock runs fn holding tooz's .driver_lock (an fcntl lock,
// polled as fasteners polls it), or fails with ctx.
func withDriverLock(ctx context.Context, path string, fn func() error) error {
	f := fcntlEntry(path)
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, err := openLockFile(path)
	if err != nil {
		return ioErr("open the driver lock", err)
	}
	defer closeFD(fd)
	pause := time.Millisecond
	for {
		ok, err := setlk(fd, unix.F_WRLCK)
		if err != nil {
			return ioErr("take the driver lock", err)
		}
		if ok {
			break
		}
		if err := sleepCtx(ctx, pause); err != nil {
			return ctxErr(err)
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
	defer func() { _, _ = setlk(fd, unix.F_UNLCK) }()
	return fn()
}

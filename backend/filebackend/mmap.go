//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// mapSize is how much of a lock file an exclusive grant maps: its record
// (one holder) always fits; a longer one (many shared holders) is read and
// written with pread and pwrite instead.
const mapSize = 4096

// errRecordTooLong reports a record that does not fit the mapping.
var errRecordTooLong = errors.New("lock record longer than the mapping")

// mapLockFile maps the first mapSize bytes of lock file fd, whose
// exclusive flock the caller holds, growing the file to mapSize first
// (bytes after a record are ignored, and zeros read as no record). An
// exclusive grant then reads the last token and writes its record through
// memory: its only system calls are the flock and the release (a pwrite,
// which wakes the waiters' inotify watches, and the unlock). The mapping
// lives as long as the open file description (the idle cache keeps both).
// It returns nil when the file cannot be mapped; the caller then uses
// pread and pwrite.
func mapLockFile(fd int) []byte {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil
	}
	if st.Size < mapSize {
		if err := unix.Ftruncate(fd, mapSize); err != nil {
			return nil
		}
	}
	mem, err := unix.Mmap(fd, 0, mapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return mem
}

// unmapLockFile removes a mapping of mapLockFile (nil: none).
func unmapLockFile(mem []byte) {
	if mem != nil {
		_ = unix.Munmap(mem)
	}
}

// closeLockFile closes a lock file's description and its mapping.
func closeLockFile(fd int, mem []byte) {
	unmapLockFile(mem)
	closeFD(fd)
}

// withMapping runs fn, which reads or writes a mapping, and turns a fault
// on it (the file truncated under it by someone else) into an error
// instead of a crash.
func withMapping(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("lock file mapping: %v", r)
		}
	}()
	return fn()
}

// recordMapped writes the exclusive grant of member into the mapped lock
// record mem and returns its token; ok is false when the mapping cannot
// be used (none, a record too long for it, a fault), and nothing was
// written: the caller then records the grant with pread and pwrite.
func (c *conn) recordMapped(mem []byte, name, member string) (token uint64, ok bool) {
	if mem == nil {
		return 0, false
	}
	bp := c.getBuf()
	defer c.putBuf(bp)
	err := withMapping(func() error {
		var rec lockRecord
		n, err := recordLen(mem)
		switch {
		case err == nil && n > len(mem):
			return errRecordTooLong
		case err == nil:
			rec, err = decodeRecord(mem[:n])
		}
		if err != nil {
			c.log.Warn("malformed lock record; starting it afresh", zap.String("file", c.l.lockFile(name)), zap.Error(err))
			rec = lockRecord{}
		}
		token = nextToken(rec.last, time.Now().UnixMicro())
		rec = lockRecord{last: token, mode: modeExclusive, holders: []lockHolder{{token: token, session: c.sess.id, member: member}}}
		*bp = rec.encode(*bp)
		if len(*bp) > len(mem) {
			return errRecordTooLong
		}
		copy(mem, *bp)
		if c.s.fsync {
			return unix.Msync(mem, unix.MS_SYNC)
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errRecordTooLong) {
			c.log.Debug("lock file mapping unusable; using pread and pwrite", zap.String("file", c.l.lockFile(name)), zap.Error(err))
		}
		return 0, false
	}
	return token, true
}

//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// grantKey identifies a grant: tokens of a key never repeat.
type grantKey struct {
	key   string
	token uint64
}

// grant is a held lock: an open file description of the lock file that
// holds the flock. Every grant has its own, which is what makes two grants
// of one process (or one connection) exclude each other.
type grant struct {
	key    string
	name   string // the lock file's name in the locks directory
	fd     int
	mem    []byte // the lock file's mapping (mmap.go), kept with fd; nil when none
	token  uint64
	shared bool
}

// TryLock tries once to take key exclusively: it opens the lock file
// anew, takes a non-blocking exclusive flock, and records the holder and
// the next fencing token in the file. It does not block.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if err := c.check(ctx); err != nil {
		return driver.Lease{}, false, err
	}
	name, fd, mem, ok, err := c.tryLockKey(req.Key, unix.LOCK_EX)
	if err != nil || !ok {
		return driver.Lease{}, false, err
	}
	lease, err := c.grantExclusive(fd, mem, req.Key, name, req.Member)
	if err != nil {
		return driver.Lease{}, false, err
	}
	return lease, true, nil
}

// grantExclusive records an exclusive grant in the lock file whose
// exclusive flock fd holds, through the file's mapping mem (made now when
// nil, see mmap.go) or else with pread and pwrite, and registers it. On
// error the flock is released and fd closed.
func (c *conn) grantExclusive(fd int, mem []byte, key, name, member string) (driver.Lease, error) {
	if mem == nil {
		mem = mapLockFile(fd)
	}
	token, ok := c.recordMapped(mem, name, member)
	if !ok {
		var err error
		if token, err = c.recordExclusive(fd, name, member); err != nil {
			unlockClose(fd)
			unmapLockFile(mem)
			return driver.Lease{}, err
		}
	}
	g := &grant{key: key, name: name, fd: fd, mem: mem, token: token}
	if err := c.register(g); err != nil {
		_ = c.release(context.Background(), g)
		return driver.Lease{}, err
	}
	return driver.Lease{Token: token}, nil
}

// recordExclusive records an exclusive grant of member with pread and
// pwrite, and returns its token.
func (c *conn) recordExclusive(fd int, name, member string) (uint64, error) {
	bp := c.getBuf()
	defer c.putBuf(bp)
	rec, err := c.readRecordLocked(fd, name, bp)
	if err != nil {
		return 0, err
	}
	token := nextToken(rec.last, time.Now().UnixMicro())
	rec = lockRecord{last: token, mode: modeExclusive, holders: []lockHolder{{token: token, session: c.sess.id, member: member}}}
	*bp = rec.encode(*bp)
	if err := c.writeRecord(fd, *bp); err != nil {
		return 0, ioErr("record lock holder", err)
	}
	return token, nil
}

// readRecordLocked reads the record of a lock file whose writers are
// excluded (by the exclusive flock or the shared mutex). A malformed
// record (a write torn by a host crash) is treated as empty: tokens then
// continue from the clock.
func (c *conn) readRecordLocked(fd int, name string, bp *[]byte) (lockRecord, error) {
	b, err := preadAll(fd, *bp)
	if err != nil {
		return lockRecord{}, ioErr("read lock file "+c.l.lockFile(name), err)
	}
	*bp = b
	rec, err := decodeRecord(b)
	if err != nil {
		c.log.Warn("malformed lock record; starting it afresh", zap.String("file", c.l.lockFile(name)), zap.Error(err))
		return lockRecord{}, nil
	}
	return rec, nil
}

// writeRecord writes an encoded record at offset 0, with fsync when
// configured.
func (c *conn) writeRecord(fd int, b []byte) error {
	if err := pwriteAll(fd, b); err != nil {
		return err
	}
	if c.s.fsync {
		return unix.Fsync(fd)
	}
	return nil
}

// register adds g to the grant table, unless the connection can no longer
// hold anything.
func (c *conn) register(g *grant) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableLocked(); err != nil {
		return err
	}
	c.grants[grantKey{g.key, g.token}] = g
	return nil
}

// tryLockKey takes a non-blocking flock (how: LOCK_EX or LOCK_SH) on
// key's lock file, through the connection's idle description of it when
// there is one, else through a new one. It returns the file's name, the
// descriptor and its mapping (nil when it has none yet) when the lock was
// taken; otherwise the description goes back to the idle cache.
func (c *conn) tryLockKey(key string, how int) (string, int, []byte, bool, error) {
	il, ok := c.idle.take(key)
	if !ok {
		name := encodeName(key)
		fd, ok, err := c.tryLockFile(name, how)
		return name, fd, nil, ok, err
	}
	ok, err := tryFlock(il.fd, how)
	if err != nil || !ok {
		c.idle.put(key, il.name, il.fd, il.mem)
		if err != nil {
			return "", -1, nil, false, ioErr("flock", err)
		}
		return "", -1, nil, false, nil
	}
	return il.name, il.fd, il.mem, true, nil
}

// unlockIdle releases fd's flock and keeps the description (and its
// mapping mem) in the idle cache for key's next grant (closing it when
// the cache has no room).
func (c *conn) unlockIdle(key, name string, fd int, mem []byte) {
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		closeLockFile(fd, mem)
		return
	}
	c.idle.put(key, name, fd, mem)
}

// tryLockFile opens lock file name anew and takes a non-blocking flock
// (how: LOCK_EX or LOCK_SH) on it. It returns the descriptor when the lock
// was taken; otherwise nothing stays open.
func (c *conn) tryLockFile(name string, how int) (int, bool, error) {
	fd, err := c.openLock(name, unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return -1, false, err
	}
	ok, err := tryFlock(fd, how)
	if err != nil || !ok {
		closeFD(fd)
		if err != nil {
			return -1, false, ioErr("flock", err)
		}
		return -1, false, nil
	}
	return fd, true, nil
}

// openLock opens the file name of the locks directory relative to the
// directory's descriptor (one path component to resolve, not the whole
// path). Its errors are classified; ENOENT stays reachable.
func (c *conn) openLock(name string, flags int) (int, error) {
	c.dirMu.RLock()
	defer c.dirMu.RUnlock()
	if c.locksFD < 0 {
		return -1, driver.Wrap(driver.CodeCanceled, ErrConnClosed)
	}
	for {
		fd, err := unix.Openat(c.locksFD, name, flags|unix.O_CLOEXEC, fileMode)
		switch {
		case err == nil:
			return fd, nil
		case err != unix.EINTR:
			return -1, ioErr("open lock file "+c.l.lockFile(name), err)
		}
	}
}

// unlockClose releases fd's flock explicitly (closing alone would not
// release it while a forked child still shares the descriptor) and closes
// it.
func unlockClose(fd int) {
	_ = unix.Flock(fd, unix.LOCK_UN)
	closeFD(fd)
}

// Unlock releases the grant of key identified by token: it clears the
// holder from the lock file, then drops the flock. CodeNotHeld when this
// connection holds no such grant (released, lost with the session, or
// never granted): another holder's lock is never touched.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	c.mu.Lock()
	g, ok := c.grants[grantKey{key, token}]
	delete(c.grants, grantKey{key, token})
	err := c.usableLocked()
	c.mu.Unlock()
	if !ok {
		if err != nil && isCode(err, driver.CodeLost) {
			return driver.Errorf(driver.CodeNotHeld, "lock %q token %d: session ended: %w", key, token, err)
		}
		return driver.Errorf(driver.CodeNotHeld, "lock %q token %d is not held by this connection", key, token)
	}
	return c.release(ctx, g)
}

// release clears g from its lock file and drops its flock. The flock is
// dropped even when the file could not be written.
func (c *conn) release(ctx context.Context, g *grant) error {
	defer c.unlockIdle(g.key, g.name, g.fd, g.mem)
	if g.shared {
		return c.updateShared(ctx, g.fd, g.name, func(rec *lockRecord) {
			kept := rec.holders[:0]
			for _, h := range rec.holders {
				if h.token != g.token {
					kept = append(kept, h)
				}
			}
			rec.holders = kept
		})
	}
	bp := c.getBuf()
	defer c.putBuf(bp)
	rec := lockRecord{last: g.token, mode: modeFree}
	*bp = rec.encode(*bp)
	if err := pwriteAll(g.fd, *bp); err != nil {
		return ioErr("clear lock holder", err)
	}
	return nil
}

// RefreshLock has nothing to extend: locks live as long as the session.
// It reports CodeNotHeld when the grant is gone.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, _ time.Duration) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	_, ok := c.grants[grantKey{key, token}]
	c.mu.Unlock()
	if !ok {
		return driver.Errorf(driver.CodeNotHeld, "lock %q token %d is not held by this connection", key, token)
	}
	return nil
}

// TryLockShared tries once to take key shared: a non-blocking shared flock
// on a new open file description, then, under the key's mutex file, the
// next token and this holder are added to the record (holders of dead
// sessions are dropped on the way). It blocks only while another shared
// holder updates the record.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if err := c.check(ctx); err != nil {
		return driver.Lease{}, false, err
	}
	name, fd, mem, ok, err := c.tryLockKey(req.Key, unix.LOCK_SH)
	if err != nil || !ok {
		return driver.Lease{}, false, err
	}
	var token uint64
	err = c.updateShared(ctx, fd, name, func(rec *lockRecord) {
		token = nextToken(rec.last, time.Now().UnixMicro())
		rec.last = token
		rec.holders = append(rec.holders, lockHolder{token: token, session: c.sess.id, member: req.Member})
	})
	if err != nil {
		unlockClose(fd)
		unmapLockFile(mem)
		return driver.Lease{}, false, err
	}
	g := &grant{key: req.Key, name: name, fd: fd, mem: mem, token: token, shared: true}
	if err := c.register(g); err != nil {
		_ = c.release(context.Background(), g)
		return driver.Lease{}, false, err
	}
	return driver.Lease{Token: token}, true, nil
}

// updateShared changes the record of a lock this connection holds shared
// through fd, under the key's mutex file: holders of dead sessions are
// dropped first, then edit runs, and the mode follows the holders left.
func (c *conn) updateShared(ctx context.Context, fd int, name string, edit func(*lockRecord)) error {
	mfd, err := c.openLock(name+sharedSuffix, unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return err
	}
	defer unlockClose(mfd)
	if err := flockCtx(ctx, mfd, unix.LOCK_EX); err != nil {
		if _, ok := driver.CodeOf(err); ok {
			return err
		}
		return ioErr("lock mutex", err)
	}
	bp := c.getBuf()
	defer c.putBuf(bp)
	rec, err := c.readRecordLocked(fd, name, bp)
	if err != nil {
		return err
	}
	if rec.mode != modeShared {
		// An exclusive holder recorded here is dead (a shared flock is
		// held), and a free record has no holders.
		rec.holders = nil
	}
	kept := rec.holders[:0]
	for _, h := range rec.holders {
		alive, err := c.alive(h.session)
		if err != nil {
			return ioErr("probe session", err)
		}
		if alive {
			kept = append(kept, h)
		}
	}
	rec.holders = kept
	edit(&rec)
	rec.mode = modeShared
	if len(rec.holders) == 0 {
		rec.mode = modeFree
	}
	*bp = rec.encode(*bp)
	if err := c.writeRecord(fd, *bp); err != nil {
		return ioErr("record lock holders", err)
	}
	return nil
}

// Holder reports who holds key: the exclusive holder, or the first shared
// holder whose session is alive. Holders whose process died are not
// reported (their flocks are gone). CodeNotFound when nobody holds key. It
// reads the lock file without locking it, so it never disturbs holders or
// acquirers.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	if err := c.check(ctx); err != nil {
		return driver.Holder{}, err
	}
	rec, err := c.readRecord(encodeName(key))
	if err != nil {
		return driver.Holder{}, err
	}
	if rec.mode != modeFree {
		for _, h := range rec.holders {
			alive, err := c.alive(h.session)
			if err != nil {
				return driver.Holder{}, ioErr("probe session", err)
			}
			if alive {
				return driver.Holder{Member: h.member, Token: h.token}, nil
			}
		}
	}
	return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
}

// readRecord reads a lock file without holding any lock on it; a record
// torn by a concurrent write fails its checksum and is read again.
func (c *conn) readRecord(name string) (lockRecord, error) {
	fd, err := c.openLock(name, unix.O_RDONLY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return lockRecord{}, nil
		}
		return lockRecord{}, err
	}
	defer closeFD(fd)
	bp := c.getBuf()
	defer c.putBuf(bp)
	for attempt := 0; ; attempt++ {
		b, err := preadAll(fd, *bp)
		if err != nil {
			return lockRecord{}, ioErr("read lock file", err)
		}
		*bp = b
		rec, err := decodeRecord(b)
		if err == nil {
			return rec, nil
		}
		if attempt == 20 {
			return lockRecord{}, driver.Wrap(driver.CodeInternal, fmt.Errorf("lock file %s: %w", c.l.lockFile(name), err))
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Microsecond)
	}
}

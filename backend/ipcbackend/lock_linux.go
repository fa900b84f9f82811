//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"crypto/sha256"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// lockSem is a lock key resolved in this connection: its semaphore set
// and its lock table entry.
type lockSem struct {
	key    string
	semKey int32
	id     int
	nsems  int // 2 for sets baton created; 1 for a set tooz created
	slot   int
}

// grantKey identifies a grant: tokens of a key never repeat.
type grantKey struct {
	key   string
	token uint64
}

// grant is a held lock.
type grant struct {
	key    string
	ls     *lockSem
	token  uint64
	shared bool // shared hold: released on the second semaphore (on a one-semaphore set, the first)
}

// initWait bounds the wait for another process to initialise a new
// semaphore set (between its semget and its SETVAL).
const initWait = time.Second

// resolve returns key's semaphore set and lock table entry, creating
// both when missing (under the namespace mutex).
func (c *conn) resolve(ctx context.Context, key string) (*lockSem, error) {
	c.locksMu.Lock()
	ls, ok := c.locks[key]
	c.locksMu.Unlock()
	if ok {
		return ls, nil
	}
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if c.st.mem == nil {
		return nil, c.check(ctx)
	}
	ls = &lockSem{key: key, semKey: c.s.keys.lock(key)}
	hash := keyHash(key)
	for {
		id, err := semget(ls.semKey, 0, 0)
		if err == unix.ENOENT {
			created, err := c.create(ctx, ls, hash)
			if err != nil {
				return nil, err
			}
			if !created {
				continue // someone else created it meanwhile
			}
			break
		}
		if err != nil {
			return nil, sysErr("get lock semaphore", err)
		}
		ls.id, ls.nsems = id, 2
		if _, err := semctl(id, 1, cmdGetVal, 0); err != nil {
			ls.nsems = 1
		}
		if err := c.awaitInit(ctx, ls); err != nil {
			if gone(err) {
				continue
			}
			return nil, err
		}
		if ls.slot = c.st.findSlot(hash); ls.slot < 0 {
			if err := c.st.lock(ctx); err != nil {
				return nil, err
			}
			ls.slot, err = c.st.allocSlot(hash, ls.semKey)
			c.st.unlock()
			if err != nil {
				return nil, err
			}
		}
		break
	}
	c.locksMu.Lock()
	c.locks[key] = ls
	c.locksMu.Unlock()
	return ls, nil
}

// create creates key's semaphore set (two semaphores: the lock, free at
// 1, and the count of shared holders) and its lock table entry under the
// namespace mutex. It reports false when the set exists.
func (c *conn) create(ctx context.Context, ls *lockSem, hash [16]byte) (bool, error) {
	if err := c.st.lock(ctx); err != nil {
		return false, err
	}
	defer c.st.unlock()
	id, err := semget(ls.semKey, 2, unix.IPC_CREAT|unix.IPC_EXCL|permMode)
	if err == unix.EEXIST {
		return false, nil
	}
	if err != nil {
		return false, sysErr("create lock semaphore", err)
	}
	if _, err := semctl(id, 0, cmdSetVal, 1); err != nil {
		_ = semRemove(id)
		return false, sysErr("initialise lock semaphore", err)
	}
	slot, err := c.st.allocSlot(hash, ls.semKey)
	if err != nil {
		return false, err // the set stays, initialised; a later call finds it
	}
	ls.id, ls.nsems, ls.slot = id, 2, slot
	return true, nil
}

// awaitInit waits until the set's lock semaphore was initialised (set to
// 1 by its creator, baton or tooz): a zero value never written by anyone
// (no last pid) means the creator is between semget and SETVAL. When that
// lasts initWait, the creator died there: the semaphore is set to 1 under
// the namespace mutex (baton creators initialise under it).
func (c *conn) awaitInit(ctx context.Context, ls *lockSem) error {
	deadline := time.Now().Add(initWait)
	for {
		pid, err := semctl(ls.id, 0, cmdGetPID, 0)
		if err != nil {
			return err
		}
		if pid != 0 {
			return nil
		}
		if v, err := semctl(ls.id, 0, cmdGetVal, 0); err != nil || v != 0 {
			return err
		}
		if time.Now().After(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return ctxErr(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	if err := c.st.lock(ctx); err != nil {
		return err
	}
	defer c.st.unlock()
	if pid, err := semctl(ls.id, 0, cmdGetPID, 0); err != nil || pid != 0 {
		return err
	}
	_, err := semctl(ls.id, 0, cmdSetVal, 1)
	return err
}

// forget drops key's cached semaphore set (it was removed).
func (c *conn) forget(ls *lockSem) {
	c.locksMu.Lock()
	if c.locks[ls.key] == ls {
		delete(c.locks, ls.key)
	}
	c.locksMu.Unlock()
}

// keyHash is the lock table's identity of a key.
func keyHash(key string) [16]byte {
	sum := sha256.Sum256([]byte(key))
	return [16]byte(sum[:16])
}

// exclusiveOps takes the lock: the first semaphore from 1 to 0 (SEM_UNDO:
// the kernel gives it back if the process dies) while the shared count is
// 0, atomically.
func exclusiveOps(ls *lockSem, flg int16) []sembuf {
	if ls.nsems == 1 {
		return []sembuf{{num: 0, op: -1, flg: flg | semUndo}}
	}
	return []sembuf{{num: 0, op: -1, flg: flg | semUndo}, {num: 1, op: 0, flg: flg}}
}

// sharedOps adds a shared holder while the lock is not held exclusively.
// On a one-semaphore set (created by tooz) a shared hold is exclusive.
func sharedOps(ls *lockSem) []sembuf {
	if ls.nsems == 1 {
		return exclusiveOps(ls, ipcNoWait)
	}
	return []sembuf{{num: 0, op: -1, flg: ipcNoWait}, {num: 0, op: 1, flg: ipcNoWait}, {num: 1, op: 1, flg: ipcNoWait | semUndo}}
}

// TryLock tries once to take key exclusively: one non-blocking semop,
// then the grant is recorded in the lock table. It does not block.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if err := c.check(ctx); err != nil {
		return driver.Lease{}, false, err
	}
	for attempt := 0; ; attempt++ {
		ls, err := c.resolve(ctx, req.Key)
		if err != nil {
			return driver.Lease{}, false, err
		}
		err = semopNoWait(ls.id, exclusiveOps(ls, ipcNoWait))
		switch {
		case err == nil:
			lease, err := c.grantExclusive(ls)
			return lease, err == nil, err
		case err == unix.EAGAIN:
			return driver.Lease{}, false, nil
		case gone(err) && attempt < 5:
			c.forget(ls) // removed (by tooz's release, or a last close): get it again
		default:
			return driver.Lease{}, false, sysErr("lock", err)
		}
	}
}

// lockWait bounds one blocking semtimedop of WaitLock, so that a
// cancelled ctx is seen.
const lockWait = 50 * time.Millisecond

// WaitLock blocks in semtimedop until key is granted or ctx is done: the
// kernel wakes it the moment the holder releases or dies.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	ts := timespec(lockWait)
	for {
		if err := c.check(ctx); err != nil {
			return driver.Lease{}, err
		}
		ls, err := c.resolve(ctx, req.Key)
		if err != nil {
			return driver.Lease{}, err
		}
		sent := c.clock.Now()
		err = semop(ls.id, exclusiveOps(ls, 0), &ts)
		switch {
		case err == nil:
			lease, err := c.grantExclusive(ls)
			lease.Sent = sent
			return lease, err
		case err == unix.EAGAIN:
		case gone(err):
			c.forget(ls)
		default:
			return driver.Lease{}, sysErr("lock", err)
		}
	}
}

// nextToken is the token after last: the larger of last+1 and the wall
// clock in microseconds, so tokens keep increasing when the lock table
// starts over.
func nextToken(last uint64, nowMicro int64) uint64 {
	if now := uint64(max(nowMicro, 0)); now > last {
		return now
	}
	return last + 1
}

// grantExclusive records the exclusive grant of ls, whose semaphore this
// process just took, and registers it. On error the semaphore is given
// back.
func (c *conn) grantExclusive(ls *lockSem) (driver.Lease, error) {
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	c.mu.Lock()
	err := c.usableLocked()
	if err != nil {
		c.mu.Unlock()
		c.unlockSem(ls, false)
		return driver.Lease{}, err
	}
	rec := c.st.readSlot(ls.slot)
	token := nextToken(rec.last, time.Now().UnixMicro())
	c.st.writeSlot(ls.slot, slot{last: token, mode: modeExclusive, token: token, session: c.sessID})
	c.grants[grantKey{ls.key, token}] = &grant{key: ls.key, ls: ls, token: token}
	c.mu.Unlock()
	return driver.Lease{Token: token}, nil
}

// unlockSem gives back the semaphore of a hold.
func (c *conn) unlockSem(ls *lockSem, shared bool) {
	op := sembuf{num: 0, op: 1, flg: semUndo}
	if shared && ls.nsems == 2 {
		op = sembuf{num: 1, op: -1, flg: semUndo}
	}
	_ = semopNoWait(ls.id, []sembuf{op})
}

// TryLockShared tries once to take key shared: one non-blocking semop
// counts this holder in, then, under the namespace mutex, the next token
// and this holder are recorded. It blocks only on the mutex.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	if err := c.check(ctx); err != nil {
		return driver.Lease{}, false, err
	}
	for attempt := 0; ; attempt++ {
		ls, err := c.resolve(ctx, req.Key)
		if err != nil {
			return driver.Lease{}, false, err
		}
		err = semopNoWait(ls.id, sharedOps(ls))
		switch {
		case err == nil:
			lease, err := c.grantShared(ctx, ls)
			return lease, err == nil, err
		case err == unix.EAGAIN:
			return driver.Lease{}, false, nil
		case gone(err) && attempt < 5:
			c.forget(ls)
		default:
			return driver.Lease{}, false, sysErr("lock shared", err)
		}
	}
}

func (c *conn) grantShared(ctx context.Context, ls *lockSem) (driver.Lease, error) {
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if err := c.check(context.Background()); err != nil {
		c.unlockSem(ls, true)
		return driver.Lease{}, err
	}
	var token uint64
	idx := strconv.Itoa(ls.slot)
	err := c.st.update(ctx, func(s *state) error {
		rec := c.st.readSlot(ls.slot)
		token = nextToken(rec.last, time.Now().UnixMicro())
		if rec.mode != modeShared {
			delete(s.Shared, idx) // holders of an earlier shared period, all gone
		}
		s.Shared[idx] = append(s.Shared[idx], sharedHolder{Token: token, Session: c.sessHex})
		c.st.writeSlot(ls.slot, slot{last: token, mode: modeShared, token: token, session: c.sessID})
		return nil
	})
	if err != nil {
		c.unlockSem(ls, true)
		return driver.Lease{}, err
	}
	c.mu.Lock()
	err = c.usableLocked()
	if err == nil {
		c.grants[grantKey{ls.key, token}] = &grant{key: ls.key, ls: ls, token: token, shared: true}
	}
	c.mu.Unlock()
	if err != nil {
		_ = c.releaseLocked(context.Background(), &grant{key: ls.key, ls: ls, token: token, shared: true})
		return driver.Lease{}, err
	}
	return driver.Lease{Token: token}, nil
}

// Unlock releases the grant of key identified by token. CodeNotHeld when
// this connection holds no such grant: another holder's lock is never
// touched.
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

// release clears g from the lock table, then gives its semaphore back
// (even when the record could not be updated). The semaphore set is
// never removed: waiters stay queued on it.
func (c *conn) release(ctx context.Context, g *grant) error {
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	return c.releaseLocked(ctx, g)
}

// releaseLocked is release for a caller that holds useMu (read).
func (c *conn) releaseLocked(ctx context.Context, g *grant) error {
	defer c.unlockSem(g.ls, g.shared)
	if c.st.mem == nil {
		return nil
	}
	if !g.shared {
		if rec := c.st.readSlot(g.ls.slot); rec.mode == modeExclusive && rec.token == g.token {
			c.st.writeSlot(g.ls.slot, slot{last: rec.last, mode: modeFree})
		}
		return nil
	}
	idx := strconv.Itoa(g.ls.slot)
	return c.st.update(ctx, func(s *state) error {
		kept := s.Shared[idx][:0]
		for _, h := range s.Shared[idx] {
			if h.Token != g.token && c.alive(s, h.Session) {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(s.Shared, idx)
			rec := c.st.readSlot(g.ls.slot)
			c.st.writeSlot(g.ls.slot, slot{last: rec.last, mode: modeFree})
		} else {
			s.Shared[idx] = kept
		}
		return nil
	})
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

// Holder reports who holds key, from the lock table: the exclusive
// holder, or a shared holder, whose session is alive. A holder whose
// process died is never reported. CodeNotFound when nobody holds key. It
// takes no lock and creates nothing.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	if err := c.check(ctx); err != nil {
		return driver.Holder{}, err
	}
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if c.st.mem == nil {
		return driver.Holder{}, c.check(ctx)
	}
	free := driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	i := c.st.findSlot(keyHash(key))
	if i < 0 {
		return driver.Holder{}, free
	}
	rec := c.st.readSlot(i)
	if rec.mode == modeFree {
		return driver.Holder{}, free
	}
	s, err := c.st.read(ctx)
	if err != nil {
		return driver.Holder{}, err
	}
	switch rec.mode {
	case modeExclusive:
		id := sessionHex(rec.session)
		if c.alive(s, id) {
			if sr, ok := s.Sessions[id]; ok {
				return driver.Holder{Member: sr.Member, Token: rec.token}, nil
			}
		}
	case modeShared:
		for _, h := range s.Shared[strconv.Itoa(i)] {
			if sr, ok := s.Sessions[h.Session]; ok && c.alive(s, h.Session) {
				return driver.Holder{Member: sr.Member, Token: h.Token}, nil
			}
		}
	}
	return driver.Holder{}, free
}

//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

var (
	_ driver.Conn         = (*conn)(nil)
	_ driver.LockWaiter   = (*conn)(nil)
	_ driver.SharedLocker = (*conn)(nil)
)

// conn is one connection: one session, acting as one member. Every method
// is safe for concurrent use. It starts no goroutine: every blocking call
// waits in its caller's goroutine.
type conn struct {
	s      settings
	st     *store
	member string
	obs    driver.SessionObserver
	log    *zap.Logger
	clock  driver.Clock

	sessID  uint64 // random, never 0
	sessHex string
	sessKey int32
	sessSem int // the session semaphore, held (+1, SEM_UNDO) while the session lives

	locksMu sync.Mutex
	locks   map[string]*lockSem // by lock key

	// useMu is held (read) by every call that touches the attached
	// segment; Close takes it (write) before detaching.
	useMu sync.RWMutex

	mu     sync.Mutex
	closed bool
	lost   error
	grants map[grantKey]*grant
}

// open is the driver's OpenFunc: it attaches the namespace (creating it
// when this is its first connection) and starts a session.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, s)
	if err != nil {
		return nil, err
	}
	defer st.unlock()
	c := &conn{
		s: s, st: st, member: cfg.MemberID, obs: cfg.Observer, log: cfg.Logger, clock: cfg.Clock,
		locks:  map[string]*lockSem{},
		grants: map[grantKey]*grant{},
	}
	if err := c.startSession(); err != nil {
		st.detach()
		return nil, err
	}
	s2, err := st.readLocked()
	if err == nil {
		prune(s2)
		s2.Sessions[c.sessHex] = &sessionRec{Member: c.member, Key: c.sessKey, SemID: c.sessSem, PID: os.Getpid(),
			Started: time.Now().Round(0)}
		err = st.writeLocked(s2)
	}
	if err != nil {
		_ = semRemove(c.sessSem)
		st.detach()
		return nil, err
	}
	c.log.Debug("ipc session started", zap.String("namespace", s.keys.ns), zap.String("session", c.sessHex))
	if cfg.Options.String("compat") == driver.CompatTooz {
		return &toozConn{Conn: c, c: c}, nil
	}
	return c, nil
}

// startSession creates the session semaphore under a fresh random key and
// takes it with SEM_UNDO: the kernel gives it back when the process dies,
// which is how every other process learns, at once, that the member is
// gone.
func (c *conn) startSession() error {
	for attempt := 0; ; attempt++ {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.sessID = binary.BigEndian.Uint64(b[:]) | 1
		c.sessHex = hex.EncodeToString(b[:])
		binary.BigEndian.PutUint64(b[:], c.sessID)
		c.sessHex = hex.EncodeToString(b[:])
		c.sessKey = c.s.keys.session(c.sessHex)
		id, err := semget(c.sessKey, 1, unix.IPC_CREAT|unix.IPC_EXCL|permMode)
		if err == unix.EEXIST && attempt < 10 {
			continue
		}
		if err != nil {
			return sysErr("create session semaphore", err)
		}
		if err := semop(id, []sembuf{{num: 0, op: 1, flg: semUndo}}, nil); err != nil {
			_ = semRemove(id)
			return sysErr("hold session semaphore", err)
		}
		c.sessSem = id
		return nil
	}
}

// prune drops from s the sessions that are dead, with their members and
// shared holds.
func prune(s *state) {
	for id, rec := range s.Sessions {
		if !probe(rec) {
			delete(s.Sessions, id)
		}
	}
	for _, g := range s.Groups {
		for m, r := range g.Members {
			if _, ok := s.Sessions[r.Session]; !ok {
				delete(g.Members, m)
			}
		}
	}
	for k, hs := range s.Shared {
		kept := hs[:0]
		for _, h := range hs {
			if _, ok := s.Sessions[h.Session]; ok {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(s.Shared, k)
		} else {
			s.Shared[k] = kept
		}
	}
}

// Session reports a session kept by a semaphore: nothing to renew, but
// Renew is called every check_interval to notice a removed semaphore.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessSession, TTL: c.s.timeout, RenewInterval: c.s.checkInterval}
}

// Renew checks that the session semaphore still exists and is held. When
// it was removed, the session ends: every lock is released, every
// membership removed, the observer told, and Renew returns an error coded
// lost. It does not block.
func (c *conn) Renew(ctx context.Context) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	v, err := semctl(c.sessSem, 0, cmdGetVal, 0)
	switch {
	case err == nil && v > 0:
		return nil
	case err != nil && !gone(err):
		return sysErr("check session semaphore", err)
	}
	c.lose(fmt.Errorf("%w (key %#x)", ErrSessionRemoved, uint32(c.sessKey)))
	return c.check(ctx)
}

// lose ends the session after its semaphore was taken away: it releases
// every lock and removes every membership of c (other processes already
// see them as dead), then tells the observer.
func (c *conn) lose(cause error) {
	c.mu.Lock()
	if c.closed || c.lost != nil {
		c.mu.Unlock()
		return
	}
	c.lost = cause
	grants := c.takeGrantsLocked()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, g := range grants {
		if err := c.release(ctx, g); err != nil {
			c.log.Debug("release after session loss", zap.String("key", g.key), zap.Error(err))
		}
	}
	c.useMu.RLock()
	if c.st.mem != nil {
		if err := c.st.update(ctx, func(s *state) error { c.dropSession(s); return nil }); err != nil {
			c.log.Debug("leave after session loss", zap.Error(err))
		}
	}
	c.useMu.RUnlock()
	c.log.Warn("ipc session lost", zap.Error(cause))
	c.obs.Lost(driver.Wrap(driver.CodeLost, cause))
}

// dropSession removes this session, its members and its shared holds
// from s.
func (c *conn) dropSession(s *state) {
	delete(s.Sessions, c.sessHex)
	for _, g := range s.Groups {
		for m, r := range g.Members {
			if r.Session == c.sessHex {
				delete(g.Members, m)
			}
		}
	}
	for k, hs := range s.Shared {
		kept := hs[:0]
		for _, h := range hs {
			if h.Session != c.sessHex {
				kept = append(kept, h)
			}
		}
		if len(kept) == 0 {
			delete(s.Shared, k)
		} else {
			s.Shared[k] = kept
		}
	}
}

// takeGrantsLocked empties the grant table and returns what it held.
func (c *conn) takeGrantsLocked() []*grant {
	grants := make([]*grant, 0, len(c.grants))
	for _, g := range c.grants {
		grants = append(grants, g)
	}
	c.grants = map[grantKey]*grant{}
	return grants
}

// Close ends the session: it releases every lock, leaves every group and
// removes the session semaphore. The last connection of the namespace
// (no other live session) also removes the namespace's free lock
// semaphores and, when no group is left, its segment and its mutex:
// groups outlive their members, as on a server, until deleted (or until
// RemoveNamespace). It blocks only on the namespace mutex (honouring
// ctx). Closing twice is a no-op.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	grants := c.takeGrantsLocked()
	c.mu.Unlock()
	var errs []error
	for _, g := range grants {
		if err := c.release(ctx, g); err != nil {
			errs = append(errs, fmt.Errorf("release %q: %w", g.key, err))
		}
	}
	if err := c.st.lock(ctx); err != nil {
		if isCode(err, driver.CodeLost) {
			c.removeOrphans(ctx)
		} else {
			errs = append(errs, err)
		}
	} else {
		empty := false
		s, err := c.st.readLocked()
		if err == nil {
			c.dropSession(s)
			prune(s)
			last := len(s.Sessions) == 0
			if empty = last && len(s.Groups) == 0; !empty {
				err = c.st.writeLocked(s)
			}
			if last {
				c.st.removeLockSems()
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
		if empty {
			c.st.removeAll(c.log) // removes the mutex too
		} else {
			c.st.unlock()
		}
	}
	_ = semRemove(c.sessSem)
	c.useMu.Lock()
	c.st.detach()
	c.useMu.Unlock()
	c.log.Debug("ipc session closed", zap.String("session", c.sessHex))
	return errors.Join(errs...)
}

// removeOrphans runs when Close finds the namespace removed under this
// connection (its session had been expired and the other connections
// closed, the last one removing the namespace): the lock semaphores this
// connection created or used may have been held then and left behind.
// Under the mutex of the namespace as it is now (created afresh if
// needed), when no baton session is alive, the idle ones are removed, and
// the namespace too when it holds nothing.
func (c *conn) removeOrphans(ctx context.Context) {
	st, err := openStore(ctx, c.s)
	if err != nil {
		return
	}
	defer st.detach()
	s, err := st.readLocked()
	if err != nil {
		st.unlock()
		return
	}
	prune(s)
	if len(s.Sessions) > 0 {
		st.unlock()
		return
	}
	c.locksMu.Lock()
	for _, ls := range c.locks {
		if id, err := semget(ls.semKey, 0, 0); err == nil && lockSemIdle(id) {
			_ = semRemove(id)
		}
	}
	c.locksMu.Unlock()
	if len(s.Groups) == 0 {
		st.removeAll(c.log)
		return
	}
	st.removeLockSems()
	_ = st.writeLocked(s)
	st.unlock()
}

// lockSemIdle reports whether a lock semaphore set is free with nobody
// waiting: its first semaphore is 1, with no waiter, and its second (if
// any) is 0.
func lockSemIdle(id int) bool {
	v, err := semctl(id, 0, cmdGetVal, 0)
	if err != nil || v != 1 {
		return false
	}
	if n, err := semctl(id, 0, cmdGetNcnt, 0); err != nil || n != 0 {
		return false
	}
	v, err = semctl(id, 1, cmdGetVal, 0)
	return err != nil || v == 0
}

// usableLocked returns the error every call of c fails with now, if any.
func (c *conn) usableLocked() error {
	switch {
	case c.closed:
		return driver.Wrap(driver.CodeCanceled, ErrConnClosed)
	case c.lost != nil:
		return driver.Wrap(driver.CodeLost, c.lost)
	}
	return nil
}

// check returns the error a call must fail with now: the connection's
// state first, then ctx.
func (c *conn) check(ctx context.Context) error {
	c.mu.Lock()
	err := c.usableLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	return nil
}

// alive reports whether session id (hex) of s is alive: this connection's
// own without a system call, any other by probing its semaphore.
func (c *conn) alive(s *state, id string) bool {
	if id == c.sessHex {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lost == nil && !c.closed
	}
	rec, ok := s.Sessions[id]
	return ok && probe(rec)
}

// isCode reports whether err is coded with one of codes.
func isCode(err error, codes ...driver.Code) bool {
	c, ok := driver.CodeOf(err)
	if !ok {
		return false
	}
	for _, x := range codes {
		if c == x {
			return true
		}
	}
	return false
}

// sessionHex formats a session ID.
func sessionHex(id uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return hex.EncodeToString(b[:])
}

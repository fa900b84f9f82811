//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
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
// is safe for concurrent use. The only goroutine it may start is the
// inotify reader (Linux, started by the first blocked wait or watch),
// which Close stops; every other blocking call waits in its caller's
// goroutine.
type conn struct {
	l      layout
	s      settings
	member string
	obs    driver.SessionObserver
	log    *zap.Logger
	clock  driver.Clock // stamps Lease.Sent of waits
	sess   *session
	nt     notifier

	notifyWarned atomic.Bool // the notifier's failure was logged

	// dirMu guards locksFD, the locks directory's descriptor, which
	// Close closes (-1 then) once no call uses it.
	dirMu   sync.RWMutex
	locksFD int
	idle    idleLocks // lock files kept open between grants

	mu     sync.Mutex
	closed bool
	lost   error               // the cause, once the session ended
	gone   chan struct{}       // closed when the session ends or the conn closes
	grants map[grantKey]*grant // held locks
	joined map[string]string   // group → incarnation of this conn's membership
	bufs   sync.Pool           // *[]byte record buffers
}

// open is the driver's OpenFunc: it creates the directories when missing,
// removes what dead processes left behind and starts a session.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	s, err := resolve(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path, cfg.Options)
	if err != nil {
		return nil, err
	}
	l := newLayout(s.root)
	for _, d := range []string{l.root, l.sessions, l.groups, l.locks, l.tmp} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, ioErr("create directory", err)
		}
	}
	sweep(l)
	locksFD, err := openFile(l.locks, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, ioErr("open locks directory", err)
	}
	sess, err := createSession(l, cfg.MemberID, s.fsync)
	if err != nil {
		closeFD(locksFD)
		return nil, ioErr("create session", err)
	}
	c := &conn{
		l: l, s: s, member: cfg.MemberID, obs: cfg.Observer, log: cfg.Logger, clock: cfg.Clock, sess: sess, locksFD: locksFD,
		gone:   make(chan struct{}),
		grants: map[grantKey]*grant{},
		joined: map[string]string{},
	}
	if c.clock == nil {
		c.clock = driver.RealClock{} // a test opening the driver directly
	}
	c.log.Debug("file session started", zap.String("dir", l.root), zap.String("session", sess.name))
	return c, nil
}

// Session reports a session kept by a flock: nothing to renew, but Renew
// is called every check_interval to notice a removed session file.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessSession, TTL: c.s.timeout, RenewInterval: c.s.checkInterval}
}

// Renew checks that the session file is still this connection's. When it
// was removed or replaced, the session ends: every lock is released,
// every membership removed, the observer told, and Renew returns an error
// coded lost. It does not block.
func (c *conn) Renew(ctx context.Context) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	same, err := c.sess.owned()
	if err != nil {
		return ioErr("check session file", err)
	}
	if !same {
		c.lose(fmt.Errorf("%w: %s is gone or no longer this connection's", ErrSessionRemoved, c.sess.path))
		return c.check(ctx)
	}
	return nil
}

// lose ends the session after its file was taken away: it releases every
// lock and removes every membership of c (other processes already see
// them as dead), then tells the observer.
func (c *conn) lose(cause error) {
	c.mu.Lock()
	if c.closed || c.lost != nil {
		c.mu.Unlock()
		return
	}
	c.lost = cause
	close(c.gone)
	grants, joined := c.takeAllLocked()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, g := range grants {
		if err := c.release(ctx, g); err != nil {
			c.log.Debug("release after session loss", zap.String("key", g.key), zap.Error(err))
		}
	}
	for group, inc := range joined {
		if err := c.removeMember(ctx, group, inc); err != nil {
			c.log.Debug("leave after session loss", zap.String("group", group), zap.Error(err))
		}
	}
	c.sess.end()
	c.log.Warn("file session lost", zap.Error(cause))
	c.obs.Lost(driver.Wrap(driver.CodeLost, cause))
}

// takeAllLocked empties the grant and membership tables and returns what
// they held.
func (c *conn) takeAllLocked() ([]*grant, map[string]string) {
	grants := make([]*grant, 0, len(c.grants))
	for _, g := range c.grants {
		grants = append(grants, g)
	}
	joined := c.joined
	c.grants = map[grantKey]*grant{}
	c.joined = map[string]string{}
	return grants, joined
}

// Close ends the session: it releases every lock, leaves every group,
// removes the session file and stops the inotify reader. It blocks only
// for that file-system work (a shared lock's mutex honours ctx) and
// returns the first errors met. Closing twice is a no-op.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	wasLost := c.lost != nil
	var grants []*grant
	var joined map[string]string
	if !wasLost {
		close(c.gone)
		grants, joined = c.takeAllLocked()
	}
	c.mu.Unlock()
	var errs []error
	for _, g := range grants {
		if err := c.release(ctx, g); err != nil {
			errs = append(errs, fmt.Errorf("release %q: %w", g.key, err))
		}
	}
	for group, inc := range joined {
		if err := c.removeMember(ctx, group, inc); err != nil && !isCode(err, driver.CodeNotMember, driver.CodeGroupNotFound) {
			errs = append(errs, fmt.Errorf("leave %q: %w", group, err))
		}
	}
	c.sess.end()
	c.nt.close()
	c.idle.close()
	c.dirMu.Lock()
	closeFD(c.locksFD)
	c.locksFD = -1
	c.dirMu.Unlock()
	c.log.Debug("file session closed", zap.String("session", c.sess.name))
	return errors.Join(errs...)
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

// alive reports whether the session id is alive: this connection's own
// without any system call, any other by probing its flock.
func (c *conn) alive(id sessionID) (bool, error) {
	if id == c.sess.id {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lost == nil && !c.closed, nil
	}
	return probeSession(c.l, sessionName(id))
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

// getBuf returns a scratch buffer for lock records; putBuf returns it.
func (c *conn) getBuf() *[]byte {
	if b, ok := c.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (c *conn) putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		c.bufs.Put(b)
	}
}

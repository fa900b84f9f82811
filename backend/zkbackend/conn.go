package zkbackend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/handover"
)

// conn is one ZooKeeper session acting as one member. Safe for concurrent
// use.
type conn struct {
	s      *settings
	member string
	log    *zap.Logger
	clock  driver.Clock // times the driver's own waits (handover window, Lease.Sent)
	zk     *client
	events <-chan zk.Event // closed when go-zookeeper's goroutines end
	acl    []zk.ACL
	sess   *session
	dial   *dialer
	groups keyedMutex // serializes this connection's writes per group
	jan    *janitor
	rtt    handover.Estimator // round trips of queue reads and confirmations

	mu     sync.Mutex
	grants map[grantID]string // held locks: (key, token) -> node path
	closed bool
	wg     sync.WaitGroup // request goroutines, watch forwarders, janitor
}

// grantID identifies one granted lock of this connection.
type grantID struct {
	key   string
	token uint64
}

// Compile-time checks.
var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.SharedLocker  = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
	_ driver.OpenFunc      = open
)

// open is the driver's OpenFunc.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	c, err := openConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c.public(), nil
}

// openConn connects, establishes the session, authenticates and makes
// sure the root, groups and locks znodes exist. It blocks until then, ctx
// is done, or the timeout option elapses when ctx has no deadline.
func openConn(ctx context.Context, cfg *driver.Config) (*conn, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	tlsWrap, err := newTLS(s.tls)
	if err != nil {
		return nil, err
	}
	c := &conn{s: s, member: cfg.MemberID, log: cfg.Logger, clock: cfg.Clock, grants: map[grantID]string{}}
	if c.clock == nil {
		c.clock = driver.RealClock{} // a test opening the driver directly
	}
	c.acl = zk.WorldACL(zk.PermAll)
	if s.auth {
		c.acl = zk.DigestACL(zk.PermAll, s.user, s.password)
	}
	c.sess = newSession(cfg.Observer, cfg.Logger, s.timeout, s.conn.deadline)
	c.dial = newDialer(s, c.sess, tlsWrap)
	c.sess.onLost = c.stopClient
	hp := newHostProvider(s.servers, s.randomize, c.dial.refuse)
	zc, events, err := zk.Connect(s.servers, s.timeout,
		zk.WithDialer(c.dial.dial), zk.WithHostProvider(hp), zk.WithEventCallback(c.sess.onEvent),
		zk.WithLogger(zkLogger{cfg.Logger}), zk.WithLogInfo(false))
	if err != nil {
		return nil, driver.Wrap(driver.CodeInvalidArgument, err)
	}
	c.zk, c.events = newClient(zc), events
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sess.run()
	}()
	c.jan = newJanitor(c)
	if err := c.start(ctx); err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

// public returns the connection as the backend sees it: in compat=tooz
// mode without SharedLocker (tooz.go).
func (c *conn) public() driver.Conn {
	if c.s.tooz {
		return toozConn{c}
	}
	return c
}

// start waits for the first session, then authenticates and creates the
// layout's directories.
func (c *conn) start(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.s.timeout)
		defer cancel()
	}
	select {
	case <-c.sess.ready():
	case <-c.sess.end():
		return c.sess.err()
	case <-ctx.Done():
		if last := c.dial.lastError(); last != nil {
			return driver.Errorf(driver.CodeUnavailable, "%w with %s: %w (last attempt: %w)", errNotConnected, strings.Join(c.s.servers, ","), ctx.Err(), last)
		}
		return driver.Errorf(driver.CodeUnavailable, "%w with %s: %w", errNotConnected, strings.Join(c.s.servers, ","), ctx.Err())
	}
	if c.s.auth {
		err := c.call(ctx, func() error { return c.zk.AddAuth("digest", []byte(c.s.user+":"+c.s.password)) })
		if err != nil {
			return c.classify(err)
		}
	}
	return c.ensureLayout(ctx)
}

// ensureLayout creates the root znode (with any chroot above it) and the
// groups and locks directories when missing.
func (c *conn) ensureLayout(ctx context.Context) error {
	var paths []string
	p := ""
	for _, seg := range strings.Split(strings.TrimPrefix(c.s.root, "/"), "/") {
		p += "/" + seg
		paths = append(paths, p)
	}
	if !c.s.tooz { // tooz creates only its root at start
		paths = append(paths, c.groupsPath(), c.locksPath())
	}
	for _, p := range paths {
		err := c.call(ctx, func() error {
			return c.retry(ctx, func() error {
				ok, _, err := c.zk.Exists(p)
				if err != nil || ok {
					return err
				}
				_, err = c.zk.Create(p, nil, zk.FlagPersistent, c.acl)
				if errors.Is(err, zk.ErrNodeExists) {
					return nil
				}
				return err
			})
		})
		if err != nil {
			return c.classify(fmt.Errorf("create %s: %w", p, err))
		}
	}
	return nil
}

// Session reports session liveness with the negotiated session timeout.
// RenewInterval is left to the backend's timing model (a third of the
// TTL): each Renew is a round trip that proves the server still hears
// this session, on top of go-zookeeper's own pings.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessSession, TTL: c.sess.sessionTTL()}
}

// Renew is one round trip on the session's own connection: an Exists on
// the root znode, which the server answers only for a live session, under
// a per-attempt timeout of a third of the session TTL (a frozen server
// fails the renewal instead of stalling it). It returns CodeLost once the
// session expired, CodeUnavailable while disconnected or when the server
// does not answer in time.
func (c *conn) Renew(ctx context.Context) error {
	if err := c.sess.err(); err != nil {
		return err
	}
	if !c.sess.connected() {
		return driver.Errorf(driver.CodeUnavailable, "disconnected from ZooKeeper")
	}
	rctx, cancel := context.WithTimeout(ctx, c.attemptTimeout())
	defer cancel()
	err := c.call(rctx, func() error { _, _, err := c.zk.Exists(c.s.root); return err })
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return c.classify(ctx.Err())
	case rctx.Err() != nil:
		return driver.Errorf(driver.CodeUnavailable, "renew session %s: no answer within %v", c.sess.id(), c.attemptTimeout())
	}
	return c.classify(err)
}

// attemptTimeout bounds one request that is retried on failure (Renew, a
// withdrawal): a third of the session TTL, so that a server that stopped
// answering costs at most one renew interval.
func (c *conn) attemptTimeout() time.Duration {
	return max(c.sess.sessionTTL()/3, 100*time.Millisecond)
}

// Close closes the session, which makes the server delete every
// ephemeral node of it (member and lock nodes) at once, and waits for
// every goroutine of the connection, go-zookeeper's included. ctx is not
// needed: every step is bounded (go-zookeeper waits at most about a
// second for the server to confirm).
func (c *conn) Close(context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.sess.close()
	c.stopClient()
	c.jan.stop()
	for range c.events { //nolint:revive // drain until go-zookeeper's loop exits
	}
	c.sess.shutdown()
	c.wg.Wait()
	return nil
}

// stopClient closes go-zookeeper's connection (ending the session on the
// server when it is reachable) and stops it from reconnecting.
func (c *conn) stopClient() {
	c.zk.close(c.zk.conn.State() == zk.StateHasSession, c.dial.shutdown)
	c.dial.shutdown()
}

// check returns the error operations fail with once the connection is
// lost or closed.
func (c *conn) check() error { return c.sess.err() }

// run runs fn, a sequence of blocking go-zookeeper calls, so that ctx is
// honoured: when ctx ends first, run returns ctx's error at once and fn
// finishes in the background (go-zookeeper has no cancellation); its
// value is then discarded, or, if fn succeeded, handed to undo (when not
// nil) to take its effect back. release, if not nil, runs last in every
// case (it frees a lock fn and undo need). The goroutine is tracked so
// that Close waits for it. fn must deliver its results only through its
// return values (the caller may be gone), and use retry, never run, for
// its inner calls: an inner call abandoned on its own would escape undo.
func run[T any](c *conn, ctx context.Context, fn func() (T, error), undo func(T), release func()) (T, error) {
	var zero T
	if release == nil {
		release = func() {}
	}
	if err := c.check(); err != nil {
		release()
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		release()
		return zero, err
	}
	if ctx.Done() == nil {
		defer release()
		return fn()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		release()
		return zero, driver.Errorf(driver.CodeCanceled, "zookeeper connection closed")
	}
	c.wg.Add(1)
	c.mu.Unlock()
	const (
		running = iota
		finished
		abandoned
	)
	type outcome struct {
		v   T
		err error
	}
	var state atomic.Int32
	res := make(chan outcome, 1)
	go func() {
		defer c.wg.Done()
		defer release()
		v, err := fn()
		if !state.CompareAndSwap(running, finished) {
			if err == nil && undo != nil {
				undo(v)
			}
			return
		}
		res <- outcome{v: v, err: err}
	}()
	select {
	case o := <-res:
		return o.v, o.err
	case <-ctx.Done():
		if state.CompareAndSwap(running, abandoned) {
			return zero, ctx.Err()
		}
		o := <-res
		return o.v, o.err
	}
}

// call is run for a function without results.
func (c *conn) call(ctx context.Context, fn func() error) error {
	_, err := run(c, ctx, func() (struct{}, error) { return struct{}{}, fn() }, nil, nil)
	return err
}

// retry runs fn (blocking go-zookeeper calls, safe to repeat) and runs it
// again after transient errors (a lost connection) as the command_retry_*
// options allow, pausing in between unless ctx or the session ends.
func (c *conn) retry(ctx context.Context, fn func() error) error {
	for n := 1; ; n++ {
		err := fn()
		if err == nil || !transient(err) || !c.s.cmd.allows(n) || c.check() != nil {
			return err
		}
		if perr := c.pause(ctx, c.s.cmd.wait(n)); perr != nil {
			return err
		}
	}
}

// pause waits d plus up to 25% jitter, or until ctx ends or the session
// ends.
func (c *conn) pause(ctx context.Context, d time.Duration) error {
	d += time.Duration(rand.Float64() * 0.25 * float64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.sess.end():
		return c.sess.err()
	}
}

// keyedMutex is a set of mutexes by name whose Lock honours a context.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{}
	refs int
}

// lock takes the mutex of key; the returned function releases it.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	drop := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			drop()
		})
	}, nil
}

// zkLogger sends go-zookeeper's log lines to the connection's logger.
type zkLogger struct{ l *zap.Logger }

// Printf logs at debug level: go-zookeeper logs every reconnection, and
// the driver reports what matters through the session observer.
func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("zookeeper client: " + fmt.Sprintf(format, args...))
}

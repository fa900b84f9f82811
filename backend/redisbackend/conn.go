package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/handover"
)

// Compile-time checks of the interfaces the connection implements.
var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.SharedLocker  = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// maxAttempts bounds how often one command is sent when its connection
// breaks (or, with retry_on_timeout, its reply times out).
const maxAttempts = 3

// conn is one connection to Redis acting as one member. It is safe for
// concurrent use: go-redis pools connections, and conn's own state is
// guarded by mu.
type conn struct {
	s       *settings
	ks      keyspace
	rdb     redis.UniversalClient
	sc      *scripts
	log     *zap.Logger
	clock   driver.Clock // stamps Lease.Sent of native waits
	unlog   func()       // stops routing go-redis's log to log
	member  string
	sid     string // this connection's session: liveness key NS:s:SID
	sessKey string
	rtt     handover.Estimator // round trips of queued acquires, for the handover window

	ctx    context.Context // ends at Close: stops background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines (cleanups, the hub)

	mu     sync.Mutex
	closed bool
	held   map[string]map[uint64]string // lock key -> token -> nonce of this connection's grants
	joined map[string]struct{}
	hub    *hub
}

// open connects, checks the server version and creates the liveness key.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if cfg.Options.String("compat") == driver.CompatTooz {
		return openTooz(ctx, cfg)
	}
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	unlog := clientLog.add(cfg.Logger)
	rdb, d, err := s.newClient()
	if err != nil {
		unlog()
		return nil, err
	}
	c := &conn{
		s: s, ks: keyspace{ns: s.namespace, db: s.db}, rdb: rdb, sc: newScripts(),
		log: cfg.Logger, unlog: unlog, member: cfg.MemberID, sid: newID(), clock: cfg.Clock,
		held: map[string]map[uint64]string{}, joined: map[string]struct{}{},
	}
	if c.clock == nil {
		c.clock = driver.RealClock{} // a test opening the driver directly
	}
	c.sessKey = c.ks.session(c.sid)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	fail := func(err error) (driver.Conn, error) {
		c.cancel()
		_ = rdb.Close()
		unlog()
		return nil, err
	}
	if err := c.firstContact(ctx, d, c.sessKey, c.member); err != nil {
		return fail(err)
	}
	return c, nil
}

// firstContact is Open's first exchange with the server: it finds the
// sentinels when they need discovering, checks the server's version and
// writes the liveness key (key = value, membership_timeout long). It is
// bounded by the connect timeout: a dead server or Sentinel set fails it
// then, unavailable and with the last dial error as its cause, instead of
// being retried until ctx ends.
func (c *conn) firstContact(ctx context.Context, d *dialer, key, value string) error {
	s := c.s
	octx, cancel := context.WithTimeout(ctx, s.connectTimeout)
	defer cancel()
	err := func() error {
		if s.master != "" && s.ssl != s.sentinelSSL {
			if err := c.discoverSentinels(octx, d); err != nil {
				return err
			}
		}
		if err := c.checkServer(octx); err != nil {
			return err
		}
		_, err := c.do(octx, func(ctx context.Context) error {
			return c.rdb.Set(ctx, key, value, s.membershipTimeout).Err()
		})
		return err
	}()
	if err == nil || ctx.Err() != nil || octx.Err() == nil {
		return err
	}
	if last := d.lastDialError(); last != nil {
		return driver.Errorf(driver.CodeUnavailable, "no answer within socket_connect_timeout (%v): %w (last dial: %w)", s.connectTimeout, err, last)
	}
	return driver.Errorf(driver.CodeUnavailable, "no answer within socket_connect_timeout (%v): %w", s.connectTimeout, err)
}

// checkServer requires Redis 3.2 (Lua scripts that read the server's
// clock and then write, replicated by their effects).
func (c *conn) checkServer(ctx context.Context) error {
	var info string
	_, err := c.do(ctx, func(ctx context.Context) error {
		var err error
		info, err = c.rdb.Info(ctx, "server").Result()
		return err
	})
	if err != nil {
		return err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			if !versionAtLeast(v, 3, 2, 0) {
				return driver.Errorf(driver.CodeUnimplemented, "redis %s is too old: the driver needs 3.2 or later", v)
			}
			return nil
		}
	}
	return nil
}

func versionAtLeast(v string, want ...int) bool {
	parts := strings.Split(v, ".")
	for i, w := range want {
		if i >= len(parts) {
			return false
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return false
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// discoverSentinels asks the sentinels for their peers, so that the dialer
// applies sentinel_ssl (not ssl) to sentinels that go-redis discovers.
func (c *conn) discoverSentinels(ctx context.Context, d *dialer) error {
	var errs []error
	for _, addr := range c.s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr: addr, Dialer: d.dial, Protocol: 2, Username: c.s.sentinelUsername, Password: c.s.sentinelPassword,
			MaxRetries: -1, DialTimeout: c.s.connectTimeout, ReadTimeout: c.s.socketTimeout, WriteTimeout: c.s.socketTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true,
		})
		peers, err := sc.Sentinels(ctx, c.s.master).Result()
		_ = sc.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
			continue
		}
		for _, p := range peers {
			if ip, port := p["ip"], p["port"]; ip != "" && port != "" {
				d.addSentinels([]string{net.JoinHostPort(strings.Trim(ip, "[]"), port)})
			}
		}
		return nil
	}
	return classify(errors.Join(errs...))
}

// Session reports TTL liveness: the liveness key lives membership_timeout
// and is renewed every third of it.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{
		Liveness:      driver.LivenessTTL,
		TTL:           c.s.membershipTimeout,
		RenewInterval: c.s.membershipTimeout / 3,
	}
}

// Renew extends the liveness key in one round trip. When the key is gone
// (expired, deleted, lost by a failover or a restart) the session is lost:
// other members may already have seen this member leave.
func (c *conn) Renew(ctx context.Context) error {
	var ok bool
	_, err := c.do(ctx, func(ctx context.Context) error {
		var err error
		ok, err = c.rdb.PExpire(ctx, c.sessKey, c.s.membershipTimeout).Result()
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return driver.Errorf(driver.CodeLost, "liveness key of session %s is gone (expired, deleted, or lost by a failover or restart)", c.sid)
	}
	return nil
}

// Close releases the locks this connection still holds, leaves the groups
// it joined, deletes its liveness key, stops its goroutines and closes the
// client. It blocks until all of that is done.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	type hold struct {
		key   string
		token uint64
	}
	var held []hold
	for k, ts := range c.held {
		for t := range ts {
			held = append(held, hold{k, t})
		}
	}
	joined := make([]string, 0, len(c.joined))
	for g := range c.joined {
		joined = append(joined, g)
	}
	h := c.hub
	c.mu.Unlock()

	var errs []error
	for _, h := range held {
		if err := c.Unlock(ctx, h.key, h.token); err != nil {
			if code, _ := driver.CodeOf(err); code != driver.CodeNotHeld {
				errs = append(errs, err)
			}
		}
	}
	for _, g := range joined {
		if err := c.Leave(ctx, g); err != nil {
			if code, _ := driver.CodeOf(err); code != driver.CodeNotMember && code != driver.CodeGroupNotFound {
				errs = append(errs, err)
			}
		}
	}
	if _, err := c.do(ctx, func(ctx context.Context) error { return c.rdb.Del(ctx, c.sessKey).Err() }); err != nil {
		errs = append(errs, err)
	}
	c.cancel()
	if h != nil {
		h.close()
	}
	c.wg.Wait()
	if err := c.rdb.Close(); err != nil {
		errs = append(errs, classify(err))
	}
	c.unlog()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// goBackground runs f in a goroutine that Close waits for; it does nothing
// once the connection is closed.
func (c *conn) goBackground(f func(ctx context.Context)) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}

// do runs one command, sending it again (up to maxAttempts times in all)
// when the connection broke before the reply arrived, or the server was
// loading, read-only (a failover in progress) or without a master; and,
// with retry_on_timeout, when the reply timed out. Every command the
// driver sends is safe to repeat; retried tells the caller a repeat
// happened, so that "already released" can be read as success. The error
// is classified.
func (c *conn) do(ctx context.Context, f func(ctx context.Context) error) (retried bool, err error) {
	for attempt := 0; ; attempt++ {
		err = f(ctx)
		if err == nil {
			return attempt > 0, nil
		}
		if ctx.Err() != nil {
			return attempt > 0, ctxError(ctx, err)
		}
		if attempt+1 >= maxAttempts || !c.retryable(err) {
			return attempt > 0, classify(err)
		}
		t := time.NewTimer(time.Duration(10<<(2*attempt)) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, ctxError(ctx, err)
		case <-t.C:
		}
	}
}

// eval runs a script through do (EVALSHA, then EVAL when the server does
// not know the script, e.g. after a restart or a failover).
func (c *conn) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) (res any, retried bool, err error) {
	retried, err = c.do(ctx, func(ctx context.Context) error {
		var err error
		res, err = s.Run(ctx, c.rdb, keys, args...).Result()
		return err
	})
	return res, retried, err
}

// evalInt runs a script returning an integer.
func (c *conn) evalInt(ctx context.Context, s *redis.Script, keys []string, args ...any) (int64, bool, error) {
	res, retried, err := c.eval(ctx, s, keys, args...)
	if err != nil {
		return 0, retried, err
	}
	n, ok := res.(int64)
	if !ok {
		return 0, retried, driver.Errorf(driver.CodeInternal, "unexpected script reply %T", res)
	}
	return n, retried, nil
}

func ms(d time.Duration) int64 {
	n := int64((d + time.Millisecond - 1) / time.Millisecond)
	return max(n, 1)
}

package memcachedbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

var (
	_ driver.Conn        = (*conn)(nil)
	_ driver.LockBreaker = (*conn)(nil)
	_ driver.LockWaiter  = (*conn)(nil)
)

// grant is a lock this connection holds.
type grant struct {
	lkey  string // the lock key
	addr  string // the server of the lock key
	run   runID  // the run of that server the grant was made on
	cas   uint64 // the lock item's CAS value
	value []byte // the lock item's value
}

type grantID struct {
	key   string
	token uint64
}

// conn is one driver connection: a gomemcache client for classic
// commands, a meta-command pool, and this member's liveness key.
type conn struct {
	s      *settings
	ks     keyspace
	mc     *memcache.Client
	sl     *memcache.ServerList
	meta   *metaPool
	member string
	sid    string
	clock  driver.Clock
	log    *zap.Logger

	mu     sync.Mutex
	grants map[grantID]*grant
	free   map[string]freeLock // locks this connection released last
	joined map[string]string   // group -> incarnation
	closed bool
}

func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// open connects to every server (reading each one's run and clock) and
// creates this connection's liveness key.
func open(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
	if cfg.Options.String("compat") == driver.CompatTooz {
		return openTooz(ctx, cfg)
	}
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	sl := new(memcache.ServerList)
	if err := sl.SetServers(s.servers...); err != nil {
		return nil, driver.Errorf(driver.CodeInvalidArgument, "servers: %w", err)
	}
	mc := memcache.NewFromSelector(sl)
	mc.Timeout = s.socketTimeout
	mc.MaxIdleConns = s.maxPool
	if mc.MaxIdleConns == 0 {
		mc.MaxIdleConns = defaultIdle
	}
	mc.DialContext = (&net.Dialer{Timeout: s.socketTimeout}).DialContext
	clock := cfg.Clock
	if clock == nil {
		clock = driver.RealClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := &conn{
		s: s, ks: keyspace{ns: s.namespace}, mc: mc, sl: sl, meta: newMetaPool(s.socketTimeout, s.maxPool),
		member: cfg.MemberID, sid: newNonce(), clock: clock, log: log,
		grants: map[grantID]*grant{}, free: map[string]freeLock{}, joined: map[string]string{},
	}
	fail := func(err error) (driver.Conn, error) {
		c.meta.close()
		_ = mc.Close()
		return nil, classify(fmt.Errorf("open %s: %w", cfg.Redacted, err))
	}
	for _, addr := range s.servers {
		m, _, err := c.meta.get(ctx, addr)
		if err != nil {
			return fail(err)
		}
		c.meta.put(addr, m, true)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	err = mc.Add(&memcache.Item{Key: c.ks.session(c.sid), Value: []byte(c.member), Expiration: keyTTL(s.membershipTimeout)})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// Session: a TTL key of membership_timeout, renewed every third of it.
// The interval is the one the backend's timing model would choose
// (backend.DefaultIntervalDivisor); it is set explicitly because
// Backend.Session reports the driver's SessionInfo as is, and the
// conformance suite wants a positive interval there.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.s.membershipTimeout,
		RenewInterval: c.s.membershipTimeout / backend.DefaultIntervalDivisor}
}

// Renew touches the liveness key (one round trip). A missing key means
// the session expired, was evicted, or the server restarted empty: the
// session is lost.
func (c *conn) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return classify(err)
	}
	err := c.mc.Touch(c.ks.session(c.sid), keyTTL(c.s.membershipTimeout))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return driver.Errorf(driver.CodeLost, "liveness key of member %q is gone (expired, evicted, or the server restarted empty): %w", c.member, errEvicted)
	}
	return classify(err)
}

// Close releases every grant, leaves every group this connection joined
// and deletes its liveness key. It starts no goroutine and leaves none.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	grants := make([]grantID, 0, len(c.grants))
	for id := range c.grants {
		grants = append(grants, id)
	}
	joined := make(map[string]string, len(c.joined))
	for g, inc := range c.joined {
		joined[g] = inc
	}
	c.mu.Unlock()
	var errs []error
	for _, id := range grants {
		if err := c.unlock(ctx, id.key, id.token); err != nil {
			if code, _ := driver.CodeOf(err); code != driver.CodeNotHeld {
				errs = append(errs, err)
			}
		}
	}
	for g, inc := range joined {
		if err := c.leave(ctx, g, inc); err != nil {
			if code, _ := driver.CodeOf(err); code != driver.CodeNotMember && code != driver.CodeGroupNotFound {
				errs = append(errs, err)
			}
		}
	}
	if err := c.mc.Delete(c.ks.session(c.sid)); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		errs = append(errs, classify(err))
	}
	c.meta.close()
	_ = c.mc.Close()
	return errors.Join(errs...)
}

// now is the clock of the backend, for the member records' times.
func (c *conn) now() time.Time { return c.clock.Now() }

package etcd2backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// conn is one etcd:// connection acting as one member: a session key,
// the member keys of the groups it joined, the lock keys of its grants
// and the queue entries of its waits. It is safe for concurrent use.
type conn struct {
	cl         *client
	log        *zap.Logger
	obs        driver.SessionObserver
	clock      driver.Clock
	memberID   string
	keys       keyspace
	sessionKey string
	sessionTTL time.Duration // whole seconds
	lockTTL    time.Duration // whole seconds

	mu      sync.Mutex
	closed  bool
	members map[string]string // member key -> value this connection wrote
	queued  map[string]bool   // queue entries of waits under way
	grants  map[grantID]*grant
	orphans map[string]string // lock key -> value: grants to delete on the next Renew

	bg     context.Context // ends at Close
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.SharedLocker  = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// randomID returns 16 random hexadecimal digits.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Session reports TTL liveness: the session and member keys' TTL,
// renewed at the timing model's default interval. (The interval is given
// explicitly because Backend.Session reports the driver's value as is,
// and the conformance suite wants a TTL session's interval set.)
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.sessionTTL, RenewInterval: c.sessionTTL / backend.DefaultIntervalDivisor}
}

// refresh restarts the TTL of key without changing its value or waking
// watchers (refresh=true), if it exists.
func (c *conn) refresh(ctx context.Context, key string, ttl time.Duration, cmp ...string) error {
	f := form("refresh", "true", "ttl", seconds(ttl))
	if len(cmp) == 0 {
		f.Set("prevExist", "true")
	}
	for i := 0; i+1 < len(cmp); i += 2 {
		f.Set(cmp[i], cmp[i+1])
	}
	_, err := c.cl.retry(ctx, http.MethodPut, key, f, attemptTimeout(ttl))
	return err
}

// attemptTimeout is the deadline of one try of a renewal, a refresh of a
// TTL, a release or a lock attempt: a tenth of the TTL (at least 200 ms),
// so a try that meets a dead or leaderless member (a v2 request forwarded
// to a leader that died is not answered before etcd's own request
// timeout) leaves time for several more elsewhere, and a try sent at a
// leader's death costs little more than the election.
func attemptTimeout(ttl time.Duration) time.Duration {
	return max(ttl/10, 200*time.Millisecond)
}

// Renew restarts the TTL of the session key, of every member key and of
// every queue entry of this connection: one refresh request each, all
// sent at once, so one round trip of latency. A session key the store
// no longer has is CodeLost: the session expired (or was deleted), and
// other members may have seen this one leave. A member key that is gone
// while the session lives was deleted by another connection of the same
// member ID (a Leave on its behalf): it is forgotten. After a successful
// renewal it retries deleting grants whose release failed earlier.
func (c *conn) Renew(ctx context.Context) error {
	c.mu.Lock()
	keys := make([]string, 0, 1+len(c.members)+len(c.queued))
	keys = append(keys, c.sessionKey)
	for k := range c.members {
		keys = append(keys, k)
	}
	for k := range c.queued {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.refresh(ctx, k, c.sessionTTL)
		}()
	}
	wg.Wait()
	if isCode(errs[0], ecodeKeyNotFound) {
		return driver.Wrap(driver.CodeLost, fmt.Errorf("renew session %s: the session key expired or was deleted: %w", c.sessionKey, errs[0]))
	}
	var first error
	for i, err := range errs {
		switch {
		case err == nil:
		case isCode(err, ecodeKeyNotFound):
			c.mu.Lock()
			delete(c.members, keys[i])
			delete(c.queued, keys[i])
			c.mu.Unlock()
		case first == nil:
			first = classify(ctx, "renew "+keys[i], err)
		}
	}
	if first != nil {
		return first
	}
	c.cleanOrphans(ctx)
	return nil
}

// Close deletes everything this connection still has on the server: its
// member keys (only its own incarnation), lock keys (only its own
// grants), queue entries and session key. It first waits for its
// background goroutines. What cannot be deleted (the cluster is
// unreachable) expires after its TTL.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var dels []cas
	for k, v := range c.members {
		dels = append(dels, cas{k, v})
	}
	for k := range c.queued {
		dels = append(dels, cas{k, ""})
	}
	for _, g := range c.grants {
		dels = append(dels, g.deletes()...)
	}
	for k, v := range c.orphans {
		dels = append(dels, cas{k, v})
	}
	c.mu.Unlock()
	c.stopBg()
	c.wg.Wait()
	errs := make([]error, len(dels))
	var wg sync.WaitGroup
	for i, d := range dels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var q url.Values
			if d.prevValue != "" {
				q = form("prevValue", d.prevValue)
			}
			_, err := c.cl.del(ctx, d.key, q)
			if !isCode(err, ecodeKeyNotFound, ecodeTestFailed) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	// The session key goes last: while it exists the member's keys are
	// still being renewed as far as anyone can tell.
	_, err := c.cl.del(ctx, c.sessionKey, nil)
	if isCode(err, ecodeKeyNotFound) {
		err = nil
	}
	for _, e := range errs {
		if err == nil {
			err = e
		}
	}
	c.cl.close()
	return classify(ctx, "close session "+c.sessionKey, err)
}

// isClosed reports whether Close was called.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// orphan records a grant key that may exist on the server although the
// request that wrote it failed or was abandoned; Renew and Close delete
// it (only if it still holds value).
func (c *conn) orphan(key, value string) {
	c.mu.Lock()
	c.orphans[key] = value
	c.mu.Unlock()
}

// cleanOrphans deletes orphaned grant keys; it stops at the first
// failure (the next Renew tries again).
func (c *conn) cleanOrphans(ctx context.Context) {
	c.mu.Lock()
	todo := make(map[string]string, len(c.orphans))
	for k, v := range c.orphans {
		todo[k] = v
	}
	c.mu.Unlock()
	for k, v := range todo {
		var q url.Values
		if v != "" {
			q = form("prevValue", v)
		}
		_, err := c.cl.del(ctx, k, q)
		if err != nil && !isCode(err, ecodeKeyNotFound, ecodeTestFailed) {
			c.log.Debug("deleting an abandoned lock key failed; will retry", zap.String("key", k), zap.Error(err))
			return
		}
		c.mu.Lock()
		if c.orphans[k] == v {
			delete(c.orphans, k)
		}
		c.mu.Unlock()
	}
}

// background runs f in a goroutine that Close waits for; f gets a
// context that ends at Close. It reports false when the connection is
// closed already.
func (c *conn) background(f func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.bg)
	}()
	return true
}

// backoff paces retries after a failure: 50ms doubling up to 1s, on the
// Backend's clock.
type backoff struct {
	clock driver.Clock
	d     time.Duration
}

func (c *conn) newBackoff() *backoff { return &backoff{clock: c.clock, d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// wait sleeps for the current delay and doubles it; false when ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	t := b.clock.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

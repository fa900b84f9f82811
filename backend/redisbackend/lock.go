package redisbackend

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

// remember records a grant of this connection with the nonce of the
// request that acquired it. Release and refresh compare "TOKEN:NONCE:",
// because a token alone can repeat after a failover lost the counter's
// last increments: another member's grant of the same key can then carry
// the same token, and it must not be refreshed or released in our name.
func (c *conn) remember(key string, token uint64, nonce string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key] == nil {
		c.held[key] = map[uint64]string{}
	}
	c.held[key][token] = nonce
}

// forget drops a grant of this connection once it is released.
func (c *conn) forget(key string, token uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held[key], token)
	if len(c.held[key]) == 0 {
		delete(c.held, key)
	}
}

// holdPrefix is how the entry of this connection's grant of key under
// token starts: "TOKEN:NONCE:" when the grant is known, else "TOKEN:".
func (c *conn) holdPrefix(key string, token uint64) string {
	c.mu.Lock()
	nonce, ok := c.held[key][token]
	c.mu.Unlock()
	if ok {
		return tokenPrefix(token) + nonce + ":"
	}
	return tokenPrefix(token)
}

// lockTTL is the lease of a lock request: its TTL, else lock_timeout.
func (c *conn) lockTTL(req driver.LockRequest) time.Duration {
	if req.TTL > 0 {
		return req.TTL
	}
	return c.s.lockTimeout
}

// TryLock runs the acquire script once: when the lock key is free and no
// shared grant is live, SET PX of the lock key to "TOKEN:NONCE:MEMBER",
// TOKEN an INCR of the lock's counter in the same script. The lease is the
// lock's own TTL (refreshed by the backend).
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	lease, ok, _, err := c.acquire(ctx, req, false)
	return lease, ok, err
}

// TryLockShared runs the shared acquire script once: when the lock key is
// free, it adds "TOKEN:NONCE:MEMBER" to the lock's readers, scored by its
// expiry in the server's clock, TOKEN from the same counter. Shared
// grants coexist, several per connection too.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	lease, ok, _, err := c.acquire(ctx, req, true)
	return lease, ok, err
}

// acquire tries once; when the lock is held it reports how long the
// blocking grant has left (negative when its key has no TTL).
func (c *conn) acquire(ctx context.Context, req driver.LockRequest, shared bool) (driver.Lease, bool, time.Duration, error) {
	script := c.sc.acquire
	if shared {
		script = c.sc.acquireShared
	}
	lease, ok, pttl, _, err := c.runAcquire(ctx, req, script, []string{c.ks.lock(req.Key), c.ks.fence(req.Key), c.ks.readers(req.Key)})
	return lease, ok, pttl, err
}

// runAcquire runs an acquire script once, with KEYS keys and ARGV nonce,
// member, lock TTL (ms), channel, then extra. The script replies {1,
// token} when it acquired, else {0, ms left to the blocking grant, ...}:
// rest is what follows those two.
func (c *conn) runAcquire(ctx context.Context, req driver.LockRequest, script *redis.Script, keys []string, extra ...any) (
	lease driver.Lease, ok bool, pttl time.Duration, rest []any, err error) {
	ttl := c.lockTTL(req)
	nonce := newNonce()
	args := append([]any{nonce, req.Member, ms(ttl), c.ks.lockChannel(req.Key)}, extra...)
	res, _, err := c.eval(ctx, script, keys, args...)
	if err != nil {
		// The script may have run and its reply been lost: release what
		// this request may hold, so that the lock is not stuck for a TTL.
		c.releaseNonce(req.Key, nonce)
		return driver.Lease{}, false, 0, nil, err
	}
	arr, isArr := res.([]any)
	if !isArr || len(arr) < 2 {
		return driver.Lease{}, false, 0, nil, driver.Errorf(driver.CodeInternal, "unexpected acquire reply %v", res)
	}
	if got, _ := arr[0].(int64); got == 0 {
		left, _ := arr[1].(int64)
		return driver.Lease{}, false, time.Duration(left) * time.Millisecond, arr[2:], nil
	}
	lease, err = c.granted(req.Key, arr[1], nonce, ttl)
	return lease, err == nil, 0, nil, err
}

// granted records the grant of key whose acquire script (request nonce)
// replied token.
func (c *conn) granted(key string, token any, nonce string, ttl time.Duration) (driver.Lease, error) {
	s, _ := token.(string)
	v, err := parseLockValue(s + ":" + nonce + ":")
	if err != nil || v.token == 0 {
		return driver.Lease{}, driver.Errorf(driver.CodeInternal, "unexpected token %q", s)
	}
	c.remember(key, v.token, nonce)
	return driver.Lease{Token: v.token, TTL: ttl}, nil
}

// releaseNonce releases, in the background, a grant whose acquire reply
// was lost.
func (c *conn) releaseNonce(key, nonce string) {
	c.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, c.s.socketTimeout)
		defer cancel()
		if _, _, err := c.eval(ctx, c.sc.releaseNonce, c.lockKeys(key), nonce, c.ks.lockChannel(key)); err != nil {
			c.log.Debug("cleanup of an interrupted acquire failed")
		}
	})
}

// lockKeys are the KEYS of the scripts that free a lock: the lock key,
// its readers, its wait queue and the queue's expiries.
func (c *conn) lockKeys(key string) []string {
	return []string{c.ks.lock(key), c.ks.readers(key), c.ks.queue(key), c.ks.expiries(key)}
}

// Unlock deletes the lock key when it still holds this grant, publishing
// the release to waiters and observers, with the queued waiter that
// should try first. CodeNotHeld otherwise.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	n, retried, err := c.evalInt(ctx, c.sc.release, c.lockKeys(key), c.holdPrefix(key, token), c.ks.lockChannel(key))
	if err != nil {
		return err
	}
	c.forget(key, token)
	if n == 0 && !retried {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is not held with token %d", key, token)
	}
	return nil
}

// RefreshLock sets the lock key's TTL to ttl when it still holds this
// grant.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	n, _, err := c.evalInt(ctx, c.sc.refresh, []string{c.ks.lock(key), c.ks.readers(key)}, c.holdPrefix(key, token), ms(ttl))
	if err != nil {
		return err
	}
	if n == 0 {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is no longer held with token %d (expired, broken or lost by a failover)", key, token)
	}
	return nil
}

// Holder reads the lock key: CodeNotFound when it is free.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	h, held, _, err := c.readHolder(ctx, key)
	if err != nil {
		return driver.Holder{}, err
	}
	if !held {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	return h, nil
}

// readHolder returns the holder of key and its remaining lease.
func (c *conn) readHolder(ctx context.Context, key string) (driver.Holder, bool, time.Duration, error) {
	res, _, err := c.eval(ctx, c.sc.holder, []string{c.ks.lock(key), c.ks.readers(key)})
	if err != nil {
		return driver.Holder{}, false, 0, err
	}
	arr, ok := res.([]any)
	if !ok {
		return driver.Holder{}, false, 0, driver.Errorf(driver.CodeInternal, "unexpected holder reply %v", res)
	}
	if len(arr) < 2 {
		return driver.Holder{}, false, 0, nil
	}
	s, _ := arr[0].(string)
	pttl, _ := arr[1].(int64)
	v, err := parseLockValue(s)
	if err != nil {
		return driver.Holder{}, false, 0, driver.Errorf(driver.CodeInternal, "lock %q: %v", key, err)
	}
	return driver.Holder{Member: v.member, Token: v.token}, true, time.Duration(pttl) * time.Millisecond, nil
}

// BreakLock deletes the lock key whoever holds it and publishes it, with
// the queued waiter that should try first. The holder learns it on its
// next refresh.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	n, _, err := c.evalInt(ctx, c.sc.breakLock, c.lockKeys(key), c.ks.lockChannel(key))
	return n == 1, err
}

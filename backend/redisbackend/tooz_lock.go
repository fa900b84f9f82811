package redisbackend

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend/driver"
)

// lockTTL is the lease of a lock request: its TTL, else lock_timeout.
func (t *toozConn) lockTTL(req driver.LockRequest) time.Duration {
	if req.TTL > 0 {
		return req.TTL
	}
	return t.c.s.lockTimeout
}

// TryLock sets tooz's lock key as redis-py's Lock does (SET NX PX), with
// baton's fencing token from a counter of baton's own next to it.
func (t *toozConn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	key, err := t.k.toozLockKey(req.Key)
	if err != nil {
		return driver.Lease{}, false, err
	}
	ttl := t.lockTTL(req)
	nonce := newNonce()
	res, _, err := t.c.eval(ctx, toozAcquire, []string{key, t.k.fence(key)}, nonce, req.Member, ms(ttl))
	if err != nil {
		// The script may have run and its reply been lost.
		t.c.goBackground(func(bctx context.Context) {
			bctx, cancel := context.WithTimeout(bctx, t.c.s.socketTimeout)
			defer cancel()
			_, _, _ = t.c.eval(bctx, toozReleaseNonce, []string{key}, nonce)
		})
		return driver.Lease{}, false, err
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 2 {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "unexpected acquire reply %v", res)
	}
	if got, _ := arr[0].(int64); got == 0 {
		return driver.Lease{}, false, nil
	}
	s, _ := arr[1].(string)
	v, err := parseLockValue(s + ":" + nonce + ":")
	if err != nil || v.token == 0 {
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "unexpected token %q", s)
	}
	t.mu.Lock()
	if t.held[key] == nil {
		t.held[key] = map[uint64]string{}
	}
	t.held[key][v.token] = nonce
	t.mu.Unlock()
	return driver.Lease{Token: v.token, TTL: ttl}, true, nil
}

// prefix returns "TOKEN:NONCE:" of a grant of this connection, else
// "TOKEN:".
func (t *toozConn) prefix(key string, token uint64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.held[key][token]; ok {
		return tokenPrefix(token) + n + ":"
	}
	return tokenPrefix(token)
}

func (t *toozConn) forget(key string, token uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.held[key], token)
	if len(t.held[key]) == 0 {
		delete(t.held, key)
	}
}

// Unlock deletes the lock key while it holds this grant (redis-py's
// release script, comparing baton's value).
func (t *toozConn) Unlock(ctx context.Context, key string, token uint64) error {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return err
	}
	n, retried, err := t.c.evalInt(ctx, toozRelease, []string{k}, t.prefix(k, token))
	if err != nil {
		return err
	}
	t.forget(k, token)
	if n == 0 && !retried {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is not held with token %d", key, token)
	}
	return nil
}

// RefreshLock sets the lock key's TTL while it holds this grant
// (redis-py's reacquire, which tooz's heartbeat runs).
func (t *toozConn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return err
	}
	n, _, err := t.c.evalInt(ctx, toozRefresh, []string{k}, t.prefix(k, token), ms(ttl))
	if err != nil {
		return err
	}
	if n == 0 {
		return driver.Errorf(driver.CodeNotHeld, "lock %q is no longer held with token %d (expired, broken or lost by a failover)", key, token)
	}
	return nil
}

// Holder reads the lock key. A baton holder is named with its token; a
// tooz holder's value is redis-py's anonymous token, so it is reported
// with an empty member ID and token 0 (tooz's Redis driver cannot name
// it either: it has no get_leader).
func (t *toozConn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return driver.Holder{}, err
	}
	var v string
	_, err = t.c.do(ctx, func(ctx context.Context) error {
		var err error
		v, err = t.c.rdb.Get(ctx, k).Result()
		if err == redis.Nil {
			v, err = "", nil
		}
		return err
	})
	if err != nil {
		return driver.Holder{}, err
	}
	if v == "" {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	lv, err := parseLockValue(v)
	if err != nil {
		return driver.Holder{}, nil
	}
	return driver.Holder{Member: lv.member, Token: lv.token}, nil
}

// BreakLock deletes the lock key whoever holds it (tooz's break_).
func (t *toozConn) BreakLock(ctx context.Context, key string) (bool, error) {
	k, err := t.k.toozLockKey(key)
	if err != nil {
		return false, err
	}
	var n int64
	_, err = t.c.do(ctx, func(ctx context.Context) error {
		var err error
		n, err = t.c.rdb.Del(ctx, k).Result()
		return err
	})
	return n == 1, err
}

package memcachedbackend

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend/driver"
)

// lockTTL is the lease of a request: its TTL, else leader_timeout for
// leaderships and lock_timeout for locks.
func (t *toozConn) lockTTL(req driver.LockRequest, leader bool) time.Duration {
	switch {
	case req.TTL > 0:
		return req.TTL
	case leader:
		return t.c.s.leaderTimeout
	}
	return t.c.s.lockTimeout
}

// TryLock adds tooz's lock key with this member's ID as its value (flag
// 1), as tooz's acquire does; once it holds the key, a second round trip
// advances baton's fencing counter of the lock (created at the server's
// clock in microseconds when absent), which gives the token.
func (t *toozConn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	key, leader, err := t.lockKey(req.Key)
	if err != nil {
		return driver.Lease{}, false, err
	}
	ttl := t.lockTTL(req, leader)
	value := []byte(req.Member)
	ckey := t.c.ks.counter(key)
	var run runID
	var floor uint64
	r, err := t.c.meta.do(ctx, t.addr, func(mc *metaConn) (string, []byte, error) {
		run, floor = mc.run, uint64(mc.serverNow()+1)*1_000_000
		return fmt.Sprintf("ms %s %d F%d T%d ME c", key, len(value), flagRaw, keyTTL(ttl)), value, nil
	})
	switch {
	case err != nil:
		return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", req.Key, err))
	case r.status == "NS":
		return driver.Lease{}, false, nil
	case r.status != "HD":
		return driver.Lease{}, false, classify(protocolError("ms: " + r.status))
	}
	cas, err := r.uintFlag('c')
	if err != nil {
		return driver.Lease{}, false, classify(err)
	}
	undo := func() { _, _ = t.c.compareAndDelete(context.WithoutCancel(ctx), t.addr, run, key, cas) }
	// The token is drawn once the lock is held, so the counter's value is
	// the token of the last baton grant (Holder reads it).
	r, err = t.c.meta.do(ctx, t.addr, func(mc *metaConn) (string, []byte, error) {
		return fmt.Sprintf("ma %s N0 J%d v", ckey, floor), nil, nil
	})
	var token uint64
	if err == nil && r.status == "VA" {
		token, err = strconv.ParseUint(strings.TrimSpace(string(r.value)), 10, 64)
	}
	if err != nil || r.status != "VA" || token == 0 {
		undo()
		if err != nil {
			return driver.Lease{}, false, classify(fmt.Errorf("lock %q: fencing counter: %w", req.Key, err))
		}
		return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "lock %q: fencing counter: unexpected reply %s %q", req.Key, r.status, r.value)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_, _ = t.c.compareAndDelete(context.WithoutCancel(ctx), t.addr, run, key, cas)
		return driver.Lease{}, false, driver.Errorf(driver.CodeCanceled, "lock %q: connection closed", req.Key)
	}
	t.grants[grantID{key, token}] = &toozGrant{run: run, cas: cas}
	t.mu.Unlock()
	return driver.Lease{Token: token, TTL: ttl}, true, nil
}

func (t *toozConn) grant(key string, token uint64) *toozGrant {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.grants[grantID{key, token}]
}

// Unlock deletes the lock key compared with the grant's CAS value (md C):
// never another holder's key, which tooz's own get-then-delete release
// cannot promise.
func (t *toozConn) Unlock(ctx context.Context, key string, token uint64) error {
	k, _, err := t.lockKey(key)
	if err != nil {
		return err
	}
	g := t.grant(k, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	ok, err := t.c.compareAndDelete(ctx, t.addr, g.run, k, g.cas)
	if err != nil {
		return classify(err)
	}
	t.mu.Lock()
	delete(t.grants, grantID{k, token})
	t.mu.Unlock()
	if !ok {
		return notHeld(key, token, nil)
	}
	return nil
}

// RefreshLock sets the lock key again, compared with the grant's CAS
// value, with a new expiry (tooz's heartbeat touches it).
func (t *toozConn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	k, _, err := t.lockKey(key)
	if err != nil {
		return err
	}
	g := t.grant(k, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	value := []byte(t.c.member)
	r, err := t.c.meta.do(ctx, t.addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != g.run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d F%d C%d T%d c", k, len(value), flagRaw, g.cas, keyTTL(ttl)), value, nil
	})
	switch {
	case errors.Is(err, errRestarted):
		return notHeld(key, token, errRestarted)
	case err != nil:
		return classify(err)
	case r.status == "EX" || r.status == "NF" || r.status == "NS":
		t.mu.Lock()
		delete(t.grants, grantID{k, token})
		t.mu.Unlock()
		return notHeld(key, token, nil)
	case r.status != "HD":
		return classify(protocolError("ms: " + r.status))
	}
	cas, err := r.uintFlag('c')
	if err != nil {
		return classify(err)
	}
	t.mu.Lock()
	g.cas = cas
	t.mu.Unlock()
	return nil
}

// Holder reads the lock key: its value is the holder's member ID (tooz's
// get_leader reads the same). The token is the lock's fencing counter:
// the last token drawn by a baton holder (0 when none ever was); a tooz
// holder has no token of its own.
func (t *toozConn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	k, _, err := t.lockKey(key)
	if err != nil {
		return driver.Holder{}, err
	}
	if err := ctx.Err(); err != nil {
		return driver.Holder{}, classify(err)
	}
	its, err := t.c.mc.GetMulti([]string{k, t.c.ks.counter(k)})
	if err != nil {
		return driver.Holder{}, classify(err)
	}
	it := its[k]
	if it == nil {
		return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	h := driver.Holder{Member: string(it.Value)}
	if it.Flags == flagMsgpack { // a str member ID, as tooz stores one given as str
		var s string
		if msgpack.Unmarshal(it.Value, &s) == nil {
			h.Member = s
		}
	}
	if c := its[t.c.ks.counter(k)]; c != nil {
		h.Token, _ = strconv.ParseUint(strings.TrimSpace(string(c.Value)), 10, 64)
	}
	return h, nil
}

// BreakLock deletes the lock key whoever holds it (tooz's break_).
func (t *toozConn) BreakLock(ctx context.Context, key string) (bool, error) {
	k, _, err := t.lockKey(key)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, classify(err)
	}
	err = t.c.mc.Delete(k)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return false, nil
	}
	return err == nil, classify(err)
}

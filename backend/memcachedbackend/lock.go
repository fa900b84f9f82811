package memcachedbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// leaderPrefix is how the backend names the lock of a group's leadership.
const leaderPrefix = "e/"

// tokenScale multiplies the server's clock (seconds) into the initial
// value of a fencing counter, so that a counter created anew (after an
// eviction or a restart) starts above every token of an earlier one
// unless a million grants a second went before.
const tokenScale = 1_000_000

// lockValue is the value of a lock key.
type lockValue struct {
	Token  uint64 `json:"t"`
	Nonce  string `json:"n"`
	Member string `json:"m"`
	Name   string `json:"k"`
}

func parseLockValue(b []byte) (lockValue, error) {
	var v lockValue
	err := json.Unmarshal(b, &v)
	return v, err
}

// lockTTL is the lease of a request: its TTL, else leader_timeout for
// leaderships and lock_timeout for locks.
func (c *conn) lockTTL(req driver.LockRequest) time.Duration {
	switch {
	case req.TTL > 0:
		return req.TTL
	case strings.HasPrefix(req.Key, leaderPrefix):
		return c.s.leaderTimeout
	default:
		return c.s.lockTimeout
	}
}

func (c *conn) pick(key string) (string, error) {
	addr, err := c.sl.PickServer(key)
	if err != nil {
		return "", err
	}
	return addr.String(), nil
}

// TryLock acquires in two round trips. The first is one write of two
// meta commands: an add of the lock key (ms KEY S T<ttl> ME c) whose value
// names the member, a nonce and the full lock name, then an increment of
// the lock's fencing counter (ma COUNTER N0 J<floor> v), created on a miss
// with the server's clock times tokenScale. The counter lives on the
// server of the lock key, and the server runs the two commands in order,
// so a successful add's increment comes after every earlier grant's: the
// token strictly increases in grant order. The second round trip writes
// the token into the lock's value, compared with the CAS value the add
// returned. Holder waits out the short moment between the two.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	ttl := c.lockTTL(req)
	v := lockValue{Nonce: newNonce(), Member: req.Member, Name: req.Key}
	value, _ := json.Marshal(v)
	key, ckey := c.ks.lock(req.Key), c.ks.counter(req.Key)
	addr, err := c.pick(key)
	if err != nil {
		return driver.Lease{}, false, classify(err)
	}
	exp := keyTTL(ttl)
	var run runID
	rs, err := c.meta.pipeline(ctx, addr, func(mc *metaConn) ([]command, error) {
		run = mc.run
		floor := uint64(mc.serverNow()+1) * tokenScale
		return []command{
			{line: fmt.Sprintf("ms %s %d T%d ME c", key, len(value), exp), data: value},
			{line: fmt.Sprintf("ma %s N0 J%d v", ckey, floor)},
		}, nil
	})
	if err != nil {
		if len(rs) > 0 && rs[0].status == "HD" {
			if cas, cerr := rs[0].uintFlag('c'); cerr == nil {
				_, _ = c.compareAndDelete(context.WithoutCancel(ctx), addr, run, key, cas)
			}
		}
		return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", req.Key, err))
	}
	switch rs[0].status {
	case "NS":
		return driver.Lease{}, false, nil
	case "HD":
	default:
		return driver.Lease{}, false, classify(protocolError("ms: " + rs[0].status))
	}
	cas, err := rs[0].uintFlag('c')
	if err != nil {
		return driver.Lease{}, false, classify(err)
	}
	if rs[1].status != "VA" {
		_, _ = c.compareAndDelete(context.WithoutCancel(ctx), addr, run, key, cas)
		return driver.Lease{}, false, classify(protocolError("ma: " + rs[1].status))
	}
	v.Token, err = strconv.ParseUint(strings.TrimSpace(string(rs[1].value)), 10, 64)
	if err != nil {
		_, _ = c.compareAndDelete(context.WithoutCancel(ctx), addr, run, key, cas)
		return driver.Lease{}, false, classify(protocolError("ma: " + string(rs[1].value)))
	}
	value, _ = json.Marshal(v)
	r, err := c.meta.do(ctx, addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d C%d T%d c", key, len(value), cas, exp), value, nil
	})
	switch {
	case errors.Is(err, errRestarted):
		return driver.Lease{}, false, nil
	case err != nil:
		_, _ = c.compareAndDelete(context.WithoutCancel(ctx), addr, run, key, cas)
		return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", req.Key, err))
	case r.status == "NF" || r.status == "EX":
		// Broken (or evicted) between the two round trips.
		return driver.Lease{}, false, nil
	case r.status != "HD":
		return driver.Lease{}, false, classify(protocolError("ms: " + r.status))
	}
	if cas, err = r.uintFlag('c'); err != nil {
		return driver.Lease{}, false, classify(err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_, _ = c.compareAndDelete(context.WithoutCancel(ctx), addr, run, key, cas)
		return driver.Lease{}, false, driver.Errorf(driver.CodeCanceled, "lock %q: connection closed", req.Key)
	}
	c.grants[grantID{req.Key, v.Token}] = &grant{addr: addr, run: run, cas: cas, value: value}
	c.mu.Unlock()
	return driver.Lease{Token: v.Token, TTL: ttl}, true, nil
}

// compareAndDelete deletes key if its CAS value is still cas, on the run
// of the server the grant was made on. It reports whether it deleted.
func (c *conn) compareAndDelete(ctx context.Context, addr string, run runID, key string, cas uint64) (bool, error) {
	r, err := c.meta.do(ctx, addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("md %s C%d", key, cas), nil, nil
	})
	switch {
	case errors.Is(err, errRestarted):
		return false, nil
	case err != nil:
		return false, err
	}
	switch r.status {
	case "HD":
		return true, nil
	case "NF", "EX":
		return false, nil
	}
	return false, protocolError("md: " + r.status)
}

func (c *conn) grant(key string, token uint64) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.grants[grantID{key, token}]
}

func (c *conn) forget(key string, token uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.grants, grantID{key, token})
}

func notHeld(key string, token uint64, cause error) error {
	if cause == nil {
		return driver.Errorf(driver.CodeNotHeld, "lock %q token %d is not held", key, token)
	}
	return driver.Errorf(driver.CodeNotHeld, "lock %q token %d is not held: %w", key, token, cause)
}

// Unlock deletes the lock key only while its CAS value is the one this
// grant stored or last refreshed (md KEY C<cas>): never a blind delete.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	return c.unlock(ctx, key, token)
}

func (c *conn) unlock(ctx context.Context, key string, token uint64) error {
	g := c.grant(key, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	deleted, err := c.compareAndDelete(ctx, g.addr, g.run, c.ks.lock(key), g.cas)
	if err != nil {
		return classify(fmt.Errorf("unlock %q: %w", key, err))
	}
	c.forget(key, token)
	if !deleted {
		return notHeld(key, token, errEvicted)
	}
	return nil
}

// RefreshLock sets the lock key again with its own value and a new
// expiry, only while its CAS value is the grant's (ms KEY C<cas> T<ttl>).
// A key that is gone or was replaced means the grant was lost: expired,
// broken, evicted, or lost in a restart.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	g := c.grant(key, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	lkey := c.ks.lock(key)
	r, err := c.meta.do(ctx, g.addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != g.run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d C%d T%d c", lkey, len(g.value), g.cas, keyTTL(ttl)), g.value, nil
	})
	if errors.Is(err, errRestarted) {
		c.forget(key, token)
		return notHeld(key, token, err)
	}
	if err != nil {
		return classify(fmt.Errorf("refresh %q: %w", key, err))
	}
	switch r.status {
	case "HD":
		cas, err := r.uintFlag('c')
		if err != nil {
			return classify(err)
		}
		c.mu.Lock()
		g.cas = cas
		c.mu.Unlock()
		return nil
	case "NF", "EX", "NS":
		c.forget(key, token)
		return notHeld(key, token, errEvicted)
	}
	return classify(protocolError("ms: " + r.status))
}

// Holder reads the lock key.
// A grant being made (its token not yet written) is read again after a
// millisecond, for at most holderWait.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	deadline := time.Now().Add(holderWait)
	for {
		v, _, err := c.readLock(ctx, key)
		if err != nil {
			return driver.Holder{}, err
		}
		if v.Token != 0 {
			return driver.Holder{Member: v.Member, Token: v.Token}, nil
		}
		if time.Now().After(deadline) {
			return driver.Holder{}, driver.Errorf(driver.CodeUnavailable, "lock %q: a grant is being made; try again", key)
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Holder{}, classify(ctx.Err())
		case <-t.C:
		}
	}
}

// holderWait bounds how long Holder waits for a grant's token.
const holderWait = time.Second

// readLock reads a lock key's value and CAS value (CodeNotFound when
// free).
func (c *conn) readLock(ctx context.Context, key string) (lockValue, uint64, error) {
	lkey := c.ks.lock(key)
	addr, err := c.pick(lkey)
	if err != nil {
		return lockValue{}, 0, classify(err)
	}
	r, err := c.meta.do(ctx, addr, func(*metaConn) (string, []byte, error) {
		return fmt.Sprintf("mg %s v c", lkey), nil, nil
	})
	if err != nil {
		return lockValue{}, 0, classify(fmt.Errorf("holder of %q: %w", key, err))
	}
	if r.status == "EN" {
		return lockValue{}, 0, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	if r.status != "VA" {
		return lockValue{}, 0, classify(protocolError("mg: " + r.status))
	}
	v, err := parseLockValue(r.value)
	if err != nil || v.Name != key {
		return lockValue{}, 0, driver.Errorf(driver.CodeInternal, "lock %q: unexpected value %q", key, r.value)
	}
	cas, err := r.uintFlag('c')
	if err != nil {
		return lockValue{}, 0, classify(err)
	}
	return v, cas, nil
}

// BreakLock deletes the lock key whoever holds it, by compare-and-delete
// against the CAS value just read (so it breaks one grant, never the
// next).
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	for i := 0; i < maxCASRetries; i++ {
		_, cas, err := c.readLock(ctx, key)
		if code, _ := driver.CodeOf(err); err != nil && code == driver.CodeNotFound {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		lkey := c.ks.lock(key)
		addr, err := c.pick(lkey)
		if err != nil {
			return false, classify(err)
		}
		r, err := c.meta.do(ctx, addr, func(*metaConn) (string, []byte, error) {
			return fmt.Sprintf("md %s C%d", lkey, cas), nil, nil
		})
		if err != nil {
			return false, classify(fmt.Errorf("break %q: %w", key, err))
		}
		switch r.status {
		case "HD":
			return true, nil
		case "NF":
			return false, nil
		}
	}
	return false, classify(fmt.Errorf("break %q: %w", key, errContended))
}

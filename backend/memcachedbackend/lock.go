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

// A fencing token is EPOCH<<seqBits | SEQ. EPOCH comes from the lock's
// counter (meta arithmetic: an incr), drawn whenever the lock key is
// created; SEQ counts the grants of the key since, in the key's value.
const (
	seqBits = 24
	seqMask = 1<<seqBits - 1
	// maxEpoch keeps tokens within 64 bits.
	maxEpoch = 1<<(64-seqBits) - 1
	// epochScale multiplies the server's clock (seconds) into the initial
	// value of a counter created anew (after an eviction or a restart), so
	// that it starts above every epoch of an earlier one unless more than
	// 256 epochs a second were drawn.
	epochScale = 256
)

// lockValue is the value of a lock key: held, with the grant's token,
// nonce and member; or free, with the last token granted.
type lockValue struct {
	Held   bool   `json:"h,omitempty"`
	Token  uint64 `json:"t"`
	Nonce  string `json:"n,omitempty"`
	Member string `json:"m,omitempty"`
	Name   string `json:"k"`
}

func parseLockValue(b []byte) (lockValue, error) {
	var v lockValue
	err := json.Unmarshal(b, &v)
	return v, err
}

// freeLock is a lock key this connection released, as it left it: the
// next acquire can compare-and-set it without reading it first.
type freeLock struct {
	run  runID
	cas  uint64
	last uint64
	lkey string // the lock key
	addr string // its server
}

// maxFreeLocks bounds the connection's cache of released locks.
const maxFreeLocks = 1024

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

// takeFree removes and returns the cached state of a lock this
// connection released.
func (c *conn) takeFree(key string) (freeLock, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.free[key]
	delete(c.free, key)
	return f, ok
}

func (c *conn) putFree(key string, f freeLock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.free) >= maxFreeLocks {
		for k := range c.free {
			delete(c.free, k)
			break
		}
	}
	c.free[key] = f
}

// lockReq is one acquire attempt's fixed parts.
type lockReq struct {
	req   driver.LockRequest
	key   string // the lock key
	addr  string
	exp   int32
	ttl   time.Duration
	nonce string
}

func (r *lockReq) held(token uint64) []byte {
	b, _ := json.Marshal(lockValue{Held: true, Token: token, Nonce: r.nonce, Member: r.req.Member, Name: r.req.Key})
	return b
}

// TryLock takes the lock key when it is absent or free. Every path stores
// the grant with a compare: the key changes (and its CAS value with it)
// on every grant and release, so a compare that succeeds proves no grant
// came between, and the token is one more than the last.
//
//   - Fast path, one round trip: this connection released the lock last
//     and remembers the key's CAS value; it sets the key held
//     (ms KEY S C<cas> T<ttl> c), with the next token.
//   - A free key: read it (mg KEY v c), then set it held, compared.
//   - An absent key (never used, expired with a dead holder, evicted, or
//     lost in a restart): add it (ms KEY S T<ttl> ME c) and, in the same
//     write, increment the lock's counter (ma COUNTER N0 J<floor> v) for
//     a new epoch; the server runs the two in order, so the epoch is drawn
//     after the add succeeded, above every earlier one. A second round
//     trip writes the token into the key (Holder waits for it).
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	lr := &lockReq{req: req, ttl: c.lockTTL(req), nonce: newNonce()}
	lr.exp = keyTTL(lr.ttl)
	// A lock this connection released last: its key, server, CAS value
	// and token are known, and one request takes it.
	f, free := c.takeFree(req.Key)
	if free {
		lr.key, lr.addr = f.lkey, f.addr
	} else {
		lr.key = c.ks.lock(req.Key)
		var err error
		if lr.addr, err = c.pick(lr.key); err != nil {
			return driver.Lease{}, false, classify(err)
		}
	}
	if free && f.last&seqMask < seqMask {
		lease, ok, err := c.setHeld(ctx, lr, f.run, f.cas, f.last+1)
		if err != nil || ok {
			return lease, ok, err
		}
	}
	for range maxCASRetries {
		var run runID
		r, err := c.meta.do(ctx, lr.addr, func(mc *metaConn) (string, []byte, error) {
			run = mc.run
			return "mg " + lr.key + " v c", nil, nil
		})
		if err != nil {
			return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", req.Key, err))
		}
		switch r.status {
		case "EN":
			lease, ok, retry, err := c.create(ctx, lr)
			if retry {
				continue
			}
			return lease, ok, err
		case "VA":
		default:
			return driver.Lease{}, false, classify(protocolError("mg: " + r.status))
		}
		v, err := parseLockValue(r.value)
		if err != nil || v.Name != req.Key {
			return driver.Lease{}, false, driver.Errorf(driver.CodeInternal, "lock %q: unexpected value %q", req.Key, r.value)
		}
		if v.Held {
			return driver.Lease{}, false, nil
		}
		cas, err := r.uintFlag('c')
		if err != nil {
			return driver.Lease{}, false, classify(err)
		}
		if v.Token&seqMask >= seqMask {
			// The epoch is used up: drop the free key for a new one.
			_, _ = c.compareAndDelete(ctx, lr.addr, run, lr.key, cas)
			continue
		}
		lease, ok, err := c.setHeld(ctx, lr, run, cas, v.Token+1)
		if err != nil || ok {
			return lease, ok, err
		}
	}
	return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", req.Key, errContended))
}

// setHeld sets the lock key held with token, compared with cas on the
// server run it was read on; ok false when the key changed meanwhile.
func (c *conn) setHeld(ctx context.Context, lr *lockReq, run runID, cas, token uint64) (driver.Lease, bool, error) {
	value := lr.held(token)
	r, err := c.meta.do(ctx, lr.addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d C%d T%d c", lr.key, len(value), cas, lr.exp), value, nil
	})
	switch {
	case errors.Is(err, errRestarted):
		return driver.Lease{}, false, nil
	case err != nil:
		c.undoLost(ctx, lr)
		return driver.Lease{}, false, classify(fmt.Errorf("lock %q: %w", lr.req.Key, err))
	case r.status == "EX" || r.status == "NF":
		return driver.Lease{}, false, nil
	case r.status != "HD":
		return driver.Lease{}, false, classify(protocolError("ms: " + r.status))
	}
	newCAS, err := r.uintFlag('c')
	if err != nil {
		return driver.Lease{}, false, classify(err)
	}
	return c.granted(ctx, lr, run, newCAS, token, value)
}

// undoLost frees the lock key if an acquire whose reply was lost (a
// broken connection, a timeout) did set it held: the key then carries
// this request's nonce. Best effort, within one request's timeout.
func (c *conn) undoLost(ctx context.Context, lr *lockReq) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.socketTimeout)
	defer cancel()
	v, cas, run, err := c.readLock(ctx, lr.req.Key)
	if err != nil || !v.Held || v.Nonce != lr.nonce {
		return
	}
	_, _ = c.release(ctx, lr.req.Key, &grant{lkey: lr.key, addr: lr.addr, run: run, cas: cas}, v.Token)
}

// release ends a grant whose key was read with cas: set free with its
// token, or deleted (compared) while the token is not yet written, so
// that the next grant draws a new epoch rather than restarting at 1.
func (c *conn) release(ctx context.Context, key string, g *grant, token uint64) (bool, error) {
	if token == 0 {
		return c.compareAndDelete(ctx, g.addr, g.run, c.ks.lock(key), g.cas)
	}
	return c.setFree(ctx, key, g, token)
}

// create adds an absent lock key and draws a new epoch for it; retry
// reports that someone else created the key first.
func (c *conn) create(ctx context.Context, lr *lockReq) (lease driver.Lease, ok, retry bool, err error) {
	placeholder := lr.held(0)
	var run runID
	rs, err := c.meta.pipeline(ctx, lr.addr, func(mc *metaConn) ([]command, error) {
		run = mc.run
		floor := uint64(mc.serverNow()+1) * epochScale
		return []command{
			{line: fmt.Sprintf("ms %s %d T%d ME c", lr.key, len(placeholder), lr.exp), data: placeholder},
			{line: fmt.Sprintf("ma %s N0 J%d v", c.ks.counter(lr.req.Key), floor)},
		}, nil
	})
	undo := func(cas uint64) {
		_, _ = c.compareAndDelete(context.WithoutCancel(ctx), lr.addr, run, lr.key, cas)
	}
	if err != nil {
		if len(rs) > 0 && rs[0].status == "HD" {
			if cas, cerr := rs[0].uintFlag('c'); cerr == nil {
				undo(cas)
			}
		}
		return driver.Lease{}, false, false, classify(fmt.Errorf("lock %q: %w", lr.req.Key, err))
	}
	switch rs[0].status {
	case "NS":
		return driver.Lease{}, false, true, nil
	case "HD":
	default:
		return driver.Lease{}, false, false, classify(protocolError("ms: " + rs[0].status))
	}
	cas, err := rs[0].uintFlag('c')
	if err != nil {
		return driver.Lease{}, false, false, classify(err)
	}
	var epoch uint64
	if rs[1].status == "VA" {
		epoch, err = strconv.ParseUint(strings.TrimSpace(string(rs[1].value)), 10, 64)
	}
	if rs[1].status != "VA" || err != nil || epoch > maxEpoch {
		undo(cas)
		return driver.Lease{}, false, false, driver.Errorf(driver.CodeInternal, "lock %q: fencing counter: unexpected reply %s %q", lr.req.Key, rs[1].status, rs[1].value)
	}
	lease, ok, err = c.setHeld(ctx, lr, run, cas, epoch<<seqBits|1)
	return lease, ok, false, err
}

// granted records a grant; a connection closed meanwhile releases it.
func (c *conn) granted(ctx context.Context, lr *lockReq, run runID, cas, token uint64, value []byte) (driver.Lease, bool, error) {
	g := &grant{lkey: lr.key, addr: lr.addr, run: run, cas: cas, value: value}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_, _ = c.setFree(context.WithoutCancel(ctx), lr.req.Key, g, token)
		return driver.Lease{}, false, driver.Errorf(driver.CodeCanceled, "lock %q: connection closed", lr.req.Key)
	}
	c.grants[grantID{lr.req.Key, token}] = g
	c.mu.Unlock()
	return driver.Lease{Token: token, TTL: lr.ttl}, true, nil
}

// setFree sets the lock key of grant g free (keeping its token as the
// last one, never expiring), compared with the grant's CAS value; it
// reports whether the grant still held the key.
func (c *conn) setFree(ctx context.Context, key string, g *grant, token uint64) (bool, error) {
	value, _ := json.Marshal(lockValue{Token: token, Name: key})
	lkey := g.lkey
	r, err := c.meta.do(ctx, g.addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != g.run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d C%d T0 c", lkey, len(value), g.cas), value, nil
	})
	switch {
	case errors.Is(err, errRestarted):
		return false, nil
	case err != nil:
		return false, err
	case r.status == "EX" || r.status == "NF":
		return false, nil
	case r.status != "HD":
		return false, protocolError("ms: " + r.status)
	}
	if cas, err := r.uintFlag('c'); err == nil {
		c.putFree(key, freeLock{run: g.run, cas: cas, last: token, lkey: lkey, addr: g.addr})
	}
	return true, nil
}

// compareAndDelete deletes key if its CAS value is still cas, on the run
// of the server it was read on (md KEY C<cas>). It reports whether it
// deleted.
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

// Unlock sets the lock key free only while its CAS value is the one this
// grant stored or last refreshed (ms KEY S C<cas> T0): never a blind
// delete. One round trip.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	return c.unlock(ctx, key, token)
}

func (c *conn) unlock(ctx context.Context, key string, token uint64) error {
	g := c.grant(key, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	c.mu.Lock()
	gc := *g
	c.mu.Unlock()
	released, err := c.setFree(ctx, key, &gc, token)
	if err != nil {
		return classify(fmt.Errorf("unlock %q: %w", key, err))
	}
	c.forget(key, token)
	if !released {
		return notHeld(key, token, errEvicted)
	}
	return nil
}

// RefreshLock sets the lock key again with its own value and a new
// expiry, only while its CAS value is the grant's (ms KEY S C<cas>
// T<ttl> c). A key that is gone or was replaced means the grant was lost:
// expired, broken, evicted, or lost in a restart.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	g := c.grant(key, token)
	if g == nil {
		return notHeld(key, token, nil)
	}
	c.mu.Lock()
	cas := g.cas
	c.mu.Unlock()
	lkey := c.ks.lock(key)
	r, err := c.meta.do(ctx, g.addr, func(mc *metaConn) (string, []byte, error) {
		if mc.run != g.run {
			return "", nil, errRestarted
		}
		return fmt.Sprintf("ms %s %d C%d T%d c", lkey, len(g.value), cas, keyTTL(ttl)), g.value, nil
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
		newCAS, err := r.uintFlag('c')
		if err != nil {
			return classify(err)
		}
		c.mu.Lock()
		g.cas = newCAS
		c.mu.Unlock()
		return nil
	case "NF", "EX", "NS":
		c.forget(key, token)
		return notHeld(key, token, errEvicted)
	}
	return classify(protocolError("ms: " + r.status))
}

// Holder reads the lock key. A grant being made (its token not yet
// written) is read again after a millisecond, for at most holderWait.
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	deadline := time.Now().Add(holderWait)
	for {
		v, _, _, err := c.readLock(ctx, key)
		if err != nil {
			return driver.Holder{}, err
		}
		if !v.Held {
			return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
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

// readLock reads a lock key's value and CAS value, and the server run it
// was read on (CodeNotFound when absent).
func (c *conn) readLock(ctx context.Context, key string) (lockValue, uint64, runID, error) {
	lkey := c.ks.lock(key)
	addr, err := c.pick(lkey)
	if err != nil {
		return lockValue{}, 0, runID{}, classify(err)
	}
	var run runID
	r, err := c.meta.do(ctx, addr, func(mc *metaConn) (string, []byte, error) {
		run = mc.run
		return "mg " + lkey + " v c", nil, nil
	})
	if err != nil {
		return lockValue{}, 0, run, classify(fmt.Errorf("holder of %q: %w", key, err))
	}
	if r.status == "EN" {
		return lockValue{}, 0, run, driver.Errorf(driver.CodeNotFound, "lock %q is free", key)
	}
	if r.status != "VA" {
		return lockValue{}, 0, run, classify(protocolError("mg: " + r.status))
	}
	v, err := parseLockValue(r.value)
	if err != nil || v.Name != key {
		return lockValue{}, 0, run, driver.Errorf(driver.CodeInternal, "lock %q: unexpected value %q", key, r.value)
	}
	cas, err := r.uintFlag('c')
	if err != nil {
		return lockValue{}, 0, run, classify(err)
	}
	return v, cas, run, nil
}

// BreakLock sets the lock key free whoever holds it, compared with the
// CAS value just read (so it breaks one grant, never the next).
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	lkey := c.ks.lock(key)
	addr, err := c.pick(lkey)
	if err != nil {
		return false, classify(err)
	}
	for range maxCASRetries {
		v, cas, run, err := c.readLock(ctx, key)
		if code, _ := driver.CodeOf(err); err != nil && code == driver.CodeNotFound {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !v.Held {
			return false, nil
		}
		ok, err := c.release(ctx, key, &grant{lkey: lkey, addr: addr, run: run, cas: cas}, v.Token)
		if err != nil {
			return false, classify(fmt.Errorf("break %q: %w", key, err))
		}
		if ok {
			c.takeFree(key) // another connection's grant: nothing to remember
			return true, nil
		}
	}
	return false, classify(fmt.Errorf("break %q: %w", key, errContended))
}

package membackend

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// grant is one held lock.
type grant struct {
	key    string
	token  uint64
	member string
	c      *conn
	shared bool
	// Lease mode: an own lease of ttl, expiring at expires unless
	// refreshed; ttl 0 binds the grant to the session.
	ttl     time.Duration
	expires time.Time
}

// waiter is a WaitLock call queued for a key.
type waiter struct {
	c     *conn
	ctx   context.Context
	req   driver.LockRequest
	cuts  uint64        // c.cuts when the wait began
	ready chan struct{} // closed when g is set
	g     *grant
	at    time.Time // when g was granted
}

// lockState is everything the store keeps about one key. It exists while
// the key is held, waited for or watched.
type lockState struct {
	excl     *grant
	shared   []*grant // in token order
	waiters  []*waiter
	watchers map[*holderWatch]struct{} // nil until watched
	last     driver.Holder
	lastHeld bool
}

// all returns every grant of the key.
func (ls *lockState) all() []*grant {
	if ls.excl != nil {
		return append([]*grant{ls.excl}, ls.shared...)
	}
	return ls.shared
}

func (ls *lockState) free() bool { return ls.excl == nil && len(ls.shared) == 0 }

// holder returns the exclusive holder or the lowest-token shared holder.
func (ls *lockState) holder() (driver.Holder, bool) {
	switch {
	case ls.excl != nil:
		return driver.Holder{Member: ls.excl.member, Token: ls.excl.token}, true
	case len(ls.shared) > 0:
		return driver.Holder{Member: ls.shared[0].member, Token: ls.shared[0].token}, true
	}
	return driver.Holder{}, false
}

// find returns c's grant of this key with token.
func (ls *lockState) find(c *conn, token uint64) *grant {
	if g := ls.excl; g != nil && g.token == token && g.c == c {
		return g
	}
	for _, g := range ls.shared {
		if g.token == token && g.c == c {
			return g
		}
	}
	return nil
}

// remove takes g off the key, without handing the lock on.
func (ls *lockState) remove(g *grant) {
	if ls.excl == g {
		ls.excl = nil
		return
	}
	ls.shared = slices.DeleteFunc(ls.shared, func(x *grant) bool { return x == g })
}

// lockLocked returns key's state, creating it.
func (s *store) lockLocked(key string) *lockState {
	ls, ok := s.locks[key]
	if !ok {
		ls = &lockState{}
		s.locks[key] = ls
	}
	return ls
}

// grantLocked gives key to c. The caller settles the key afterwards.
func (s *store) grantLocked(c *conn, req driver.LockRequest, ls *lockState, shared bool) *grant {
	g := &grant{key: req.Key, token: s.nextTokenLocked(), member: req.Member, c: c, shared: shared}
	if c.leaseMode() {
		g.ttl = req.TTL
		if g.ttl == 0 {
			g.ttl = c.lockTTL
		}
		if g.ttl > 0 {
			g.expires = c.clock.Now().Add(g.ttl)
		}
	}
	if shared {
		ls.shared = append(ls.shared, g)
	} else {
		ls.excl = g
	}
	c.grants[g] = struct{}{}
	return g
}

// releaseLocked ends g, unless it ended already, and settles its key.
func (s *store) releaseLocked(g *grant) {
	if _, ok := g.c.grants[g]; !ok {
		return
	}
	ls := s.locks[g.key]
	ls.remove(g)
	delete(g.c.grants, g)
	s.settleLocked(g.key, ls)
}

// settleLocked runs after every change of a key: it hands a free lock to
// the first waiter that can still take it, tells holder watchers about a
// new holder, and forgets a key nobody uses.
func (s *store) settleLocked(key string, ls *lockState) {
	for ls.free() && len(ls.waiters) > 0 {
		w := ls.waiters[0]
		ls.waiters = ls.waiters[1:]
		if w.c.usableLocked() != nil || w.c.cuts != w.cuts || w.ctx.Err() != nil {
			continue // its call returns an error when it wakes up
		}
		w.at = w.c.clock.Now()
		w.g = s.grantLocked(w.c, w.req, ls, false)
		close(w.ready)
	}
	if h, held := ls.holder(); h != ls.last || held != ls.lastHeld {
		ls.last, ls.lastHeld = h, held
		for w := range ls.watchers {
			w.pushLocked(holderEvent{h: h, held: held})
		}
	}
	if ls.free() && len(ls.waiters) == 0 && len(ls.watchers) == 0 {
		delete(s.locks, key)
	}
}

// notHeldIfLost turns the error of a call on an expired session into not
// held: every grant of the session ended with it.
func notHeldIfLost(err error) error {
	if err == nil {
		return nil
	}
	if c, _ := driver.CodeOf(err); c == driver.CodeLost {
		return driver.Wrap(driver.CodeNotHeld, errors.Unwrap(err))
	}
	return err
}

func lease(g *grant) driver.Lease { return driver.Lease{Token: g.token, TTL: g.ttl} }

// TryLock takes key when nobody holds it and nobody waits for it.
func (c *conn) TryLock(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, false)
}

// TryLockShared takes a shared grant of key unless an exclusive grant is
// held or an exclusive waiter is queued.
func (c *conn) TryLockShared(ctx context.Context, req driver.LockRequest) (driver.Lease, bool, error) {
	return c.tryLock(ctx, req, true)
}

func (c *conn) tryLock(ctx context.Context, req driver.LockRequest, shared bool) (driver.Lease, bool, error) {
	if err := c.injected(ctx, OpAcquire); err != nil {
		return driver.Lease{}, false, err
	}
	if err := c.begin(ctx); err != nil {
		return driver.Lease{}, false, err
	}
	s := c.s
	defer s.mu.Unlock()
	ls := s.lockLocked(req.Key)
	ok := ls.excl == nil && len(ls.waiters) == 0 && (shared || len(ls.shared) == 0)
	if !ok {
		s.settleLocked(req.Key, ls)
		return driver.Lease{}, false, nil
	}
	g := s.grantLocked(c, req, ls, shared)
	s.settleLocked(req.Key, ls)
	return lease(g), true, nil
}

// WaitLock takes key, queueing behind earlier waiters until it is handed
// over, ctx is done, or the connection fails (closed, expired,
// unreachable), in which case it holds nothing.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if err := c.injected(ctx, OpAcquire); err != nil {
		return driver.Lease{}, err
	}
	if err := c.begin(ctx); err != nil {
		return driver.Lease{}, err
	}
	s := c.s
	ls := s.lockLocked(req.Key)
	if ls.free() && len(ls.waiters) == 0 {
		g := s.grantLocked(c, req, ls, false)
		s.settleLocked(req.Key, ls)
		s.mu.Unlock()
		return lease(g), nil
	}
	changed, cuts := c.changed, c.cuts
	w := &waiter{c: c, ctx: ctx, req: req, cuts: cuts, ready: make(chan struct{})}
	ls.waiters = append(ls.waiters, w)
	expiry, stop := c.expiryTimerLocked()
	s.mu.Unlock()
	for {
		select {
		case <-w.ready:
		case <-ctx.Done():
		case <-changed:
		case <-expiry:
		}
		stop()
		s.mu.Lock()
		err := c.checkLocked(ctx, cuts)
		switch {
		case w.g != nil && err != nil:
			s.releaseLocked(w.g)
		case w.g != nil:
			s.mu.Unlock()
			l := lease(w.g)
			l.Sent = w.at
			return l, nil
		case err != nil:
			if ls, ok := s.locks[req.Key]; ok {
				ls.waiters = slices.DeleteFunc(ls.waiters, func(x *waiter) bool { return x == w })
				s.settleLocked(req.Key, ls)
			}
		}
		changed = c.changed
		expiry, stop = c.expiryTimerLocked()
		s.mu.Unlock()
		if err != nil {
			stop()
			return driver.Lease{}, err
		}
	}
}

// Unlock releases c's grant of key with token. After the session expired
// it fails with not held (wrapping the expiry), as the SPI asks of a grant
// that expired.
func (c *conn) Unlock(ctx context.Context, key string, token uint64) error {
	if err := c.injected(ctx, OpUnlock); err != nil {
		return err
	}
	if err := notHeldIfLost(c.begin(ctx)); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	ls, ok := s.locks[key]
	var g *grant
	if ok {
		g = ls.find(c, token)
	}
	if g == nil {
		return driver.Errorf(driver.CodeNotHeld, "token %d does not hold %q", token, key)
	}
	s.releaseLocked(g)
	return nil
}

// RefreshLock checks the grant and, for an own lease (lease mode),
// extends it to ttl from now. After the session expired, or once the
// lease ran out, it fails with not held, like Unlock.
func (c *conn) RefreshLock(ctx context.Context, key string, token uint64, ttl time.Duration) error {
	if err := c.injected(ctx, OpRefresh); err != nil {
		return err
	}
	if err := notHeldIfLost(c.begin(ctx)); err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	if ls, ok := s.locks[key]; ok {
		if g := ls.find(c, token); g != nil {
			if g.ttl > 0 {
				g.expires = c.clock.Now().Add(ttl)
			}
			return nil
		}
	}
	return driver.Errorf(driver.CodeNotHeld, "token %d does not hold %q", token, key)
}

// Holder reports key's holder (the lowest-token one of a shared lock).
func (c *conn) Holder(ctx context.Context, key string) (driver.Holder, error) {
	if err := c.begin(ctx); err != nil {
		return driver.Holder{}, err
	}
	s := c.s
	defer s.mu.Unlock()
	if ls, ok := s.locks[key]; ok {
		if h, held := ls.holder(); held {
			return h, nil
		}
	}
	return driver.Holder{}, driver.Errorf(driver.CodeNotFound, "%q is not held", key)
}

// BreakLock releases every grant of key, whoever holds it; the first
// waiter then gets it. The holders are not told.
func (c *conn) BreakLock(ctx context.Context, key string) (bool, error) {
	if err := c.begin(ctx); err != nil {
		return false, err
	}
	s := c.s
	defer s.mu.Unlock()
	ls, ok := s.locks[key]
	if !ok || ls.free() {
		return false, nil
	}
	gs := append([]*grant(nil), ls.shared...)
	if ls.excl != nil {
		gs = append(gs, ls.excl)
	}
	for _, g := range gs {
		ls.remove(g)
		delete(g.c.grants, g)
	}
	s.settleLocked(key, ls)
	return true, nil
}

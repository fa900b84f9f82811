package consulbackend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// blockWait is the wait time of every blocking query: a query returns at
// the latest after it (plus Consul's jitter of a sixteenth) and is sent
// again, so a silently dead connection is noticed within it.
const blockWait = 10 * time.Second

// conn is one consul:// connection acting as one member: one HTTP client,
// one Consul session, one goroutine following the session with a blocking
// query. It is safe for concurrent use.
type conn struct {
	cli       *api.Client
	transport *http.Transport
	log       *zap.Logger
	obs       driver.SessionObserver
	clock     driver.Clock
	memberID  string
	keys      keyspace
	timeout   time.Duration // per request
	ttl       time.Duration
	lockDelay time.Duration
	session   string // Consul session ID

	slot atomic.Uint64 // shared-holder key numbers

	mu     sync.Mutex
	closed bool
	held   map[grantID]string // Consul key of each grant of this connection
	// orphans and inFlight: see orphans.go.
	orphans  map[string]bool
	inFlight map[string]int

	stopWatch context.CancelFunc
	wg        sync.WaitGroup
}

// grantID names one grant of this connection: the lock and its token.
type grantID struct {
	lock  string
	token uint64
}

var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.SharedLocker  = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// createSession creates the member's session: TTL-only (no node health
// check, so liveness is exactly what Renew proves), Behavior=delete (the
// member keys and locks acquired with it vanish with it) and the
// configured lock-delay. It goes through the raw API because the client's
// SessionEntry cannot say "lock-delay 0" (0 means Consul's 15 s default).
func (c *conn) createSession(ctx context.Context, s *settings, name string) error {
	body := map[string]any{
		"Name":      name,
		"TTL":       s.ttl.String(),
		"Behavior":  api.SessionBehaviorDelete,
		"LockDelay": s.lockDelay.String(),
		"Checks":    []string{},
	}
	var out struct{ ID string }
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	_, err := c.cli.Raw().Write("/v1/session/create", body, &out, (&api.WriteOptions{}).WithContext(rctx))
	if err != nil {
		return classify(ctx, rctx, "create session", err)
	}
	if out.ID == "" {
		return driver.Errorf(driver.CodeInternal, "create session: the agent returned no session ID")
	}
	c.session = out.ID
	return nil
}

// Session reports TTL liveness: Consul invalidates the session no sooner
// than its TTL after the server received the last renewal (it waits up
// to twice the TTL), so the backend's deadline, measured from when the
// renewal was sent, is conservative.
//
// RenewInterval is the timing model's default (a third of the TTL), set
// here because Backend.Session reports the driver's SessionInfo as is and
// the conformance suite expects a TTL session to state its interval.
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.ttl, RenewInterval: c.ttl / backend.DefaultIntervalDivisor}
}

// reqCtx bounds one request by the timeout option.
func (c *conn) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// query returns read options under rctx; consistent reads are
// linearizable (the leader confirms its leadership with a quorum).
func query(rctx context.Context, consistent bool) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: consistent}).WithContext(rctx)
}

// txn applies ops atomically. ok is false when an operation failed and
// the transaction was rolled back (resp says which).
func (c *conn) txn(ctx context.Context, op string, ops api.TxnOps) (bool, *api.TxnResponse, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	ok, resp, _, err := c.cli.Txn().Txn(ops, query(rctx, false))
	if err != nil {
		return false, nil, classify(ctx, rctx, op, err)
	}
	return ok, resp, nil
}

// list reads every key under prefix (consistently).
func (c *conn) list(ctx context.Context, op, prefix string) (api.KVPairs, uint64, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	pairs, meta, err := c.cli.KV().List(prefix, query(rctx, true))
	if err != nil {
		return nil, 0, classify(ctx, rctx, op, err)
	}
	return pairs, meta.LastIndex, nil
}

// get reads one key (consistently); nil when absent.
func (c *conn) get(ctx context.Context, op, key string) (*api.KVPair, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	p, _, err := c.cli.KV().Get(key, query(rctx, true))
	if err != nil {
		return nil, classify(ctx, rctx, op, err)
	}
	return p, nil
}

// block is a blocking query on prefix: it returns when the prefix's index
// moves past index, or after blockWait with the same listing. Consul
// serves it from the leader (default consistency mode).
func (c *conn) block(ctx context.Context, op, prefix string, index uint64) (api.KVPairs, uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, blockWait+blockWait/16+c.timeout)
	defer cancel()
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: blockWait}).WithContext(rctx)
	pairs, meta, err := c.cli.KV().List(prefix, q)
	if err != nil {
		return nil, 0, classify(ctx, rctx, op, err)
	}
	return pairs, meta.LastIndex, nil
}

// nextIndex is the index of the next blocking query after a reply with
// index got, following Consul's rules: an index that went backwards
// (a snapshot restore, a restarted dev agent) starts over from 0, and 0
// is never waited on as such.
func nextIndex(prev, got uint64) (uint64, bool) {
	if got < prev {
		return 0, true
	}
	return max(got, 1), false
}

// Renew renews the session: one PUT /v1/session/renew. A session the
// server no longer knows (404: invalidated, destroyed, or a dev agent
// restarted without its state) is CodeLost.
func (c *conn) Renew(ctx context.Context) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	entry, _, err := c.cli.Session().Renew(c.session, (&api.WriteOptions{}).WithContext(rctx))
	if err != nil {
		return classify(ctx, rctx, "renew session", err)
	}
	if entry == nil {
		return driver.Errorf(driver.CodeLost, "renew session: Consul no longer knows session %s (invalidated): its keys are gone", c.session)
	}
	c.cleanOrphans(ctx, "")
	return nil
}

// Close destroys the session, which deletes every member key and lock
// acquired with it at once (Behavior=delete), then closes idle
// connections. It waits for the session follower to exit. When the agent
// cannot be reached the session expires on its own.
func (c *conn) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stopWatch()
	c.wg.Wait()
	rctx, cancel := c.reqCtx(ctx)
	_, err := c.cli.Session().Destroy(c.session, (&api.WriteOptions{}).WithContext(rctx))
	err = classify(ctx, rctx, "destroy session", err)
	cancel()
	c.transport.CloseIdleConnections()
	return err
}

// isClosed reports whether Close was called.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// watchSession follows the session with a blocking query and reports it
// lost the moment Consul invalidates it (destroyed by an operator,
// expired, or gone with a restarted dev agent). It is an early warning:
// Renew finds the same on its next call.
func (c *conn) watchSession(ctx context.Context) {
	defer c.wg.Done()
	var index uint64
	b := newBackoff()
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, blockWait+blockWait/16+c.timeout)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: blockWait}).WithContext(rctx)
		entry, meta, err := c.cli.Session().Info(c.session, q)
		cancel()
		if err != nil {
			if !b.wait(ctx, c.clock) {
				return
			}
			continue
		}
		b.reset()
		if entry == nil {
			if !c.isClosed() {
				c.obs.Lost(driver.Errorf(driver.CodeLost, "session %s was invalidated: its keys are gone", c.session))
			}
			return
		}
		index, _ = nextIndex(index, meta.LastIndex)
	}
}

// backoff paces retries after a failure: 50ms doubling up to 1s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// wait sleeps for the current delay and doubles it; false when ctx ended.
func (b *backoff) wait(ctx context.Context, clock driver.Clock) bool {
	t := clock.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// remember records a grant's Consul key.
func (c *conn) remember(lock string, token uint64, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[grantID{lock, token}] = key
}

// forget removes a grant and returns its key.
func (c *conn) forget(lock string, token uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.held[grantID{lock, token}]
	delete(c.held, grantID{lock, token})
	return k, ok
}

// granted returns a grant's key.
func (c *conn) granted(lock string, token uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.held[grantID{lock, token}]
	return k, ok
}

// holdsExclusive reports whether this connection holds lock exclusively.
func (c *conn) holdsExclusive(lock string) bool {
	x := c.keys.exclusive(lock)
	c.mu.Lock()
	defer c.mu.Unlock()
	for g, k := range c.held {
		if g.lock == lock && k == x {
			return true
		}
	}
	return false
}

// errSessionGone is the cause when Consul refuses an acquisition because
// the session no longer exists.
var errSessionGone = errors.New("the session is gone")

// lostIf turns a rolled-back acquisition whose failure says the session
// is invalid into CodeLost; it returns nil otherwise.
func (c *conn) lostIf(op string, resp *api.TxnResponse) error {
	if resp == nil {
		return nil
	}
	for _, e := range resp.Errors {
		if containsAny(e.What, "invalid session", "missing session") {
			return driver.Wrap(driver.CodeLost, fmt.Errorf("%s: %w (%s)", op, errSessionGone, e.What))
		}
	}
	return nil
}

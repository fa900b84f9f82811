package etcdbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/handover"
)

// conn is one etcd3:// connection acting as one member: one client, one
// lease, one goroutine watching the lease's session key. It is safe for
// concurrent use.
type conn struct {
	cli      *clientv3.Client
	log      *zap.Logger
	clock    driver.Clock // times the driver's own waits (handover window)
	obs      driver.SessionObserver
	memberID string
	keys     etcdproto.Keyspace
	timeout  time.Duration // per request
	lease    clientv3.LeaseID
	ttl      time.Duration      // granted lease TTL
	rtt      handover.Estimator // round trips of lock transactions

	entries etcdproto.Entries // lock entries: slots, grants, orphans to delete on the next Renew

	mu     sync.Mutex
	closed bool

	stopWatch context.CancelFunc
	wg        sync.WaitGroup
}

var (
	_ driver.Conn          = (*conn)(nil)
	_ driver.LockWaiter    = (*conn)(nil)
	_ driver.LockBreaker   = (*conn)(nil)
	_ driver.GroupWatcher  = (*conn)(nil)
	_ driver.HolderWatcher = (*conn)(nil)
)

// Session reports TTL liveness: the granted lease TTL, renewed every
// third of it (the timing model's default, stated because the
// conformance suite still asks TTL drivers for an interval).
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.ttl, RenewInterval: c.ttl / 3}
}

// reqCtx bounds one request by the timeout option and asks for a member
// that has a leader: a member cut off from its cluster (or one whose
// leader is gone) answers at once with "no leader" instead of waiting,
// and the request can go to another endpoint.
func (c *conn) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), c.timeout)
}

// attemptTimeout bounds one attempt of a request that is safe to repeat
// (reads, the lease keep-alive, compare-and-delete by token): a sixth of
// the lease TTL (half the renew interval), at least 100 ms and at most
// the timeout option. A member that stopped answering (frozen, or its
// connection blackholed) then costs one attempt, and the next attempt
// goes to another endpoint (the client balances requests round-robin).
func (c *conn) attemptTimeout() time.Duration {
	return min(max(c.ttl/6, 100*time.Millisecond), c.timeout)
}

// idempotent runs fn, a request safe to repeat, under the attempt
// timeout, and runs it again after a failure that may be a member's
// (no answer in time, unavailable, no leader) until it succeeds, fails
// otherwise, ctx ends or the timeout option has elapsed since the first
// attempt. fn gets each attempt's context.
func (c *conn) idempotent(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	start := c.clock.Now()
	pause := 10 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), c.attemptTimeout())
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		err = classify(ctx, actx, op, err)
		if ctx.Err() != nil || !retryable(err) || c.clock.Now().Sub(start)+pause >= c.timeout || c.isClosed() {
			return err
		}
		t := c.clock.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C():
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// retryable reports whether a classified error may be one member's
// failure, which another attempt (on another endpoint) can overcome.
func retryable(err error) bool {
	c, ok := driver.CodeOf(err)
	return ok && c == driver.CodeUnavailable
}

// txn commits one transaction under the request timeout. Transactions
// that write are not repeated here (a lost reply is ambiguous); their
// callers know how to recover.
func (c *conn) txn(ctx context.Context, op string, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	t0 := time.Now()
	resp, err := c.cli.Txn(rctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err == nil {
		c.rtt.Observe(time.Since(t0))
	}
	return resp, classify(ctx, rctx, op, err)
}

// lockTxn commits one transaction of the lock path under the attempt
// timeout: a member that stopped answering fails it quickly with
// CodeUnavailable, and the backend tries again (on another endpoint)
// instead of waiting for the request timeout. Callers handle a lost
// reply as they do for txn (the entry is orphaned, or skipped by the
// waiter behind it if it was queued).
func (c *conn) lockTxn(ctx context.Context, op string, cmps []clientv3.Cmp, then []clientv3.Op, els ...clientv3.Op) (*clientv3.TxnResponse, error) {
	actx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), c.attemptTimeout())
	defer cancel()
	t0 := time.Now()
	resp, err := c.cli.Txn(actx).If(cmps...).Then(then...).Else(els...).Commit()
	if err == nil {
		c.rtt.Observe(time.Since(t0))
	}
	return resp, classify(ctx, actx, op, err)
}

// get reads, attempt by attempt (see idempotent).
func (c *conn) get(ctx context.Context, op, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	var resp *clientv3.GetResponse
	err := c.idempotent(ctx, op, func(actx context.Context) (err error) {
		resp, err = c.cli.Get(actx, key, opts...)
		return err
	})
	return resp, err
}

// Renew sends one keep-alive for the session lease (not a keep-alive
// stream: the backend measures liveness from when each renewal was sent),
// attempt by attempt on the endpoints until one answers (see idempotent),
// within the backend's deadline for this renewal. A lease the server no
// longer knows is CodeLost. After a successful renewal it retries
// deleting lock entries whose cleanup failed earlier.
func (c *conn) Renew(ctx context.Context) error {
	op := fmt.Sprintf("renew lease %x", int64(c.lease))
	err := c.idempotent(ctx, op, func(actx context.Context) error {
		_, err := c.cli.KeepAliveOnce(actx, c.lease)
		return err
	})
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return driver.Wrap(driver.CodeLost, err)
	}
	if err != nil {
		return err
	}
	c.cleanOrphans(ctx)
	return nil
}

// Close revokes the session lease, which deletes every member key, lock
// entry and the session key at once, then closes the client. It waits for
// the session watcher to exit. When the server cannot be reached the
// lease expires on its own after its TTL.
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
	_, err := c.cli.Revoke(rctx, c.lease)
	cancel()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = nil
	}
	err = classify(ctx, rctx, fmt.Sprintf("revoke lease %x", int64(c.lease)), err)
	if cerr := c.cli.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
		err = classify(ctx, nil, "close client", cerr)
	}
	return err
}

// isClosed reports whether Close was called.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// watchSession reports the session lost the moment the session key
// disappears: the lease was revoked or expired, and every member key and
// lock entry went with it. It is an early warning; Renew finds the same
// on its next call ("lease not found").
func (c *conn) watchSession(ctx context.Context, rev int64) {
	defer c.wg.Done()
	key := c.keys.Session(int64(c.lease))
	lost := func() {
		if !c.isClosed() {
			c.obs.Lost(driver.Errorf(driver.CodeLost, "session lease %x was revoked or expired: its keys are gone", int64(c.lease)))
		}
	}
	// The prefix also covers the session keys of leases whose ID extends
	// this one's in hexadecimal: only the exact key counts.
	_ = c.follow(ctx, key, rev, func(evs []*clientv3.Event) bool {
		for _, ev := range evs {
			if string(ev.Kv.Key) == key && ev.Type == clientv3.EventTypeDelete {
				lost()
				return true
			}
		}
		return false
	}, func(ctx context.Context) (int64, bool, error) {
		resp, err := c.get(ctx, "check session key", key, clientv3.WithCountOnly())
		if err != nil {
			return 0, false, err
		}
		if resp.Count == 0 {
			lost()
			return resp.Header.Revision, true, nil
		}
		return resp.Header.Revision, false, nil
	})
}

// backoff paces retries after a failure: 50ms doubling up to 1s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// wait sleeps for the current delay and doubles it; false when ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package etcdgwbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// conn is one etcd3+http(s):// connection acting as one member: one HTTP
// client, one lease, one goroutine watching the lease's session key. It
// is safe for concurrent use.
type conn struct {
	cli      *client
	log      *zap.Logger
	obs      driver.SessionObserver
	clock    driver.Clock
	memberID string
	keys     keyspace
	timeout  time.Duration // per request
	lease    int64
	ttl      time.Duration // granted lease TTL

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
// third of it, as etcd3:// does (the timing model's default divisor,
// stated: main's Backend.Session does not yet report the interval the
// timing model chose, and the suite checks it).
func (c *conn) Session() driver.SessionInfo {
	return driver.SessionInfo{Liveness: driver.LivenessTTL, TTL: c.ttl, RenewInterval: c.ttl / 3}
}

// reqCtx bounds one request by the timeout option.
func (c *conn) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// do runs one gateway call under the request timeout and classifies its
// error.
func (c *conn) do(ctx context.Context, op, path string, in, out any, idempotent bool) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	return classify(ctx, rctx, op, c.cli.call(rctx, path, in, out, idempotent))
}

// txn commits one transaction. A transaction that writes is not retried
// on another endpoint once it may have been sent.
func (c *conn) txn(ctx context.Context, op string, req *txnRequest) (*txnResponse, error) {
	var resp txnResponse
	if err := c.do(ctx, op, "kv/txn", req, &resp, false); err != nil {
		return nil, err
	}
	return &resp, nil
}

// rng reads a range (linearizable).
func (c *conn) rng(ctx context.Context, op string, req *rangeRequest) (*rangeResponse, error) {
	var resp rangeResponse
	if err := c.do(ctx, op, "kv/range", req, &resp, true); err != nil {
		return nil, err
	}
	return &resp, nil
}

// del deletes one key. Deleting is idempotent for the driver's keys (an
// entry key is never rewritten while an older write of it may exist).
func (c *conn) del(ctx context.Context, op, key string) (*deleteResponse, error) {
	var resp deleteResponse
	if err := c.do(ctx, op, "kv/deleterange", &deleteRequest{Key: []byte(key)}, &resp, true); err != nil {
		return nil, err
	}
	return &resp, nil
}

// keepAlive sends one lease keep-alive (the gateway's keep-alive stream
// with one message) and returns the TTL the server restarted, 0 when it
// does not know the lease.
func (c *conn) keepAlive(ctx context.Context, op string) (int64, error) {
	var msg streamMessage[leaseKeepAliveResponse]
	if err := c.do(ctx, op, "lease/keepalive", &leaseIDRequest{ID: c.lease}, &msg, true); err != nil {
		return 0, err
	}
	if msg.Error != nil {
		return 0, classify(ctx, nil, op, &Error{Code: msg.Error.GRPCCode, Message: msg.Error.Message})
	}
	if msg.Result == nil {
		return 0, driver.Errorf(driver.CodeUnavailable, "%s: empty keep-alive answer", op)
	}
	return msg.Result.TTL, nil
}

// Renew sends one keep-alive for the session lease (one request, so the
// Backend knows when each renewal was sent). A lease the server no
// longer knows is CodeLost. After a successful renewal it retries
// deleting lock entries whose cleanup failed earlier.
func (c *conn) Renew(ctx context.Context) error {
	op := fmt.Sprintf("renew lease %x", c.lease)
	ttl, err := c.keepAlive(ctx, op)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		return driver.Errorf(driver.CodeLost, "%s: %s", op, msgLeaseNotFound)
	}
	c.cleanOrphans(ctx)
	return nil
}

// Close revokes the session lease, which deletes every member key, lock
// entry and the session key at once, then drops the HTTP connections. It
// waits for the session watcher to exit. When the server cannot be
// reached the lease expires on its own after its TTL.
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
	err := c.do(ctx, fmt.Sprintf("revoke lease %x", c.lease), "kv/lease/revoke", &leaseIDRequest{ID: c.lease}, nil, true)
	var ge *Error
	if errors.As(err, &ge) && ge.Message == msgLeaseNotFound {
		err = nil
	}
	c.cli.close()
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
// on its next call.
func (c *conn) watchSession(ctx context.Context, rev int64) {
	defer c.wg.Done()
	key := c.keys.Session(c.lease)
	lost := func() {
		if !c.isClosed() {
			c.obs.Lost(driver.Errorf(driver.CodeLost, "session lease %x was revoked or expired: its keys are gone", c.lease))
		}
	}
	_ = c.follow(ctx, key, false, rev, func(evs []*event) bool {
		for _, ev := range evs {
			if string(ev.Kv.Key) == key && ev.isDelete() {
				lost()
				return true
			}
		}
		return false
	}, func(ctx context.Context) (int64, bool, error) {
		resp, err := c.rng(ctx, "check session key", &rangeRequest{Key: []byte(key), CountOnly: true})
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

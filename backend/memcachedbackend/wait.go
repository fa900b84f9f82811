package memcachedbackend

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// A blocked Lock or Campaign cannot be told by memcached that the key was
// freed, so WaitLock tries again: first after pollStart, each wait half
// as long again as the one before, up to pollCap (the interval of the
// usual add-and-retry recipe) or the caller's cap
// (lock.WithMaxPollInterval), with a quarter of jitter so that waiters
// do not fall into step. A try on a held lock is one read on one server,
// so a waiter costs that server about a hundred reads a second.
const (
	pollStart = time.Millisecond
	pollCap   = 10 * time.Millisecond
)

// WaitLock takes lock req.Key, trying until it is granted or ctx ends.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	return pollLock(ctx, c.clock, req, c.TryLock)
}

// WaitLock takes tooz's lock req.Key, trying until it is granted or ctx
// ends, as tooz's blocking acquire does.
func (t *toozConn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	return pollLock(ctx, t.c.clock, req, t.TryLock)
}

// pollLock calls try until it grants req or fails (its error is returned:
// the backend retries transient ones), or ctx ends. The lease's Sent is
// when the granting try was sent.
func pollLock(ctx context.Context, clock driver.Clock, req driver.LockRequest, try func(context.Context, driver.LockRequest) (driver.Lease, bool, error)) (driver.Lease, error) {
	limit := pollCap
	if req.MaxPoll > 0 {
		limit = req.MaxPoll
	}
	wait := min(pollStart, limit)
	for {
		sent := clock.Now()
		lease, ok, err := try(ctx, req)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			if lease.Sent.IsZero() {
				lease.Sent = sent
			}
			return lease, nil
		}
		t := clock.NewTimer(time.Duration(float64(wait) * (0.75 + rand.Float64()/2)))
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Lease{}, classify(ctx.Err())
		case <-t.C():
		}
		wait = min(wait*3/2, limit)
	}
}

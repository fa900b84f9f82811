//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend/driver"
)

// minRetry is the first pause of a blocked wait, and the pause after a
// wake-up that did not win (a release is written before the flock is
// dropped, and a dying process's close is reported before its flocks go).
const minRetry = time.Millisecond

// WaitLock takes key exclusively, waiting until it is free, ctx is done
// (it then returns ctx's classified error and holds nothing) or the
// session ends. It keeps one open file description of the lock file and
// retries a non-blocking flock on it: at once when inotify reports the
// file written or closed (Linux), else after a jittered pause that doubles
// from 1ms up to lock_retry. A blocking flock(2) is never used, since it
// could not be cancelled.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if err := c.check(ctx); err != nil {
		return driver.Lease{}, err
	}
	name := encodeName(req.Key)
	fd, err := c.openLock(name, unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return driver.Lease{}, err
	}
	var sub *subscription
	defer func() {
		if sub != nil {
			sub.cancel()
		}
	}()
	pause := min(minRetry, c.s.lockRetry)
	for {
		sent := c.clock.Now()
		ok, err := tryFlock(fd, unix.LOCK_EX)
		if err != nil {
			closeFD(fd)
			return driver.Lease{}, ioErr("flock", err)
		}
		if ok {
			lease, err := c.grantExclusive(fd, nil, req.Key, name, req.Member)
			lease.Sent = sent
			return lease, err
		}
		if sub == nil {
			sub, _ = c.subscribe(c.l.lockFile(name), watchLockFile) // nil: poll only
		}
		woke, err := c.pause(ctx, sub, pause)
		if err != nil {
			closeFD(fd)
			return driver.Lease{}, err
		}
		if woke {
			pause = min(minRetry, c.s.lockRetry)
		} else {
			pause = min(pause*2, c.s.lockRetry)
		}
	}
}

// pause waits until sub fires (woke is true), about d passes, ctx is
// done or the session ends (both errors). sub may be nil.
func (c *conn) pause(ctx context.Context, sub *subscription, d time.Duration) (woke bool, err error) {
	var fired <-chan struct{}
	if sub != nil {
		fired = sub.C
	}
	t := time.NewTimer(jitter(d))
	defer t.Stop()
	select {
	case <-fired:
		woke = true
	case <-t.C:
	case <-ctx.Done():
	case <-c.gone:
	}
	return woke, c.check(ctx)
}

// subscribe watches path through the connection's notifier. When that
// fails (no inotify on this system, a limit reached, path gone) it returns
// nil and the error, and the caller polls; a failure other than a missing
// path is logged once per connection.
func (c *conn) subscribe(path string, t watchTarget) (*subscription, error) {
	sub, err := c.nt.subscribe(path, t)
	if err != nil && !errors.Is(err, errNoNotify) && !errors.Is(err, unix.ENOENT) && c.notifyWarned.CompareAndSwap(false, true) {
		c.log.Warn("file notifications unavailable; waits and watches poll", zap.Error(err))
	}
	return sub, err
}

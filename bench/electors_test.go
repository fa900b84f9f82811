package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-zookeeper/zk"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/election"
)

// elector is one candidate of the takeover benchmark, with a connection
// of its own.
type elector interface {
	// lead campaigns until it leads, calls started with the instant its
	// work began, holds leadership until ctx ends, then gives it up
	// gracefully and returns. A campaign cut short by ctx returns nil.
	// Peers whose campaign cannot be cancelled return once they led.
	lead(ctx context.Context, started func(time.Time)) error
}

// resignTimeout bounds a graceful resignation.
const resignTimeout = 30 * time.Second

// batonElector is baton's elected runner, Election.Run.
type batonElector struct{ e *election.Election }

// newBatonElector opens a Backend on url as member and campaigns in
// group name.
func newBatonElector(tb testing.TB, url, member, name string) elector {
	b := openBackend(tb, url, member)
	e, err := election.New(b, name)
	if err != nil {
		tb.Fatal(err)
	}
	return batonElector{e: e}
}

func (e batonElector) lead(ctx context.Context, started func(time.Time)) error {
	err := e.e.Run(ctx, func(ctx context.Context) error {
		started(time.Now())
		<-ctx.Done()
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// funcElector is a peer's recipe: acquire blocks until it leads; the
// release it returns gives leadership up.
type funcElector func(ctx context.Context) (release func() error, err error)

func (f funcElector) lead(ctx context.Context, started func(time.Time)) error {
	release, err := f(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	started(time.Now())
	<-ctx.Done()
	return release()
}

// newMutexElector is the in-process floor: candidates share one
// sync.Mutex per site.
func newMutexElector(_ testing.TB, s *site, _ bool, _ string) elector {
	mu := &s.floor
	return funcElector(func(context.Context) (func() error, error) {
		mu.Lock()
		return func() error { mu.Unlock(); return nil }, nil
	})
}

// newFlockElector is the one-host floor: a blocking flock(2) on a file of
// the site's directory, each candidate with its own open file.
func newFlockElector(tb testing.TB, s *site, _ bool, name string) elector {
	path := filepath.Join(s.dir, "flock-"+name)
	return funcElector(func(context.Context) (func() error, error) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("flock: %w", err)
		}
		return f.Close, nil // closing the file releases the lock
	})
}

// newRedislockElector is bsm/redislock: Obtain retried every 10ms (it
// has no way to wait for a release), the lease refreshed every third of
// its TTL while leading, Release to resign.
func newRedislockElector(tb testing.TB, s *site, crash bool, name string) elector {
	locker := redislock.New(redisClient(tb, s))
	ttl := 30 * time.Second
	if crash {
		ttl = crashTTL
	}
	key := name + ":redislock"
	return funcElector(func(ctx context.Context) (func() error, error) {
		var l *redislock.Lock
		for l == nil {
			var err error
			l, err = locker.Obtain(ctx, key, ttl, &redislock.Options{RetryStrategy: redislock.LinearBackoff(10 * time.Millisecond)})
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case errors.Is(err, redislock.ErrNotObtained), errors.Is(err, context.DeadlineExceeded):
				// Obtain gives up after one TTL: campaign on.
			case err != nil:
				return nil, err
			}
		}
		rctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(ttl / 3)
			defer tick.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
					_ = l.Refresh(rctx, ttl, nil)
				}
			}
		})
		return func() error {
			stop()
			wg.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
			defer cancel()
			return l.Release(ctx)
		}, nil
	})
}

// newZKElector is go-zookeeper's zk.Lock on a session of its own
// (timeout: baton's default 10s, or the crash TTL). Its Lock cannot be
// cancelled: it returns once the predecessor is gone.
func newZKElector(tb testing.TB, s *site, crash bool, name string) elector {
	timeout := 10 * time.Second
	if crash {
		timeout = crashTTL
	}
	c := zkConn(tb, s, timeout)
	path := "/" + name + "/zklock"
	return funcElector(func(context.Context) (func() error, error) {
		l := zk.NewLock(c, path, zk.WorldACL(zk.PermAll))
		if err := l.Lock(); err != nil {
			return nil, fmt.Errorf("zk lock: %w", err)
		}
		return l.Unlock, nil
	})
}

// newEtcdElector is etcd's concurrency.Election on a session of its own
// (lease TTL: 60s, the package default, or the crash TTL).
func newEtcdElector(tb testing.TB, s *site, crash bool, name string) elector {
	ttl := 60
	if crash {
		ttl = int(crashTTL / time.Second)
	}
	sess := etcdSession(tb, etcdClient(tb, s), ttl)
	prefix := "/" + name + "/election"
	return funcElector(func(ctx context.Context) (func() error, error) {
		e := concurrency.NewElection(sess, prefix)
		if err := e.Campaign(ctx, "candidate"); err != nil {
			return nil, fmt.Errorf("etcd campaign: %w", err)
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
			defer cancel()
			return e.Resign(ctx)
		}, nil
	})
}

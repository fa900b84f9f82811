package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-zookeeper/zk"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/lock"
)

// lockOp is one uncontended acquire and release of a lock, by baton or
// by a Go peer.
type lockOp func(ctx context.Context) error

// opLoop runs op back to back for about d and reports how many times it
// ran and how long that took.
func opLoop(ctx context.Context, op lockOp, d time.Duration) (int, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(d)
	for n := 0; ; {
		if err := op(ctx); err != nil {
			return n, time.Since(start), err
		}
		n++
		if now := time.Now(); !now.Before(deadline) {
			return n, now.Sub(start), nil
		}
	}
}

// newBatonLocker is baton through the lock package: lock.New once, then
// TryAcquire and Release.
func newBatonLocker(tb testing.TB, s *site) lockOp {
	b := openBackend(tb, s.batonURL(false), "bench-lock")
	l, err := lock.New(b, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	return func(ctx context.Context) error {
		ok, err := l.TryAcquire(ctx)
		switch {
		case err != nil:
			return err
		case !ok:
			return errors.New("baton: uncontended TryAcquire failed")
		}
		return l.Release(ctx)
	}
}

// newMutexLocker is the in-process floor: a sync.Mutex.
func newMutexLocker(testing.TB, *site) lockOp {
	var mu sync.Mutex
	return func(context.Context) error {
		if !mu.TryLock() {
			return errors.New("sync.Mutex: uncontended TryLock failed")
		}
		mu.Unlock()
		return nil
	}
}

// newFlockLocker is the one-host raw recipe with a fencing token:
// flock(2) on a file kept open, and one pwrite(2) of the next value of a
// counter kept in memory (the token a holder would present).
func newFlockLocker(tb testing.TB, s *site) lockOp {
	f, err := os.OpenFile(filepath.Join(s.dir, "flock-lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close() })
	fd := int(f.Fd())
	var token uint64
	var buf [8]byte
	return func(context.Context) error {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return fmt.Errorf("flock: %w", err)
		}
		token++
		binary.LittleEndian.PutUint64(buf[:], token)
		if _, err := unix.Pwrite(fd, buf[:], 0); err != nil {
			_ = unix.Flock(fd, unix.LOCK_UN)
			return fmt.Errorf("pwrite: %w", err)
		}
		return unix.Flock(fd, unix.LOCK_UN)
	}
}

// redisClient returns a go-redis client of the site's server, closed when
// tb ends.
func redisClient(tb testing.TB, s *site) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.hosts[0]})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newRedislockLocker is bsm/redislock: Obtain (no retry) and Release,
// with the lease baton uses by default (lock_timeout = timeout = 30s).
func newRedislockLocker(tb testing.TB, s *site) lockOp {
	locker := redislock.New(redisClient(tb, s))
	key := "bench-" + testutil.Unique() + ":redislock"
	return func(ctx context.Context) error {
		l, err := locker.Obtain(ctx, key, 30*time.Second, nil)
		if err != nil {
			return fmt.Errorf("redislock obtain: %w", err)
		}
		return l.Release(ctx)
	}
}

// zkConn connects to the first of the site's ZooKeeper servers (baton
// and tooz are pinned to it too) with the given session timeout; the
// connection is closed when tb ends.
func zkConn(tb testing.TB, s *site, timeout time.Duration) *zk.Conn {
	c, events, err := zk.Connect(s.hosts[:1], timeout, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	deadline := time.After(30 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-deadline:
			tb.Fatalf("zookeeper: no session within 30s (state %v)", c.State())
		}
	}
	return c
}

// zkQuiet discards go-zookeeper's log.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// newZKLocker is go-zookeeper's zk.Lock (protected ephemeral-sequential
// create, children, delete), on a session of baton's default timeout.
func newZKLocker(tb testing.TB, s *site) lockOp {
	c := zkConn(tb, s, 10*time.Second)
	l := zk.NewLock(c, "/bench-"+testutil.Unique()+"/lock", zk.WorldACL(zk.PermAll))
	return func(context.Context) error {
		if err := l.Lock(); err != nil {
			return fmt.Errorf("zk lock: %w", err)
		}
		return l.Unlock()
	}
}

// etcdClient connects to the site's etcd endpoints; closed when tb ends.
func etcdClient(tb testing.TB, s *site) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.hosts, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// etcdSession starts a concurrency.Session of ttl seconds, closed (its
// lease revoked) when tb ends.
func etcdSession(tb testing.TB, cli *clientv3.Client, ttl int) *concurrency.Session {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sess.Close() })
	return sess
}

// newEtcdLocker is etcd's concurrency.Mutex: TryLock and Unlock on one
// session (a lease of baton's default 30s).
func newEtcdLocker(tb testing.TB, s *site) lockOp {
	m := concurrency.NewMutex(etcdSession(tb, etcdClient(tb, s), 30), "/bench-"+testutil.Unique()+"/mutex")
	return func(ctx context.Context) error {
		if err := m.TryLock(ctx); err != nil {
			return fmt.Errorf("etcd mutex: %w", err)
		}
		return m.Unlock(ctx)
	}
}

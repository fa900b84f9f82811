package pgbackend

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// watchers returns how many session watchers c runs, and whether sid is
// left to the janitor.
func watchers(c *conn, sid int32) (int, bool) {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	return c.watch.running, c.watch.failed[sid]
}

// watcherPID returns the server process of the connection waiting for
// the end of session sid in c's schema, or 0 while none waits.
func watcherPID(t *testing.T, c *conn, sid int32) int32 {
	t.Helper()
	key, _ := strconv.ParseUint(c.q.key, 10, 32)
	var pid int32
	err := c.pool.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2
		AND mode = 'ShareLock' AND NOT granted`, int64(key), int64(sid)).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// A waiter's session watcher waits on the server for the holder's
// session while the waiter needs it, and stops (closing its connection)
// once the waiter got the lock, or gave up.
func TestSessionWatcherStops(t *testing.T) {
	url := isolate(t, serverURL(t))
	b1 := openBackend(t, url, "m1")
	b2 := openBackend(t, url, "m2")
	c1, c2 := connOf(t, b1), connOf(t, b2)
	for _, giveUp := range []bool{false, true} {
		g1, ok, err := b1.TryLock(context.Background(), "l", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("lock: %v %v", ok, err)
		}
		ctx, cancel := context.WithCancel(testutil.Context(t, time.Minute))
		got := make(chan error, 1)
		go func() {
			g, err := b2.Lock(ctx, "l", backend.LockOptions{})
			if err == nil {
				err = g.Release(context.Background())
			}
			got <- err
		}()
		eventually(t, wait, "the waiter's watcher waits for the holder's session", func() bool {
			return watcherPID(t, c2, c1.sid) != 0
		})
		if n, _ := watchers(c2, c1.sid); n != 1 {
			t.Fatalf("%d watchers, want 1", n)
		}
		if giveUp {
			cancel()
		} else if err := g1.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if giveUp != (err != nil) {
				t.Fatalf("gave up %v: lock: %v", giveUp, err)
			}
		case <-time.After(wait):
			t.Fatal("the waiter did not end")
		}
		eventually(t, wait, "the watcher stops", func() bool {
			n, _ := watchers(c2, c1.sid)
			return n == 0 && watcherPID(t, c2, c1.sid) == 0
		})
		if giveUp {
			if err := g1.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
	}
}

// A watcher whose connection the server ends leaves the holder's session
// to the janitor: the waiter still gets the lock once the holder's
// session ends, at the janitor's pace.
func TestSessionWatcherFails(t *testing.T) {
	url := isolate(t, serverURL(t), "timeout", "3")
	b1 := openBackend(t, url, "m1")
	b2 := openBackend(t, url, "m2")
	c1, c2 := connOf(t, b1), connOf(t, b2)
	g1, ok, err := b1.TryLock(context.Background(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	got := make(chan *backend.Grant, 1)
	go func() {
		g, err := b2.Lock(testutil.Context(t, time.Minute), "l", backend.LockOptions{})
		if err != nil {
			t.Errorf("lock: %v", err)
		}
		got <- g
	}()
	var pid int32
	eventually(t, wait, "the waiter's watcher waits for the holder's session", func() bool {
		pid = watcherPID(t, c2, c1.sid)
		return pid != 0
	})
	admin := rawConn(t, serverURL(t))
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the watcher gives the holder's session up", func() bool {
		n, failed := watchers(c2, c1.sid)
		return n == 0 && failed
	})
	terminate(t, b1)
	wantLost(t, g1, wait)
	ended := time.Now()
	var g *backend.Grant
	select {
	case g = <-got:
	case <-time.After(wait):
		t.Fatal("the waiter did not get the lock after the holder's session ended")
	}
	if g == nil {
		t.FailNow()
	}
	t.Logf("lock taken over %v after the holder's session ended, without a watcher (timeout 3s)", time.Since(ended).Round(time.Millisecond))
	if err := g.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

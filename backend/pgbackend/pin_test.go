package pgbackend

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-go/baton/backend"
)

// pinnedPID returns the server process of the connection kept for lock
// statements (0 when none is kept).
func pinnedPID(c *conn) uint32 {
	c.pin.mu.Lock()
	defer c.pin.mu.Unlock()
	if c.pin.conn == nil {
		return 0
	}
	return c.pin.conn.Conn().PgConn().PID()
}

// TestPinnedConnReplaced: the connection kept for lock statements is
// terminated on the server. At most one lock operation fails (with a
// retryable error, not a loss of the session), the next ones run on
// another connection, the session lives on and tokens keep increasing.
func TestPinnedConnReplaced(t *testing.T) {
	b := openBackend(t, isolate(t, serverURL(t)), "pin")
	c := connOf(t, b)
	ctx := context.Background()
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	last := g.Token()
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	pid := pinnedPID(c)
	if pid == 0 {
		t.Fatal("no connection kept for lock statements after a lock and a release")
	}
	admin := rawConn(t, serverURL(t))
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the terminated backend to exit", func() bool {
		var n int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n)
		return err == nil && n == 0
	})
	failures := 0
	for range 3 {
		g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
		if err != nil {
			if errors.Is(err, backend.ErrSessionLost) || !errors.Is(err, backend.ErrUnavailable) {
				t.Fatalf("lock on a terminated pinned connection: %v (want a retryable error)", err)
			}
			failures++
			continue
		}
		if !ok {
			t.Fatal("uncontended lock not granted")
		}
		if g.Token() <= last {
			t.Fatalf("token %d after %d", g.Token(), last)
		}
		last = g.Token()
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if failures > 1 {
		t.Fatalf("%d lock operations failed after the pinned connection was terminated, want at most 1", failures)
	}
	if p := pinnedPID(c); p == pid || p == 0 {
		t.Fatalf("pinned connection's server process %d after terminating %d", p, pid)
	}
	if c.check() != nil {
		t.Fatalf("session ended: %v", c.check())
	}
}

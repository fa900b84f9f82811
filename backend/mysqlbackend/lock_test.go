package mysqlbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// A Lock whose ctx ends while it is blocked in GET_LOCK on the server
// stops that statement there before it returns (closing the client's
// socket does not; the server notices only about a second later): no
// connection is left waiting for the lock, which would otherwise take it
// for nobody the moment its holder releases it. Both layouts: baton's and
// compat=tooz's (where such a phantom would show as a tooz holder).
func TestCancelledWaitStopsOnServer(t *testing.T) {
	for _, mode := range []string{"baton", "tooz"} {
		t.Run(mode, func(t *testing.T) {
			url := isolate(t, mysqlURL(t), "compat", mode)
			b1, b2 := openBackend(t, url, "m1"), openBackend(t, url, "m2")
			ctx := testCtx(t, time.Minute)
			g1, ok, err := b1.TryLock(ctx, "l", backend.LockOptions{})
			if err != nil || !ok {
				t.Fatalf("TryLock: %v, %v", ok, err)
			}
			db := rawDB(t, mysqlURL(t))
			blocked := func() int {
				var n int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock' AND USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := blocked(); n != 0 {
				t.Fatalf("%d connections blocked in GET_LOCK before the test", n)
			}
			wctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				g, err := b2.Lock(wctx, "l", backend.LockOptions{})
				if err == nil {
					_ = g.Release(ctx)
				}
				done <- err
			}()
			eventually(t, 20*time.Second, "the waiter blocks in GET_LOCK", func() bool { return blocked() == 1 })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled Lock: %v, want context.Canceled", err)
			}
			// At once: Lock returns only after the server stopped waiting.
			if n := blocked(); n != 0 {
				t.Fatalf("%d connections still blocked in GET_LOCK after the cancelled Lock returned", n)
			}
			if err := g1.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if h, held, err := b1.LockHolder(ctx, "l"); err != nil || held {
				t.Fatalf("after the release: holder %+v held %v err %v, want free", h, held, err)
			}
		})
	}
}

package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// RefreshLocks extends every lease it names in one pipeline (more leases
// than one script takes included), reports a broken grant as not held
// without failing the others, and works after the server forgot its
// scripts.
func TestRefreshLocks(t *testing.T) {
	u := freshURL(t, plainURL(t))
	c := openConn(t, u, "m1")
	admin := openConn(t, u, "admin")
	cfg, err := backend.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb, ks := rawClient(t, cfg)
	defer rdb.Close()
	ctx := testCtx(t)
	const n = refreshBatch*2 + 7
	refs := make([]driver.LockRef, n)
	for i := range refs {
		key := fmt.Sprintf("l%d", i)
		l, ok, err := c.TryLock(ctx, driver.LockRequest{Key: key, Member: "m1", TTL: 5 * time.Second})
		if err != nil || !ok {
			t.Fatalf("try lock %s: %v %v", key, ok, err)
		}
		refs[i] = driver.LockRef{Key: key, Token: l.Token, TTL: time.Minute}
	}
	shared, ok, err := c.TryLockShared(ctx, driver.LockRequest{Key: "s", Member: "m1", TTL: 5 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock shared: %v %v", ok, err)
	}
	refs = append(refs, driver.LockRef{Key: "s", Token: shared.Token, TTL: time.Minute})
	broken := refreshBatch + 3
	if ok, err := admin.BreakLock(ctx, refs[broken].Key); err != nil || !ok {
		t.Fatalf("break: %v %v", ok, err)
	}
	for round, flush := range []bool{false, true} {
		if flush {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, len(refs))
		if err := c.RefreshLocks(ctx, refs, errs); err != nil {
			t.Fatalf("round %d: refresh locks: %v", round, err)
		}
		for i, err := range errs {
			switch {
			case i == broken && codeOf(err) != driver.CodeNotHeld:
				t.Fatalf("round %d: the broken grant refreshed with %v; want not held", round, err)
			case i != broken && err != nil:
				t.Fatalf("round %d: grant %d: %v", round, i, err)
			}
		}
		for _, i := range []int{0, refreshBatch, n - 1} {
			if d := rdb.PTTL(ctx, ks.lock(refs[i].Key)).Val(); d < 30*time.Second {
				t.Fatalf("round %d: lock %d has %v left; want the minute it was refreshed to", round, i, d)
			}
		}
		if d := rdb.PTTL(ctx, ks.readers("s")).Val(); d < 30*time.Second {
			t.Fatalf("round %d: shared grant has %v left; want about a minute", round, d)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.RefreshLocks(cctx, refs[:1], make([]error, 1)); codeOf(err) != driver.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("refresh with a cancelled context: %v; want canceled", err)
	}
}

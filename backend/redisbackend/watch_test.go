package redisbackend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// nextEvent returns the first event of w matching want, failing the test
// when the watch ends or ctx runs out first.
func nextEvent(t testing.TB, ctx context.Context, w *backend.GroupWatch, want func(backend.Event) bool) backend.Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			if want(ev) {
				return ev
			}
		case <-ctx.Done():
			t.Fatal("event never came")
		}
	}
}

func is(typ backend.EventType, member string) func(backend.Event) bool {
	return func(ev backend.Event) bool { return ev.Type == typ && ev.Member.ID == member }
}

func TestWatchPushedInOrder(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base)
			a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
			ctx := testCtx(t)
			if err := a.CreateGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			w, err := a.WatchGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			waitSubscribed(t, a, func(ks keyspace) string { return ks.groupChannel("g") })
			if err := b.Join(ctx, "g", []byte("1")); err != nil {
				t.Fatal(err)
			}
			for i := 2; i <= 5; i++ {
				if err := b.UpdateCapabilities(ctx, "g", []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Leave(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := b.Join(ctx, "g", nil); err != nil {
				t.Fatal(err)
			}
			if err := b.Leave(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := a.DeleteGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			var got []string
			nextEvent(t, ctx, w, func(ev backend.Event) bool {
				got = append(got, fmt.Sprintf("%s %s %s", ev.Type, ev.Member.ID, ev.Member.Capabilities))
				return ev.Type == backend.EventGroupDeleted
			})
			want := []string{
				"joined b 1", "capabilities-changed b 2", "capabilities-changed b 3", "capabilities-changed b 4",
				"capabilities-changed b 5", "left b 5", "joined b ", "left b ", "group-deleted  ",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("events:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestWatchResyncsAfterPubSubLoss(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	w, err := a.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitSubscribed(t, a, func(ks keyspace) string { return ks.groupChannel("g") })
	rdb, _ := rawClient(t, a.Config())
	defer rdb.Close()
	// Cut every pub/sub connection and change the group before the
	// watcher can subscribe again: the change reaches it by a resync.
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ctx, w, is(backend.EventJoined, "b"))
	if ev := nextEvent(t, ctx, w, func(ev backend.Event) bool { return ev.Type == backend.EventResync }); len(ev.Members) != 1 {
		t.Fatalf("resync members %+v", ev.Members)
	}
	// Pushed events flow again after the resync.
	if err := b.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ctx, w, is(backend.EventLeft, "b"))
}

func TestWatchSeesExpiryPromptly(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a := openBackend(t, u, "a")
	ctx := testCtx(t)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	rdb, ks := rawClient(t, a.Config())
	defer rdb.Close()
	// A member of another process, with its own liveness key.
	now := time.Now()
	sid := newID()
	if err := rdb.Set(ctx, ks.session(sid), "ghost", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, ks.group("g"), "m:ghost", encodeRecord(sid, newID(), now, now, nil)).Err(); err != nil {
		t.Fatal(err)
	}
	w, err := a.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(w.Initial()) != 1 {
		t.Fatalf("initial members %+v", w.Initial())
	}
	// The process stops renewing and its key expires; nothing is
	// published by Redis itself. The key's TTL is shortened behind the
	// watcher's back, so a join makes the watcher look at the group again.
	if err := rdb.PExpire(ctx, ks.session(sid), 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := openBackend(t, u, "b")
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ctx, w, is(backend.EventJoined, "b"))
	nextEvent(t, ctx, w, is(backend.EventLeft, "ghost"))
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("expiry seen after %v; the key expired after 500ms", d)
	}
}

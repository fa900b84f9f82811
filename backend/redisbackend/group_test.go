package redisbackend

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// oddNames are group, member and lock names that a careless encoding
// would mangle or let collide.
var oddNames = []string{"a", "a:b", "m:a", "v", "G", "g:x", "s:1", "../x", "with space", "ünï/cödé", "a\nb", "*?[", ":"}

func TestGroupLifecycle(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base)
			a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
			ctx := testCtx(t)
			if err := a.CreateGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := b.CreateGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupExists) {
				t.Fatalf("create twice: %v", err)
			}
			if err := a.Join(ctx, "g", []byte("caps-a")); err != nil {
				t.Fatal(err)
			}
			if err := a.Join(ctx, "g", nil); !errors.Is(err, backend.ErrMemberExists) {
				t.Fatalf("join twice: %v", err)
			}
			if err := b.Join(ctx, "nope", nil); !errors.Is(err, backend.ErrGroupNotFound) {
				t.Fatalf("join missing group: %v", err)
			}
			before := time.Now()
			if err := b.Join(ctx, "g", nil); err != nil {
				t.Fatal(err)
			}
			ms, err := a.Members(ctx, "g")
			if err != nil || len(ms) != 2 || ms[0].ID != "a" || ms[1].ID != "b" {
				t.Fatalf("members = %+v, %v", ms, err)
			}
			if !bytes.Equal(ms[0].Capabilities, []byte("caps-a")) || len(ms[1].Capabilities) != 0 {
				t.Fatalf("capabilities %q %q", ms[0].Capabilities, ms[1].Capabilities)
			}
			if ms[1].JoinedAt.Before(before.Add(-time.Second)) || ms[1].Incarnation == "" || ms[0].Incarnation == ms[1].Incarnation {
				t.Fatalf("member info %+v", ms[1])
			}
			if err := b.UpdateCapabilities(ctx, "g", []byte("new")); err != nil {
				t.Fatal(err)
			}
			m, err := a.Member(ctx, "g", "b")
			if err != nil || string(m.Capabilities) != "new" || m.Incarnation != ms[1].Incarnation || m.UpdatedAt.Before(m.JoinedAt) {
				t.Fatalf("after update: %+v %v", m, err)
			}
			if err := a.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
				t.Fatalf("delete non-empty: %v", err)
			}
			gs, err := a.Groups(ctx)
			if err != nil || len(gs) != 1 || gs[0] != "g" {
				t.Fatalf("groups = %v, %v", gs, err)
			}
			for _, be := range []*backend.Backend{a, b} {
				if err := be.Leave(ctx, "g"); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Leave(ctx, "g"); !errors.Is(err, backend.ErrNotMember) {
				t.Fatalf("leave twice: %v", err)
			}
			if err := a.UpdateCapabilities(ctx, "g", nil); !errors.Is(err, backend.ErrNotMember) {
				t.Fatalf("update after leave: %v", err)
			}
			if err := a.DeleteGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := a.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
			if _, err := a.Members(ctx, "g"); !errors.Is(err, backend.ErrGroupNotFound) {
				t.Fatalf("members of a deleted group: %v", err)
			}
		})
	}
}

func TestOddNamesDoNotCollide(t *testing.T) {
	u := freshURL(t, plainURL(t))
	ctx := testCtx(t)
	bs := map[string]*backend.Backend{}
	for _, n := range oddNames {
		bs[n] = openBackend(t, u, n)
	}
	for _, g := range oddNames {
		if err := bs["a"].CreateGroup(ctx, g); err != nil {
			t.Fatalf("create %q: %v", g, err)
		}
	}
	for _, m := range oddNames {
		if err := bs[m].Join(ctx, "g:x", []byte(m)); err != nil {
			t.Fatalf("join %q: %v", m, err)
		}
		g, ok, err := bs[m].TryLock(ctx, m, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("lock %q: %v %v", m, ok, err)
		}
		_ = g
	}
	gs, err := bs["a"].Groups(ctx)
	if err != nil || len(gs) != len(oddNames) {
		t.Fatalf("groups = %q, %v", gs, err)
	}
	ms, err := bs["a"].Members(ctx, "g:x")
	if err != nil || len(ms) != len(oddNames) {
		t.Fatalf("members = %+v, %v", ms, err)
	}
	for _, m := range ms {
		if string(m.Capabilities) != m.ID {
			t.Fatalf("member %q has capabilities %q", m.ID, m.Capabilities)
		}
		h, held, err := bs["a"].LockHolder(ctx, m.ID)
		if err != nil || !held || h.Member != m.ID {
			t.Fatalf("holder of %q: %+v %v %v", m.ID, h, held, err)
		}
	}
	for _, g := range oddNames {
		if g == "g:x" {
			continue
		}
		if ms, err := bs["a"].Members(ctx, g); err != nil || len(ms) != 0 {
			t.Fatalf("members of %q = %+v, %v", g, ms, err)
		}
	}
}

func TestExpiredSessionIsLostAndPruned(t *testing.T) {
	for name, base := range urls(t) {
		t.Run(name, func(t *testing.T) {
			u := freshURL(t, base, "membership_timeout=1.5")
			a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
			ctx := testCtx(t)
			if err := a.JoinCreate(ctx, "g", nil); err != nil {
				t.Fatal(err)
			}
			if err := b.Join(ctx, "g", nil); err != nil {
				t.Fatal(err)
			}
			w, err := a.WatchGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			g, err := b.Lock(ctx, "job", backend.LockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			expireSession(t, b)
			select {
			case <-b.Done():
				if !errors.Is(b.Err(), backend.ErrLost) {
					t.Fatalf("b.Err() = %v; want ErrLost", b.Err())
				}
			case <-ctx.Done():
				t.Fatal("the backend never noticed its session was gone")
			}
			if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
				t.Fatalf("grant cause %v; want ErrLost", context.Cause(g.Context()))
			}
			// The watcher learns of b's departure without anyone listing.
			nextEvent(t, ctx, w, is(backend.EventLeft, "b"))
			if _, ok, err := a.TryLock(ctx, "job", backend.LockOptions{}); err != nil || !ok {
				t.Fatalf("a cannot take b's lock: %v %v", ok, err)
			}
			if err := a.Leave(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := a.DeleteGroup(ctx, "g"); err != nil {
				t.Fatalf("delete after b expired: %v", err)
			}
		})
	}
}

func TestDeadMemberDoesNotBlockDelete(t *testing.T) {
	u := freshURL(t, plainURL(t))
	a := openBackend(t, u, "a")
	ctx := testCtx(t)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	rdb, ks := rawClient(t, a.Config())
	defer rdb.Close()
	// A member whose process died long ago: its liveness key is gone.
	now := time.Now()
	rec := encodeRecord(newID(), newID(), now, now, nil)
	if err := rdb.HSet(ctx, ks.group("g"), "m:ghost", rec).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func TestRejoinAfterSessionLossReplacesDeadRecord(t *testing.T) {
	u := freshURL(t, plainURL(t), "membership_timeout=1.5")
	ctx := testCtx(t)
	a := openBackend(t, u, "a")
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	old, _ := a.Member(ctx, "g", "a")
	expireSession(t, a)
	<-a.Done()
	a2 := openBackend(t, u, "a")
	if err := a2.Join(ctx, "g", []byte("2")); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	m, err := a2.Member(ctx, "g", "a")
	if err != nil || m.Incarnation == old.Incarnation || string(m.Capabilities) != "2" {
		t.Fatalf("member = %+v, %v", m, err)
	}
}

package membackend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

// watchGroup runs a raw WatchGroup in the background, sending its events
// to the returned channel and its result to done.
func watchGroup(ctx context.Context, c driver.Conn, group string) (<-chan driver.GroupEvent, <-chan error) {
	evs := make(chan driver.GroupEvent, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.(driver.GroupWatcher).WatchGroup(ctx, group, func(ev driver.GroupEvent) { evs <- ev })
	}()
	return evs, done
}

func TestWatchGroupOrder(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	w := openConn(t, store, "w", nil)
	a := openConn(t, store, "a", nil)
	b := openConn(t, store, "b", nil)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", []byte("a0")); err != nil {
		t.Fatal(err)
	}
	if _, done := watchGroup(ctx, w, "none"); code(t, receive(t, done, "a watch of a missing group")) != driver.CodeGroupNotFound {
		t.Error("watching a missing group did not fail with group not found")
	}
	evs, done := watchGroup(ctx, w, "g")
	snap := receive(t, evs, "the snapshot")
	if snap.Type != driver.GroupSnapshot || len(snap.Members) != 1 || snap.Members[0].ID != "a" {
		t.Fatalf("first event = %+v; want a snapshot of [a]", snap)
	}
	inc := snap.Members[0].Incarnation
	steps := []func() error{
		func() error { return b.Join(ctx, "g", []byte("b0")) },
		func() error { return a.UpdateCapabilities(ctx, "g", []byte("a1")) },
		func() error { return a.Leave(ctx, "g") },
		func() error { return a.Join(ctx, "g", nil) },
		func() error { return b.Close(ctx) },
		func() error { return a.Leave(ctx, "g") },
		func() error { return a.DeleteGroup(ctx, "g") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		typ  driver.GroupEventType
		id   string
		caps string
	}{
		{driver.MemberJoined, "b", "b0"},
		{driver.MemberUpdated, "a", "a1"},
		{driver.MemberLeft, "a", ""},
		{driver.MemberJoined, "a", ""},
		{driver.MemberLeft, "b", ""},
		{driver.MemberLeft, "a", ""},
		{driver.GroupDeleted, "", ""},
	}
	for i, tt := range want {
		ev := receive(t, evs, "an event")
		if ev.Type != tt.typ || ev.Member.ID != tt.id || string(ev.Member.Capabilities) != tt.caps {
			t.Errorf("event %d = %+v; want %v %q %q", i, ev, tt.typ, tt.id, tt.caps)
		}
		switch {
		case i == 1 && ev.Member.Incarnation != inc:
			t.Errorf("update changed the incarnation")
		case i == 2 && ev.Member.Incarnation != inc:
			t.Errorf("left event has incarnation %q; want %q", ev.Member.Incarnation, inc)
		case i == 3 && ev.Member.Incarnation == inc:
			t.Errorf("rejoin kept the incarnation")
		}
	}
	if err := receive(t, done, "the watch to end"); code(t, err) != driver.CodeGroupNotFound {
		t.Errorf("watch ended with %v; want group not found", err)
	}
}

func TestWatchGroupEnds(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	w := openConn(t, store, "w", nil)
	if err := w.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	evs, done := watchGroup(wctx, w, "g")
	receive(t, evs, "the snapshot")
	cancel()
	if err := receive(t, done, "the canceled watch"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled watch ended with %v", err)
	}
	evs, done = watchGroup(ctx, w, "g")
	receive(t, evs, "the snapshot")
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, done, "the watch of a closed connection"); !errors.Is(err, membackend.ErrConnClosed) {
		t.Errorf("watch ended with %v; want ErrConnClosed", err)
	}
}

func TestWatchHolder(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	w := openConn(t, store, "w", nil)
	a := openConn(t, store, "a", nil)
	b := openConn(t, store, "b", nil)
	type state struct {
		h    driver.Holder
		held bool
	}
	states := make(chan state, 100)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- w.(driver.HolderWatcher).WatchHolder(wctx, "k", func(h driver.Holder, held bool) { states <- state{h, held} })
	}()
	if s := receive(t, states, "the first state"); s.held {
		t.Errorf("first state = %+v; want free", s)
	}
	la := mustLock(t, a, "k", "a")
	waiting := make(chan result[driver.Lease], 1)
	go func() {
		l, err := b.(driver.LockWaiter).WaitLock(ctx, req("k", "b"))
		waiting <- result[driver.Lease]{l, err}
	}()
	if s := receive(t, states, "a's hold"); s != (state{driver.Holder{Member: "a", Token: la.Token}, true}) {
		t.Errorf("state = %+v; want a", s)
	}
	eventually(t, "b to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
	if err := a.Unlock(ctx, "k", la.Token); err != nil {
		t.Fatal(err)
	}
	lb := receive(t, waiting, "b's grant")
	// A hand-over is one change: from a straight to b.
	if s := receive(t, states, "b's hold"); s != (state{driver.Holder{Member: "b", Token: lb.v.Token}, true}) {
		t.Errorf("state = %+v; want b", s)
	}
	if err := b.Unlock(ctx, "k", lb.v.Token); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, states, "the release"); s.held {
		t.Errorf("state = %+v; want free", s)
	}
	cancel()
	if err := receive(t, done, "the watch to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v", err)
	}
}

// Through the Backend, leader observation and group watches are pushed.
func TestBackendWatches(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	a := openBackend(t, store, "a")
	o := openBackend(t, store, "o")
	if err := o.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	gw, err := o.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	lw, err := o.ObserveLeader(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	if c := receive(t, lw.Changes(), "the first leader state"); c.Held {
		t.Errorf("leader = %+v; want none", c)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, gw); ev.Type != backend.EventJoined || ev.Member.ID != "a" {
		t.Errorf("event = %v; want a joined", ev)
	}
	lead, err := a.Campaign(ctx, "g", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := receive(t, lw.Changes(), "the new leader"); !c.Held || c.Leader.Member != "a" || c.Leader.Token != lead.Token() {
		t.Errorf("leader = %+v; want a", c)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, gw); ev.Type != backend.EventLeft || ev.Member.ID != "a" {
		t.Errorf("event = %v; want a left", ev)
	}
	if c := receive(t, lw.Changes(), "the resignation"); c.Held {
		t.Errorf("leader = %+v; want none", c)
	}
}

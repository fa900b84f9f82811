package etcdbackend

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// events collects what a driver watch emits.
type events struct {
	mu  sync.Mutex
	evs []driver.GroupEvent
}

func (e *events) emit(ev driver.GroupEvent) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) snapshot() []driver.GroupEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]driver.GroupEvent(nil), e.evs...)
}

// Every change reaches the watcher, in order, with the incarnation of the
// member that left.
func TestWatchGroupOrder(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	w, _ := openConn(t, url, "w")
	m, _ := openConn(t, url, "m")
	if err := w.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	var got events
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.WatchGroup(wctx, "g", got.emit) }()
	testutil.Within(t, wait, "the snapshot", func() bool { return len(got.snapshot()) == 1 })
	steps := []func() error{
		func() error { return m.Join(ctx, "g", []byte("1")) },
		func() error { return m.UpdateCapabilities(ctx, "g", []byte("2")) },
		func() error { return m.Leave(ctx, "g") },
		func() error { return m.Join(ctx, "g", nil) },
		func() error { return m.Leave(ctx, "g") },
		func() error { return w.DeleteGroup(ctx, "g") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if !testutil.CodeIs(err, driver.CodeGroupNotFound) {
			t.Fatalf("WatchGroup ended with %v, want CodeGroupNotFound", err)
		}
	case <-time.After(wait):
		t.Fatal("WatchGroup did not end after the group was deleted")
	}
	cancel()
	evs := got.snapshot()
	wantTypes := []driver.GroupEventType{driver.GroupSnapshot, driver.MemberJoined, driver.MemberUpdated,
		driver.MemberLeft, driver.MemberJoined, driver.MemberLeft, driver.GroupDeleted}
	if len(evs) != len(wantTypes) {
		t.Fatalf("got %d events %+v, want %d", len(evs), evs, len(wantTypes))
	}
	for i, ev := range evs {
		if ev.Type != wantTypes[i] {
			t.Fatalf("event %d = %+v, want type %v", i, ev, wantTypes[i])
		}
	}
	first, second := evs[1].Member.Incarnation, evs[4].Member.Incarnation
	if first == "" || first == second || evs[3].Member.Incarnation != first || evs[5].Member.Incarnation != second {
		t.Fatalf("incarnations: joined %q, left %q, joined %q, left %q", first, evs[3].Member.Incarnation, second, evs[5].Member.Incarnation)
	}
	if string(evs[2].Member.Capabilities) != "2" {
		t.Fatalf("update carried %q", evs[2].Member.Capabilities)
	}
}

// A watch resuming from a compacted revision re-reads the group and emits
// a fresh snapshot (the backend reports it as a resync); later changes
// follow as events.
func TestWatchGroupResyncAfterCompaction(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCD_URL"))
	ctx := testCtx(t)
	w, _ := openConn(t, url, "w")
	m, _ := openConn(t, url, "m")
	if err := w.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := w.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	_, _, rev, err := w.members(ctx, "snapshot", "g")
	if err != nil {
		t.Fatal(err)
	}
	// Changes the watcher misses, then compaction past them.
	if err := m.Join(ctx, "g", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := w.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	head, err := w.cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcdtest.AdminClient(t, url).Compact(ctx, head.Header.Revision); err != nil {
		t.Fatal(err)
	}
	var got events
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.followGroup(wctx, "g", rev, got.emit) }()
	testutil.Within(t, wait, "the resync snapshot", func() bool { return len(got.snapshot()) == 1 })
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	testutil.Within(t, wait, "the event after the resync", func() bool { return len(got.snapshot()) == 2 })
	cancel()
	<-done
	evs := got.snapshot()
	if evs[0].Type != driver.GroupSnapshot || len(evs[0].Members) != 1 || evs[0].Members[0].ID != "m" {
		t.Fatalf("first event = %+v, want a snapshot of [m]", evs[0])
	}
	if evs[1].Type != driver.MemberLeft || evs[1].Member.ID != "m" {
		t.Fatalf("second event = %+v, want m left", evs[1])
	}
}

// Through the Backend, a pushed watch reports a member that left and
// rejoined as left then joined, and no resync without compaction.
func TestBackendWatchRejoin(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	a, b := openBackend(t, url, "a"), openBackend(t, url, "b")
	if err := a.CreateGroup(ctx, "g"); err != nil {
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
	if err := b.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []backend.EventType{backend.EventLeft, backend.EventJoined} {
		if ev := testutil.NextEvent(t, w, wait); ev.Type != want || ev.Member.ID != "b" {
			t.Fatalf("event = %v, want %v b", ev, want)
		}
	}
}

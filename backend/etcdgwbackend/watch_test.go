package etcdgwbackend

import (
	"context"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

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

// A watch resuming from a compacted revision re-reads the group and emits
// a fresh snapshot (the backend reports it as a resync); later changes
// follow as events.
func TestWatchGroupResyncAfterCompaction(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCDGW_URL"))
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
	admin := etcdtest.AdminClient(t, srv.URL("BATON_TEST_ETCD_URL"))
	head, err := admin.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, head.Header.Revision); err != nil {
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

// A waiter whose predecessor's deletion was compacted away re-reads and
// is granted (waitDelete treats a compacted watch as "look again").
func TestWaitDeleteCompacted(t *testing.T) {
	srv := startPrivate(t, "etcd")
	url := nsURL(srv.URL("BATON_TEST_ETCDGW_URL"))
	ctx := testCtx(t)
	c, _ := openConn(t, url, "m")
	admin := etcdtest.AdminClient(t, srv.URL("BATON_TEST_ETCD_URL"))
	put, err := admin.Put(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	later, err := admin.Put(ctx, "other", "v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, later.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelete(ctx, "k", put.Header.Revision, c.newBackoff()); err != nil {
		t.Fatalf("waitDelete across compaction = %v, want nil (re-read)", err)
	}
}

package drivertest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

var watchTests = []test{
	{"Initial", testWatchInitial},
	{"Join", testWatchJoin},
	{"Leave", testWatchLeave},
	{"CloseSeenAsLeave", testWatchCloseSeenAsLeave},
	{"CapabilitiesChanged", testWatchCapsChanged},
	{"NonexistentGroup", testWatchNonexistent},
	{"GroupDeleted", testWatchGroupDeleted},
	{"Close", testWatchClose},
	{"ContextCanceled", testWatchContextCanceled},
	{"BootedOut", testWatchBootedOut},
	{"LeaveRejoinBetweenPolls", testWatchLeaveRejoin},
	{"OrderedOnce", testWatchOrderedOnce},
	{"Burst", testWatchBurst},
}

// watch starts watching group through b; the watch is closed at cleanup.
func (e *env) watch(b *backend.Backend, group string) *backend.GroupWatch {
	e.t.Helper()
	w, err := b.WatchGroup(e.ctx, group)
	e.must(err, "watch "+q(group))
	e.t.Cleanup(w.Close)
	return w
}

// next returns w's next event, failing when none comes within
// waitTimeout or the watch ends.
func (e *env) next(w *backend.GroupWatch) backend.Event {
	e.t.Helper()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			e.t.Fatalf("watch ended early: %v", w.Err())
		}
		return ev
	case <-t.C:
		e.t.Fatalf("no event within %v", waitTimeout)
	}
	return backend.Event{}
}

// expect fails unless w's next event is of type typ about member.
func (e *env) expect(w *backend.GroupWatch, typ backend.EventType, member string) backend.Event {
	e.t.Helper()
	ev := e.next(w)
	if ev.Type != typ || ev.Member.ID != member {
		e.t.Fatalf("event: got %s, want %s of %s", describe(ev), typ, q(member))
	}
	return ev
}

// describe formats an event for messages.
func describe(ev backend.Event) string {
	switch ev.Type {
	case backend.EventResync:
		return fmt.Sprintf("%s with members %s", ev.Type, qs(ids(ev.Members)))
	case backend.EventGroupDeleted:
		return ev.Type.String()
	}
	return fmt.Sprintf("%s of %s (incarnation %q, capabilities %s)", ev.Type, q(ev.Member.ID), ev.Member.Incarnation, short(ev.Member.Capabilities))
}

// fence proves that w has no unexpected event queued: a fresh member
// joins group, and its join must be w's very next event.
func (e *env) fence(w *backend.GroupWatch, group, id string) {
	e.t.Helper()
	f := e.open(id)
	e.join(f, group, nil)
	e.expect(w, backend.EventJoined, id)
}

// waitEnd waits until w's stream is closed, failing when it yields
// another event or does not close within waitTimeout.
func (e *env) waitEnd(w *backend.GroupWatch) {
	e.t.Helper()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	select {
	case ev, ok := <-w.Events():
		if ok {
			e.t.Fatalf("event after the watch should have ended: %s", describe(ev))
		}
	case <-t.C:
		e.t.Fatalf("watch did not end within %v", waitTimeout)
	}
}

// drain reads w until its stream closes, failing after waitTimeout.
func (e *env) drain(w *backend.GroupWatch) {
	e.t.Helper()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return
			}
		case <-t.C:
			e.t.Fatalf("watch did not end within %v", waitTimeout)
		}
	}
}

// Initial lists the members present when the watch started, with their
// capabilities and incarnations as Members reports them.
func testWatchInitial(t *testing.T, e *env) {
	b1, b2, wb := e.open("m1"), e.open("m2"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("one"))
	e.join(b2, "g", []byte("two"))
	ms, err := wb.Members(e.ctx, "g")
	e.must(err, "members")
	w := e.watch(wb, "g")
	got := w.Initial()
	if len(got) != len(ms) {
		t.Fatalf("initial members: got %s, want %s", qs(ids(got)), qs(ids(ms)))
	}
	for i := range ms {
		if got[i].ID != ms[i].ID || got[i].Incarnation != ms[i].Incarnation || !bytes.Equal(got[i].Capabilities, ms[i].Capabilities) {
			t.Fatalf("initial member %d: got %s/%q/%s, want %s/%q/%s", i, q(got[i].ID), got[i].Incarnation, short(got[i].Capabilities),
				q(ms[i].ID), ms[i].Incarnation, short(ms[i].Capabilities))
		}
	}
	e.fence(w, "g", "fence")
}

// A join is reported once, with the member's capabilities and the
// incarnation Members reports.
func testWatchJoin(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	w := e.watch(wb, "g")
	if len(w.Initial()) != 0 {
		t.Fatalf("initial members of an empty group: %s", qs(ids(w.Initial())))
	}
	e.join(b1, "g", []byte("caps"))
	ev := e.expect(w, backend.EventJoined, "m1")
	m, err := wb.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	if string(ev.Member.Capabilities) != "caps" || ev.Member.Incarnation != m.Incarnation || ev.Group != "g" {
		t.Fatalf("joined event: got %s in %s, want capabilities %q and incarnation %q in \"g\"", describe(ev), q(ev.Group), "caps", m.Incarnation)
	}
	e.fence(w, "g", "fence")
}

// A leave is reported once, with the member as it was.
func testWatchLeave(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("caps"))
	m, err := wb.Member(e.ctx, "g", "m1")
	e.must(err, "member info")
	w := e.watch(wb, "g")
	e.must(b1.Leave(e.ctx, "g"), "leave")
	ev := e.expect(w, backend.EventLeft, "m1")
	if ev.Member.Incarnation != m.Incarnation {
		t.Fatalf("left event: incarnation %q, want %q", ev.Member.Incarnation, m.Incarnation)
	}
	e.fence(w, "g", "fence")
}

// Closing a member's Backend is seen as that member leaving.
func testWatchCloseSeenAsLeave(t *testing.T, e *env) {
	b1, b2, wb := e.open("m1"), e.open("m2"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	e.join(b2, "g", nil)
	w := e.watch(wb, "g")
	e.close(b2)
	e.expect(w, backend.EventLeft, "m2")
	e.fence(w, "g", "fence")
}

// A capabilities update is reported once, with the new capabilities and
// the same incarnation.
func testWatchCapsChanged(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("old"))
	w := e.watch(wb, "g")
	inc := w.Initial()[0].Incarnation
	e.must(b1.UpdateCapabilities(e.ctx, "g", []byte("new")), "update capabilities")
	ev := e.expect(w, backend.EventCapabilitiesChanged, "m1")
	if string(ev.Member.Capabilities) != "new" || ev.Member.Incarnation != inc {
		t.Fatalf("capabilities event: got %s, want capabilities %q and incarnation %q", describe(ev), "new", inc)
	}
	e.fence(w, "g", "fence")
}

// Watching a group that does not exist fails at once with
// ErrGroupNotFound.
func testWatchNonexistent(t *testing.T, e *env) {
	b := e.open("watcher")
	_, err := b.WatchGroup(e.ctx, "nope")
	e.wantErr(err, backend.ErrGroupNotFound, "watch a missing group")
}

// Deleting the group ends the watch: the members' leaves (if any), then
// EventGroupDeleted, then the stream closes with an Err matching
// ErrGroupNotFound.
func testWatchGroupDeleted(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	w := e.watch(wb, "g")
	e.must(b1.Leave(e.ctx, "g"), "leave")
	e.expect(w, backend.EventLeft, "m1")
	e.must(b1.DeleteGroup(e.ctx, "g"), "delete group")
	if ev := e.next(w); ev.Type != backend.EventGroupDeleted || ev.Group != "g" {
		t.Fatalf("event: got %s, want %s", describe(ev), backend.EventGroupDeleted)
	}
	e.waitEnd(w)
	e.wantErr(w.Err(), backend.ErrGroupNotFound, "watch error after deletion")
}

// Close ends the stream (Err matches ErrCanceled); later changes are not
// reported.
func testWatchClose(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	w := e.watch(wb, "g")
	e.join(b1, "g", nil)
	e.expect(w, backend.EventJoined, "m1")
	w.Close()
	e.must(b1.Leave(e.ctx, "g"), "leave")
	e.join(b1, "g", nil)
	e.waitEnd(w)
	e.wantErr(w.Err(), backend.ErrCanceled, "watch error after Close")
	e.wantMembers(wb, "g", "m1")
}

// Cancelling the watch's context ends the stream; Err matches
// ErrCanceled.
func testWatchContextCanceled(t *testing.T, e *env) {
	b1, wb := e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	ctx, cancel := context.WithCancel(e.ctx)
	w, err := wb.WatchGroup(ctx, "g")
	e.must(err, "watch")
	t.Cleanup(w.Close)
	e.join(b1, "g", nil)
	e.expect(w, backend.EventJoined, "m1")
	cancel()
	e.waitEnd(w)
	e.wantErr(w.Err(), backend.ErrCanceled, "watch error after cancellation")
}

// Another Backend with the same member ID leaves on our behalf (tooz's
// booted-out test): watchers see the member leave, the original Backend
// is no longer a member (Leave: ErrNotMember) and can join again.
func testWatchBootedOut(t *testing.T, e *env) {
	b1, twin, wb := e.open("m1"), e.open("m1"), e.open("watcher")
	e.createGroup(b1, "g")
	e.join(b1, "g", nil)
	w1 := e.watch(b1, "g")
	w := e.watch(wb, "g")
	e.must(twin.Leave(e.ctx, "g"), "leave as the twin")
	e.expect(w, backend.EventLeft, "m1")
	e.expect(w1, backend.EventLeft, "m1")
	e.wantMembers(b1, "g")
	e.wantErr(b1.Leave(e.ctx, "g"), backend.ErrNotMember, "leave after being booted out")
	e.join(b1, "g", nil)
	e.expect(w, backend.EventJoined, "m1")
	e.expect(w1, backend.EventJoined, "m1")
}

// A member that leaves and joins again between two polls of a watcher is
// reported as left, then joined, with different incarnations. A polling
// watcher polls rarely here (so both changes surely fall between two
// polls); a pushing one sees both anyway.
func testWatchLeaveRejoin(t *testing.T, e *env) {
	const slowPoll = time.Second
	b1, wb := e.open("m1"), e.open("watcher", backend.WithPollInterval(slowPoll))
	e.createGroup(b1, "g")
	e.join(b1, "g", []byte("first"))
	w := e.watch(wb, "g")
	inc := w.Initial()[0].Incarnation
	e.must(b1.Leave(e.ctx, "g"), "leave")
	e.join(b1, "g", []byte("second"))
	left := e.expect(w, backend.EventLeft, "m1")
	joined := e.expect(w, backend.EventJoined, "m1")
	if left.Member.Incarnation != inc {
		t.Fatalf("left event: incarnation %q, want the first join's %q", left.Member.Incarnation, inc)
	}
	if joined.Member.Incarnation == "" || joined.Member.Incarnation == inc {
		t.Fatalf("joined event: incarnation %q, want a new one (the first was %q)", joined.Member.Incarnation, inc)
	}
	if string(joined.Member.Capabilities) != "second" {
		t.Fatalf("joined event: capabilities %s, want %q", short(joined.Member.Capabilities), "second")
	}
	e.fence(w, "g", "fence")
}

// step is one action of OrderedOnce and the events it must produce.
type step struct {
	do   func() error
	want []wantEvent
}

type wantEvent struct {
	typ    backend.EventType
	member string
	caps   string
}

// A scripted sequence of joins, updates, leaves and rejoins by several
// members is seen by two watchers as exactly the expected events, in
// order, each once: every step's events must be the watchers' next ones,
// and a fence at the end shows nothing else is queued.
func testWatchOrderedOnce(t *testing.T, e *env) {
	b1, b2, b3 := e.open("m1"), e.open("m2"), e.open("m3")
	e.createGroup(b1, "g")
	ws := []*backend.GroupWatch{e.watch(e.open("watcher-1"), "g"), e.watch(e.open("watcher-2"), "g")}
	join := func(b *backend.Backend, caps string) func() error {
		return func() error { return b.Join(e.ctx, "g", []byte(caps)) }
	}
	update := func(b *backend.Backend, caps string) func() error {
		return func() error { return b.UpdateCapabilities(e.ctx, "g", []byte(caps)) }
	}
	leave := func(b *backend.Backend) func() error { return func() error { return b.Leave(e.ctx, "g") } }
	steps := []step{
		{join(b1, "a1"), []wantEvent{{backend.EventJoined, "m1", "a1"}}},
		{join(b2, "b1"), []wantEvent{{backend.EventJoined, "m2", "b1"}}},
		{update(b1, "a2"), []wantEvent{{backend.EventCapabilitiesChanged, "m1", "a2"}}},
		{join(b3, "c1"), []wantEvent{{backend.EventJoined, "m3", "c1"}}},
		{update(b2, "b2"), []wantEvent{{backend.EventCapabilitiesChanged, "m2", "b2"}}},
		{leave(b1), []wantEvent{{backend.EventLeft, "m1", ""}}},
		{update(b3, "c2"), []wantEvent{{backend.EventCapabilitiesChanged, "m3", "c2"}}},
		{join(b1, "a3"), []wantEvent{{backend.EventJoined, "m1", "a3"}}},
		{update(b1, "a4"), []wantEvent{{backend.EventCapabilitiesChanged, "m1", "a4"}}},
		{leave(b2), []wantEvent{{backend.EventLeft, "m2", ""}}},
		{func() error { return b3.Close(e.ctx) }, []wantEvent{{backend.EventLeft, "m3", ""}}},
		{leave(b1), []wantEvent{{backend.EventLeft, "m1", ""}}},
	}
	for i, s := range steps {
		e.must(s.do(), fmt.Sprintf("step %d", i))
		for _, w := range ws {
			for _, want := range s.want {
				ev := e.expect(w, want.typ, want.member)
				if want.typ != backend.EventLeft && string(ev.Member.Capabilities) != want.caps {
					t.Fatalf("step %d: got %s, want capabilities %q", i, describe(ev), want.caps)
				}
			}
		}
	}
	e.join(e.open("fence"), "g", nil)
	for _, w := range ws {
		e.expect(w, backend.EventJoined, "fence")
	}
	e.wantMembers(b1, "g", "fence")
}

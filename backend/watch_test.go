package backend_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
)

// nextEvent returns w's next event, failing after wait or when the stream
// ends.
func nextEvent(t testing.TB, w *backend.GroupWatch) backend.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("the watch ended (%v) while an event was expected", w.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event within the wait")
	}
	return backend.Event{}
}

// want is an expected event: its type and member (empty for resync and
// group-deleted).
type want struct {
	typ    backend.EventType
	member string
}

// expectEvents reads len(wants) events and checks them in order.
func expectEvents(t testing.TB, w *backend.GroupWatch, wants ...want) []backend.Event {
	t.Helper()
	got := make([]backend.Event, 0, len(wants))
	for i, wt := range wants {
		ev := nextEvent(t, w)
		got = append(got, ev)
		if ev.Type != wt.typ || ev.Member.ID != wt.member || ev.Group == "" {
			t.Fatalf("event %d = %v; want %v %q (events so far: %v)", i, ev, wt.typ, wt.member, got)
		}
	}
	return got
}

// expectEnd waits for the stream to close and checks Err.
func expectEnd(t testing.TB, w *backend.GroupWatch, wantErrs ...error) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				for _, e := range wantErrs {
					wantErr(t, w.Err(), e, "watch error")
				}
				return
			}
			t.Fatalf("unexpected event %v before the end", ev)
		case <-deadline:
			t.Fatal("the watch did not end")
		}
	}
}

func ids(ms []backend.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// pollWatch is a watch of group "g" on the polling emulation, whose polls
// happen only when the test steps the clock.
type pollWatch struct {
	clk        *fakeClock
	wb, m1, m2 *backend.Backend
	w          *backend.GroupWatch
	store      string
}

func newPollWatch(t *testing.T) *pollWatch {
	t.Helper()
	p := &pollWatch{clk: newFakeClock(), store: newStore(t)}
	p.wb = open(t, pollScheme+"://"+p.store, "watcher", backend.WithClock(p.clk), backend.WithPollInterval(time.Hour))
	p.m1, p.m2 = open(t, "mem://"+p.store, "m1"), open(t, "mem://"+p.store, "m2")
	ctx := testCtx(t)
	must(t, p.m1.CreateGroup(ctx, "g"), "create group")
	must(t, p.m1.Join(ctx, "g", []byte("a")), "join")
	w, err := p.wb.WatchGroup(ctx, "g")
	must(t, err, "watch")
	t.Cleanup(w.Close)
	p.w = w
	if got := ids(w.Initial()); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("Initial() = %q; want [m1]", got)
	}
	return p
}

// poll makes the watch poll once and waits until it has finished.
func (p *pollWatch) poll(t *testing.T) { p.clk.step(t) }

// The polling emulation diffs listings by incarnation.
func TestWatchPolled(t *testing.T) {
	t.Run("leave and rejoin between polls", func(t *testing.T) {
		p := newPollWatch(t)
		ctx := testCtx(t)
		old := p.w.Initial()[0]
		must(t, p.m1.Leave(ctx, "g"), "leave")
		must(t, p.m1.Join(ctx, "g", []byte("a")), "join again")
		p.poll(t)
		evs := expectEvents(t, p.w, want{backend.EventLeft, "m1"}, want{backend.EventJoined, "m1"})
		if evs[0].Member.Incarnation != old.Incarnation || evs[1].Member.Incarnation == old.Incarnation {
			t.Fatalf("incarnations: left %q joined %q, initial %q", evs[0].Member.Incarnation, evs[1].Member.Incarnation, old.Incarnation)
		}
	})
	t.Run("capabilities changed", func(t *testing.T) {
		p := newPollWatch(t)
		must(t, p.m1.UpdateCapabilities(testCtx(t), "g", []byte("b")), "update")
		p.poll(t)
		ev := expectEvents(t, p.w, want{backend.EventCapabilitiesChanged, "m1"})[0]
		if string(ev.Member.Capabilities) != "b" {
			t.Fatalf("capabilities %q; want b", ev.Member.Capabilities)
		}
	})
	t.Run("lefts before joins", func(t *testing.T) {
		p := newPollWatch(t)
		ctx := testCtx(t)
		must(t, p.m2.Join(ctx, "g", nil), "join")
		must(t, p.m1.Leave(ctx, "g"), "leave")
		p.poll(t)
		expectEvents(t, p.w, want{backend.EventLeft, "m1"}, want{backend.EventJoined, "m2"})
	})
	t.Run("quiet polls report nothing", func(t *testing.T) {
		p := newPollWatch(t)
		p.poll(t)
		p.poll(t)
		must(t, p.m2.Join(testCtx(t), "g", nil), "join")
		p.poll(t)
		expectEvents(t, p.w, want{backend.EventJoined, "m2"})
	})
	t.Run("join and leave between polls", func(t *testing.T) {
		p := newPollWatch(t)
		ctx := testCtx(t)
		must(t, p.m2.Join(ctx, "g", nil), "join")
		must(t, p.m2.Leave(ctx, "g"), "leave")
		must(t, p.m1.UpdateCapabilities(ctx, "g", []byte("fence")), "update")
		p.poll(t)
		expectEvents(t, p.w, want{backend.EventCapabilitiesChanged, "m1"})
	})
	t.Run("resync after a failed poll", func(t *testing.T) {
		p := newPollWatch(t)
		ctx := testCtx(t)
		must(t, membackend.SetUnreachable(p.store, "watcher", true), "cut off")
		p.poll(t)
		must(t, p.m2.Join(ctx, "g", []byte("x")), "join")
		must(t, membackend.SetUnreachable(p.store, "watcher", false), "reconnect")
		p.poll(t)
		evs := expectEvents(t, p.w, want{backend.EventJoined, "m2"}, want{backend.EventResync, ""})
		if got := ids(evs[1].Members); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Fatalf("resync members %q; want [m1 m2]", got)
		}
	})
	t.Run("group deleted", func(t *testing.T) {
		p := newPollWatch(t)
		ctx := testCtx(t)
		must(t, p.m1.Leave(ctx, "g"), "leave")
		must(t, p.m1.DeleteGroup(ctx, "g"), "delete")
		p.clk.step(t)
		expectEvents(t, p.w, want{backend.EventLeft, "m1"}, want{backend.EventGroupDeleted, ""})
		expectEnd(t, p.w, backend.ErrGroupNotFound, backend.ErrNotFound)
	})
}

// Pushed watches report changes as they happen and, after the driver's
// watch broke, re-list and report the difference and a resync.
func TestWatchPushed(t *testing.T) {
	t.Run("changes", func(t *testing.T) {
		store := newStore(t)
		wb, m1 := open(t, "mem://"+store, "watcher"), open(t, "mem://"+store, "m1")
		ctx := testCtx(t)
		must(t, m1.CreateGroup(ctx, "g"), "create group")
		w, err := wb.WatchGroup(ctx, "g")
		must(t, err, "watch")
		defer w.Close()
		must(t, m1.Join(ctx, "g", []byte("a")), "join")
		// Once an event arrived the driver's watch runs: every later
		// change is pushed, not found by the first listing's diff.
		evs := expectEvents(t, w, want{backend.EventJoined, "m1"})
		must(t, m1.UpdateCapabilities(ctx, "g", []byte("b")), "update")
		must(t, m1.Leave(ctx, "g"), "leave")
		must(t, m1.Join(ctx, "g", nil), "join again")
		must(t, m1.Leave(ctx, "g"), "leave again")
		must(t, m1.DeleteGroup(ctx, "g"), "delete")
		evs = append(evs, expectEvents(t, w,
			want{backend.EventCapabilitiesChanged, "m1"}, want{backend.EventLeft, "m1"},
			want{backend.EventJoined, "m1"}, want{backend.EventLeft, "m1"}, want{backend.EventGroupDeleted, ""})...)
		if evs[0].Member.Incarnation == evs[3].Member.Incarnation {
			t.Fatal("a rejoin kept its incarnation")
		}
		expectEnd(t, w, backend.ErrGroupNotFound)
	})
	t.Run("resync after a gap", func(t *testing.T) {
		store := newStore(t)
		wb, m1, m2 := open(t, "mem://"+store, "watcher"), open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
		ctx := testCtx(t)
		must(t, m1.CreateGroup(ctx, "g"), "create group")
		must(t, m1.Join(ctx, "g", []byte("a")), "join")
		w, err := wb.WatchGroup(ctx, "g")
		must(t, err, "watch")
		defer w.Close()
		must(t, m1.UpdateCapabilities(ctx, "g", []byte("a2")), "update")
		expectEvents(t, w, want{backend.EventCapabilitiesChanged, "m1"}) // the driver's watch runs
		must(t, membackend.SetUnreachable(store, "watcher", true), "cut off")
		must(t, m2.Join(ctx, "g", nil), "join")
		must(t, m1.UpdateCapabilities(ctx, "g", []byte("b")), "update")
		must(t, membackend.SetUnreachable(store, "watcher", false), "reconnect")
		evs := expectEvents(t, w, want{backend.EventCapabilitiesChanged, "m1"}, want{backend.EventJoined, "m2"}, want{backend.EventResync, ""})
		if got := ids(evs[2].Members); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Fatalf("resync members %q; want [m1 m2]", got)
		}
		must(t, m2.Leave(ctx, "g"), "leave")
		expectEvents(t, w, want{backend.EventLeft, "m2"})
	})
}

// Every way a watch ends closes the stream with a telling Err, on both the
// pushed and the polled path.
func TestWatchEnd(t *testing.T) {
	tests := []struct {
		name  string
		end   func(t *testing.T, wb *backend.Backend, w *backend.GroupWatch, cancel context.CancelFunc)
		ctx   func() (context.Context, context.CancelFunc)
		wants []error
	}{
		{
			name:  "Close",
			end:   func(_ *testing.T, _ *backend.Backend, w *backend.GroupWatch, _ context.CancelFunc) { w.Close() },
			wants: []error{backend.ErrCanceled},
		},
		{
			name:  "context cancelled",
			end:   func(_ *testing.T, _ *backend.Backend, _ *backend.GroupWatch, cancel context.CancelFunc) { cancel() },
			wants: []error{backend.ErrCanceled, context.Canceled},
		},
		{
			name: "context deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			end:   func(*testing.T, *backend.Backend, *backend.GroupWatch, context.CancelFunc) {},
			wants: []error{backend.ErrDeadlineExceeded, context.DeadlineExceeded},
		},
		{
			name: "Backend closed",
			end: func(t *testing.T, wb *backend.Backend, _ *backend.GroupWatch, _ context.CancelFunc) {
				must(t, wb.Close(testCtx(t)), "close")
			},
			wants: []error{backend.ErrClosed, backend.ErrCanceled},
		},
		{
			name: "session lost",
			end: func(t *testing.T, wb *backend.Backend, _ *backend.GroupWatch, _ context.CancelFunc) {
				must(t, membackend.ExpireSession(storeOf(wb), wb.MemberID()), "expire")
			},
			wants: []error{backend.ErrLost},
		},
	}
	for _, scheme := range []string{"mem", pollScheme} {
		for _, tt := range tests {
			t.Run(scheme+"/"+tt.name, func(t *testing.T) {
				store := newStore(t)
				wb := open(t, scheme+"://"+store, "watcher", backend.WithPollInterval(time.Millisecond))
				must(t, wb.CreateGroup(testCtx(t), "g"), "create group")
				ctx, cancel := context.WithCancel(context.Background())
				if tt.ctx != nil {
					ctx, cancel = tt.ctx()
				}
				defer cancel()
				w, err := wb.WatchGroup(ctx, "g")
				must(t, err, "watch")
				defer w.Close()
				if w.Err() != nil {
					t.Fatalf("Err() = %v on a running watch", w.Err())
				}
				tt.end(t, wb, w, cancel)
				expectEnd(t, w, tt.wants...)
				w.Close() // closing an ended watch is fine
			})
		}
	}
}

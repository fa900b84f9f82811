package membership_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/membership"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type caps struct {
	Role   string `msgpack:"role"`
	Weight int    `msgpack:"weight"`
}

func next(t *testing.T, w *membership.Watch) membership.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return membership.Event{}
}

func TestJoinWatchLeave(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 20*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		g1, err := membership.NewGroup(b1, "workers")
		if err != nil {
			t.Fatal(err)
		}
		if err := g1.Join(ctx, membership.WithCapabilitiesValue(caps{Role: "a", Weight: 2})); !errors.Is(err, backend.ErrGroupNotFound) {
			t.Fatalf("join of a missing group = %v", err)
		}
		if err := g1.Join(ctx, membership.WithCapabilitiesValue(caps{Role: "a", Weight: 2}), membership.CreateIfMissing()); err != nil {
			t.Fatal(err)
		}
		w, err := g1.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if in := w.Initial(); len(in) != 1 || in[0].ID != "m1" {
			t.Fatalf("Initial = %+v", in)
		}
		g2, _ := membership.NewGroup(b2, "workers")
		if err := g2.Join(ctx, membership.WithCapabilitiesValue(caps{Role: "b", Weight: 1})); err != nil {
			t.Fatal(err)
		}
		ev := next(t, w)
		var c caps
		if ev.Type != membership.Joined || ev.Member.ID != "m2" || ev.Member.Decode(&c) != nil || c.Role != "b" {
			t.Fatalf("event = %+v (caps %+v)", ev, c)
		}
		if err := g2.UpdateCapabilitiesValue(ctx, caps{Role: "b2", Weight: 3}); err != nil {
			t.Fatal(err)
		}
		ev = next(t, w)
		if ev.Type != membership.CapabilitiesChanged || ev.Member.Decode(&c) != nil || c.Role != "b2" || c.Weight != 3 {
			t.Fatalf("event = %+v", ev)
		}
		ms, err := g1.Members(ctx)
		if err != nil || len(ms) != 2 {
			t.Fatalf("Members = %+v, %v", ms, err)
		}
		m2, err := g1.Member(ctx, "m2")
		if err != nil || m2.UpdatedAt.Before(m2.JoinedAt) {
			t.Fatalf("Member = %+v, %v", m2, err)
		}
		if _, err := g1.Member(ctx, "nobody"); !errors.Is(err, backend.ErrNotMember) {
			t.Fatalf("Member(nobody) = %v", err)
		}
		if err := g2.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Type != membership.Left || ev.Member.ID != "m2" {
			t.Fatalf("event = %+v", ev)
		}
		if err := g1.Delete(ctx); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("Delete non-empty = %v", err)
		}
		if err := g1.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Type != membership.Left || ev.Member.ID != "m1" {
			t.Fatalf("event = %+v", ev)
		}
		if err := g1.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Type != membership.GroupDeleted {
			t.Fatalf("event = %+v", ev)
		}
		if _, ok := <-w.Events(); ok {
			t.Fatal("stream open after GroupDeleted")
		}
		if !errors.Is(w.Err(), backend.ErrGroupNotFound) {
			t.Fatalf("Err = %v", w.Err())
		}
	})
}

func TestOnChangeStopsWithContext(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 20*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		g1, _ := membership.NewGroup(b1, "cb")
		if err := g1.Create(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		got := make(chan membership.Event, 4)
		done := make(chan error, 1)
		go func() {
			done <- g1.OnChange(wctx, func(ev membership.Event) { got <- ev })
		}()
		g2, _ := membership.NewGroup(b2, "cb")
		// OnChange starts its watch asynchronously: rejoin until a join
		// falls after the watch started.
		testutil.Eventually(t, 10*time.Second, "joined event", func() bool {
			select {
			case ev := <-got:
				return ev.Type == membership.Joined && ev.Member.ID == "m2"
			default:
			}
			_ = g2.Leave(ctx)
			if err := g2.Join(ctx); err != nil {
				t.Fatal(err)
			}
			return false
		})
		cancel()
		if err := <-done; !errors.Is(err, backend.ErrCanceled) {
			t.Fatalf("OnChange = %v", err)
		}
	})
}

func TestCapabilitiesEncoding(t *testing.T) {
	tests := []struct {
		name string
		give any
		want []byte
	}{
		// The bytes Python's msgpack.packb(..., use_bin_type=True) produces.
		{"tooz weight", map[string]int{"weight": 1}, []byte{0x81, 0xa6, 'w', 'e', 'i', 'g', 'h', 't', 0x01}},
		{"string", "x", []byte{0xa1, 'x'}},
		{"bytes", []byte{1, 2}, []byte{0xc4, 0x02, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := membership.EncodeCapabilities(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.want) {
				t.Fatalf("encoded % x, want % x", got, tt.want)
			}
		})
	}
	var v map[string]int
	if err := membership.DecodeCapabilities([]byte{0xc1}, &v); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("decode garbage = %v", err)
	}
	if _, err := membership.EncodeCapabilities(make(chan int)); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("encode chan = %v", err)
	}
}

// A watch ends with its owner even when nobody reads its events: when its
// ctx is cancelled, and when its Backend closes. Done then closes, and
// goleak (TestMain) finds no goroutine left.
func TestWatchEndsWithOwnerWithoutReader(t *testing.T) {
	ctx := testutil.Context(t, 20*time.Second)
	url := testutil.MemURL(t)
	b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
	g1, _ := membership.NewGroup(b1, "unread")
	if err := g1.Create(ctx); err != nil {
		t.Fatal(err)
	}
	g2, _ := membership.NewGroup(b2, "unread")
	wait := func(w *membership.Watch, why string) {
		t.Helper()
		select {
		case <-w.Done():
		case <-ctx.Done():
			t.Fatalf("watch did not end when %s", why)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w1, err := g1.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Join(ctx); err != nil { // an event nobody reads
		t.Fatal(err)
	}
	cancel()
	wait(w1, "its ctx was cancelled")
	if !errors.Is(w1.Err(), backend.ErrCanceled) {
		t.Fatalf("Err after cancel = %v", w1.Err())
	}

	w2, err := g1.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Leave(ctx); err != nil { // an event nobody reads
		t.Fatal(err)
	}
	if err := b1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait(w2, "its Backend closed")
	if !errors.Is(w2.Err(), backend.ErrClosed) {
		t.Fatalf("Err after Backend.Close = %v", w2.Err())
	}
}

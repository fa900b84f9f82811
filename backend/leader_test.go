package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
)

// nextChange returns the watch's next state, failing after wait or when
// the stream ends.
func nextChange(t testing.TB, w *backend.LeaderWatch) backend.LeaderChange {
	t.Helper()
	select {
	case c, ok := <-w.Changes():
		if !ok {
			t.Fatalf("the leader watch ended (%v) while a change was expected", w.Err())
		}
		return c
	case <-time.After(wait):
		t.Fatal("no leader change within the wait")
	}
	return backend.LeaderChange{}
}

func expectChange(t testing.TB, w *backend.LeaderWatch, want backend.LeaderChange) {
	t.Helper()
	if got := nextChange(t, w); got != want {
		t.Fatalf("leader change %+v; want %+v", got, want)
	}
}

func held(g *backend.Grant, member string) backend.LeaderChange {
	return backend.LeaderChange{Held: true, Leader: backend.Holder{Member: member, Token: g.Token()}}
}

// Campaign, TryCampaign, Leader and ObserveLeader, natively (mem) and
// emulated by polling (mempoll), starting from the no-leader state.
func TestLeadership(t *testing.T) {
	for _, scheme := range []string{"mem", pollScheme} {
		t.Run(scheme, func(t *testing.T) {
			store := newStore(t)
			opts := []backend.Option{backend.WithPollInterval(time.Millisecond)}
			b1, b2 := open(t, scheme+"://"+store, "m1", opts...), open(t, scheme+"://"+store, "m2", opts...)
			observer := open(t, scheme+"://"+store, "observer", opts...)
			ctx := testCtx(t)
			if _, ok, err := observer.Leader(ctx, "g"); err != nil || ok {
				t.Fatalf("Leader of a group nobody leads: %v %v", ok, err)
			}
			w, err := observer.ObserveLeader(ctx, "g")
			must(t, err, "observe")
			defer w.Close()
			expectChange(t, w, backend.LeaderChange{})

			l1 := tryCampaign(t, b1, "g")
			expectChange(t, w, held(l1, "m1"))
			if h, ok, err := observer.Leader(ctx, "g"); err != nil || !ok || h != held(l1, "m1").Leader {
				t.Fatalf("Leader = %+v %v %v; want m1 with token %d", h, ok, err, l1.Token())
			}
			if _, ok, err := b2.TryCampaign(ctx, "g", backend.LockOptions{}); ok || err != nil {
				t.Fatalf("TryCampaign while another leads: %v %v", ok, err)
			}
			res := make(chan *backend.Grant, 1)
			go func() {
				g, err := b2.Campaign(testCtx(t), "g", backend.LockOptions{MaxPoll: time.Millisecond})
				if err != nil {
					t.Errorf("campaign: %v", err)
				}
				res <- g
			}()
			must(t, l1.Release(ctx), "resign")
			var l2 *backend.Grant
			select {
			case l2 = <-res:
			case <-time.After(wait):
				t.Fatal("Campaign did not win after the leader resigned")
			}
			if l2 == nil {
				t.FailNow()
			}
			if l2.Token() <= l1.Token() || l2.Name() != "g" {
				t.Fatalf("new term: token %d (old %d), name %q", l2.Token(), l1.Token(), l2.Name())
			}
			// The push path sees the gap between the terms; a poll may not.
			c := nextChange(t, w)
			if c == (backend.LeaderChange{}) {
				c = nextChange(t, w)
			}
			if c != held(l2, "m2") {
				t.Fatalf("leader change %+v; want %+v", c, held(l2, "m2"))
			}
			must(t, l2.Release(ctx), "resign")
			expectChange(t, w, backend.LeaderChange{})
		})
	}
}

// A slow consumer of ObserveLeader gets the newest state, not a backlog.
func TestObserveLeaderNewestWins(t *testing.T) {
	for _, scheme := range []string{"mem", pollScheme} {
		t.Run(scheme, func(t *testing.T) {
			store := newStore(t)
			opts := []backend.Option{backend.WithPollInterval(time.Millisecond)}
			b := open(t, scheme+"://"+store, "m1", opts...)
			w, err := b.ObserveLeader(testCtx(t), "g")
			must(t, err, "observe")
			defer w.Close()
			expectChange(t, w, backend.LeaderChange{})
			var last *backend.Grant
			for range 20 {
				last = tryCampaign(t, b, "g")
				must(t, last.Release(testCtx(t)), "resign")
			}
			last = tryCampaign(t, b, "g")
			final := held(last, "m1")
			for {
				c := nextChange(t, w)
				if c == final {
					break
				}
				if c.Held && c.Leader.Token > last.Token() {
					t.Fatalf("change %+v from the future", c)
				}
			}
			if len(w.Changes()) != 0 {
				t.Fatalf("%d more changes after the newest state", len(w.Changes()))
			}
		})
	}
}

// The stream behind ObserveLeader keeps one state for a consumer that is
// behind, and never hands the consumer the state it took last again.
func TestLeaderStream(t *testing.T) {
	a := backend.LeaderChange{}
	b := backend.LeaderChange{Held: true, Leader: backend.Holder{Member: "m1", Token: 1}}
	c := backend.LeaderChange{Held: true, Leader: backend.Holder{Member: "m2", Token: 2}}
	type step struct {
		emit *backend.LeaderChange // nil: the consumer takes what is there
		want *backend.LeaderChange // what the consumer takes (nil: nothing)
	}
	e := func(c backend.LeaderChange) step { return step{emit: &c} }
	take := func(c *backend.LeaderChange) step { return step{want: c} }
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "one state", steps: []step{e(a), take(&a), take(nil)}},
		{name: "duplicates suppressed", steps: []step{e(a), e(a), take(&a), e(a), take(nil)}},
		{name: "newest wins", steps: []step{e(a), e(b), e(c), take(&c), take(nil)}},
		{name: "back to the state taken", steps: []step{e(a), take(&a), e(b), e(a), take(nil), e(b), take(&b)}},
		{name: "back and forth", steps: []step{e(a), take(&a), e(b), e(a), e(b), take(&b), e(c), e(b), take(nil), e(a), take(&a)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emit, ch := backend.NewLeaderStream()
			for i, s := range tt.steps {
				if s.emit != nil {
					emit(*s.emit)
					continue
				}
				select {
				case got := <-ch:
					if s.want == nil || got != *s.want {
						t.Fatalf("step %d: took %+v; want %v", i, got, s.want)
					}
				default:
					if s.want != nil {
						t.Fatalf("step %d: nothing to take; want %+v", i, *s.want)
					}
				}
			}
		})
	}
}

// A leader watch ends with a telling Err.
func TestObserveLeaderEnd(t *testing.T) {
	tests := []struct {
		name  string
		end   func(t *testing.T, b *backend.Backend, w *backend.LeaderWatch, cancel context.CancelFunc)
		wants []error
	}{
		{name: "Close", end: func(_ *testing.T, _ *backend.Backend, w *backend.LeaderWatch, _ context.CancelFunc) { w.Close() }, wants: []error{backend.ErrCanceled}},
		{name: "context cancelled", end: func(_ *testing.T, _ *backend.Backend, _ *backend.LeaderWatch, cancel context.CancelFunc) { cancel() }, wants: []error{backend.ErrCanceled, context.Canceled}},
		{name: "Backend closed", end: func(t *testing.T, b *backend.Backend, _ *backend.LeaderWatch, _ context.CancelFunc) {
			must(t, b.Close(testCtx(t)), "close")
		}, wants: []error{backend.ErrClosed}},
		{name: "session lost", end: func(t *testing.T, b *backend.Backend, _ *backend.LeaderWatch, _ context.CancelFunc) {
			must(t, membackend.ExpireSession(storeOf(b), b.MemberID()), "expire")
		}, wants: []error{backend.ErrLost}},
	}
	for _, scheme := range []string{"mem", pollScheme} {
		for _, tt := range tests {
			t.Run(scheme+"/"+tt.name, func(t *testing.T) {
				b := open(t, scheme+"://"+newStore(t), "m1", backend.WithPollInterval(time.Millisecond))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				w, err := b.ObserveLeader(ctx, "g")
				must(t, err, "observe")
				defer w.Close()
				expectChange(t, w, backend.LeaderChange{})
				tt.end(t, b, w, cancel)
				deadline := time.After(wait)
				for open := true; open; {
					select {
					case _, open = <-w.Changes():
					case <-deadline:
						t.Fatal("the leader watch did not end")
					}
				}
				for _, e := range tt.wants {
					wantErr(t, w.Err(), e, "leader watch error")
				}
			})
		}
	}
}

package backend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
)

// Tokens of one name grow with every grant, locks and leadership alike,
// and a grant reports its name, lease and acquisition time.
func TestGrantTokens(t *testing.T) {
	clk := newFakeClock()
	b := open(t, "mem://"+newStore(t), "m1", backend.WithClock(clk))
	ctx := testCtx(t)
	var last uint64
	for i := range 3 {
		g := tryLock(t, b, "l")
		if g.Token() <= last {
			t.Fatalf("grant %d: token %d not above %d", i, g.Token(), last)
		}
		last = g.Token()
		if g.Name() != "l" || g.TTL() != 0 || !g.AcquiredAt().Equal(clk.Now()) || g.Lost() {
			t.Fatalf("grant: name %q ttl %v acquired %v lost %v", g.Name(), g.TTL(), g.AcquiredAt(), g.Lost())
		}
		must(t, g.Release(ctx), "release")
	}
	l := tryCampaign(t, b, "l")
	if l.Token() <= last || l.Name() != "l" {
		t.Fatalf("leadership: token %d (last lock token %d), name %q", l.Token(), last, l.Name())
	}
}

// Locks are not reentrant: a second TryLock of the same Backend fails
// without an error, and Lock waits.
func TestGrantNotReentrant(t *testing.T) {
	b := open(t, "mem://"+newStore(t), "m1")
	ctx := testCtx(t)
	g := tryLock(t, b, "l")
	g2, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if ok || err != nil || g2 != nil {
		t.Fatalf("second TryLock: %v %v %v; want not acquired, no error", g2, ok, err)
	}
	_, ok, err = b.TryCampaign(ctx, "l", backend.LockOptions{})
	must(t, err, "campaign")
	if !ok {
		t.Fatal("a lock blocks the leadership of the same name")
	}
	h, held, err := b.LockHolder(ctx, "l")
	if err != nil || !held || h.Member != "m1" || h.Token != g.Token() {
		t.Fatalf("LockHolder = %+v %v %v", h, held, err)
	}
}

// A grant's context says why it ended: released, session lost, session
// suspended, Backend closed.
func TestGrantContextCause(t *testing.T) {
	tests := []struct {
		name    string
		end     func(t *testing.T, b *backend.Backend, g *backend.Grant)
		want    error
		wantNot error
		lost    bool
	}{
		{
			name: "released",
			end:  func(t *testing.T, _ *backend.Backend, g *backend.Grant) { must(t, g.Release(testCtx(t)), "release") },
			want: backend.ErrReleased, wantNot: backend.ErrLost,
		},
		{
			name: "session lost",
			end: func(t *testing.T, b *backend.Backend, _ *backend.Grant) {
				must(t, membackend.ExpireSession(storeOf(b), b.MemberID()), "expire")
			},
			want: backend.ErrSessionLost, lost: true,
		},
		{
			name: "session suspended",
			end: func(t *testing.T, b *backend.Backend, _ *backend.Grant) {
				must(t, membackend.SetUnreachable(storeOf(b), b.MemberID(), true), "cut off")
				t.Cleanup(func() { _ = membackend.SetUnreachable(storeOf(b), b.MemberID(), false) })
			},
			want: backend.ErrSuspended, lost: true,
		},
		{
			name: "backend closed",
			end:  func(t *testing.T, b *backend.Backend, _ *backend.Grant) { must(t, b.Close(testCtx(t)), "close") },
			want: backend.ErrClosed, wantNot: backend.ErrLost,
		},
	}
	for _, tt := range tests {
		for _, leader := range []bool{false, true} {
			name := tt.name + "/lock"
			if leader {
				name = tt.name + "/leadership"
			}
			t.Run(name, func(t *testing.T) {
				b := open(t, "mem://"+newStore(t), "m1")
				g := tryLock(t, b, "x")
				if leader {
					g = tryCampaign(t, b, "x")
				}
				if g.Context().Err() != nil {
					t.Fatal("the context of a fresh grant is done")
				}
				tt.end(t, b, g)
				waitClosed(t, g.Context().Done(), "the grant's context to end")
				cause := context.Cause(g.Context())
				wantErr(t, cause, tt.want, "cause")
				if tt.wantNot != nil && errors.Is(cause, tt.wantNot) {
					t.Errorf("cause %v matches %v", cause, tt.wantNot)
				}
				if g.Lost() != tt.lost {
					t.Errorf("Lost() = %v; want %v", g.Lost(), tt.lost)
				}
			})
		}
	}
}

// Release of a lost grant reports ErrNotHeld, whether the store still had
// the lock or not; releasing twice too.
func TestGrantReleaseAfterLoss(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, b *backend.Backend)
	}{
		{name: "session expired", lose: func(t *testing.T, b *backend.Backend) {
			must(t, membackend.ExpireSession(storeOf(b), b.MemberID()), "expire")
		}},
		{name: "suspended and resumed", lose: func(t *testing.T, b *backend.Backend) {
			must(t, membackend.SetUnreachable(storeOf(b), b.MemberID(), true), "cut off")
			must(t, membackend.SetUnreachable(storeOf(b), b.MemberID(), false), "reconnect")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t, "mem://"+newStore(t), "m1")
			g := tryLock(t, b, "l")
			tt.lose(t, b)
			waitClosed(t, g.Context().Done(), "the grant to be lost")
			err := g.Release(testCtx(t))
			wantErr(t, err, backend.ErrNotHeld, "release after loss")
			wantOnce(t, err, "release after loss")
			wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "second release")
		})
	}
}

// A grant lost while the session was suspended is released on the store
// once the connection is back, so that the lock and the leadership do not
// stay taken by a live session that no longer has a grant for them.
func TestGrantLostWhileSuspendedIsReleased(t *testing.T) {
	store := newStore(t)
	b1, b2 := open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
	ctx := testCtx(t)
	l := tryLock(t, b1, "l")
	e := tryCampaign(t, b1, "g")
	must(t, membackend.SetUnreachable(store, "m1", true), "cut off")
	waitClosed(t, l.Context().Done(), "the lock to be lost")
	waitClosed(t, e.Context().Done(), "the leadership to be lost")
	must(t, membackend.SetUnreachable(store, "m1", false), "reconnect")
	g2, err := b2.Lock(ctx, "l", backend.LockOptions{})
	must(t, err, "lock by another member after the holder's grant was lost")
	if g2.Token() <= l.Token() {
		t.Fatalf("token %d not above the lost grant's %d", g2.Token(), l.Token())
	}
	e2, err := b2.Campaign(ctx, "g", backend.LockOptions{})
	must(t, err, "campaign by another member after the leader's term was lost")
	must(t, e2.Release(ctx), "resign")
	e1, err := b1.Campaign(ctx, "g", backend.LockOptions{})
	must(t, err, "campaign again by the member whose term was lost")
	must(t, e1.Release(ctx), "resign")
	if b1.Err() != nil {
		t.Fatalf("Err() = %v after a suspension the session survived", b1.Err())
	}
}

// Close releases every grant, leaves every group, ends every watch; a
// second Close returns nil; every later operation fails with ErrClosed.
func TestClose(t *testing.T) {
	store := newStore(t)
	b, other := open(t, "mem://"+store, "m1"), open(t, "mem://"+store, "m2")
	ctx := testCtx(t)
	for _, g := range []string{"g1", "g2"} {
		must(t, other.CreateGroup(ctx, g), "create group")
		must(t, b.Join(ctx, g, []byte("c")), "join")
	}
	grants := []*backend.Grant{tryLock(t, b, "l1"), tryLock(t, b, "l2"), tryCampaign(t, b, "g1")}
	w, err := b.WatchGroup(ctx, "g1")
	must(t, err, "watch")
	lw, err := b.ObserveLeader(ctx, "g1")
	must(t, err, "observe leader")

	must(t, b.Close(ctx), "close")
	must(t, b.Close(ctx), "second close")
	if !isClosed(b.Done()) {
		t.Fatal("Done is open after Close")
	}
	wantErr(t, b.Err(), backend.ErrClosed, "Err after Close")
	wantErr(t, b.Err(), backend.ErrCanceled, "Err after Close")
	for _, g := range grants {
		if !isClosed(g.Context().Done()) || !errors.Is(context.Cause(g.Context()), backend.ErrClosed) {
			t.Fatalf("grant %q: context cause %v after Close; want ErrClosed", g.Name(), context.Cause(g.Context()))
		}
		wantErr(t, g.Release(ctx), backend.ErrNotHeld, "release after Close")
	}
	for range w.Events() {
	}
	wantErr(t, w.Err(), backend.ErrClosed, "group watch after Close")
	for range lw.Changes() {
	}
	wantErr(t, lw.Err(), backend.ErrClosed, "leader watch after Close")
	for _, l := range []string{"l1", "l2"} {
		if _, held, err := other.LockHolder(ctx, l); err != nil || held {
			t.Fatalf("lock %q after Close: held %v, err %v", l, held, err)
		}
	}
	if _, held, err := other.Leader(ctx, "g1"); err != nil || held {
		t.Fatalf("leader after Close: held %v, err %v", held, err)
	}
	for _, g := range []string{"g1", "g2"} {
		must(t, other.DeleteGroup(ctx, g), "delete a group the closed member had joined")
	}

	ops := []struct {
		name string
		op   func() error
	}{
		{"TryLock", func() error { _, _, err := b.TryLock(ctx, "l", backend.LockOptions{}); return err }},
		{"Lock", func() error { _, err := b.Lock(ctx, "l", backend.LockOptions{}); return err }},
		{"LockHolder", func() error { _, _, err := b.LockHolder(ctx, "l"); return err }},
		{"BreakLock", func() error { _, err := b.BreakLock(ctx, "l"); return err }},
		{"CreateGroup", func() error { return b.CreateGroup(ctx, "g") }},
		{"DeleteGroup", func() error { return b.DeleteGroup(ctx, "g") }},
		{"Groups", func() error { _, err := b.Groups(ctx); return err }},
		{"Join", func() error { return b.Join(ctx, "g", nil) }},
		{"JoinCreate", func() error { return b.JoinCreate(ctx, "g", nil) }},
		{"Leave", func() error { return b.Leave(ctx, "g") }},
		{"Members", func() error { _, err := b.Members(ctx, "g"); return err }},
		{"Member", func() error { _, err := b.Member(ctx, "g", "m"); return err }},
		{"UpdateCapabilities", func() error { return b.UpdateCapabilities(ctx, "g", nil) }},
		{"WatchGroup", func() error { _, err := b.WatchGroup(ctx, "g"); return err }},
		{"TryCampaign", func() error { _, _, err := b.TryCampaign(ctx, "g", backend.LockOptions{}); return err }},
		{"Campaign", func() error { _, err := b.Campaign(ctx, "g", backend.LockOptions{}); return err }},
		{"Leader", func() error { _, _, err := b.Leader(ctx, "g"); return err }},
		{"ObserveLeader", func() error { _, err := b.ObserveLeader(ctx, "g"); return err }},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			err := o.op()
			wantErr(t, err, backend.ErrClosed, o.name+" after Close")
			wantErr(t, err, backend.ErrCanceled, o.name+" after Close")
		})
	}
}

// After the session was lost, Done is closed, Err matches ErrLost and
// stays so after Close, which returns nil.
func TestDoneAfterLoss(t *testing.T) {
	b := open(t, "mem://"+newStore(t), "m1")
	g := tryLock(t, b, "l")
	must(t, membackend.ExpireSession(storeOf(b), "m1"), "expire")
	waitClosed(t, b.Done(), "Done after the session expired")
	wantErr(t, b.Err(), backend.ErrLost, "Err after loss")
	wantErr(t, b.Err(), membackend.ErrSessionExpired, "Err after loss")
	wantErr(t, context.Cause(b.Context()), backend.ErrLost, "context cause after loss")
	_, _, err := b.TryLock(testCtx(t), "x", backend.LockOptions{})
	wantErr(t, err, backend.ErrLost, "TryLock after loss")
	must(t, b.Close(testCtx(t)), "close after loss")
	wantErr(t, b.Err(), backend.ErrLost, "Err after loss and Close")
	if !g.Lost() {
		t.Fatal("the grant is not lost")
	}
}

// A Lock waiting on a Backend that is closed returns ErrClosed and holds
// nothing.
func TestLockEndsWithClose(t *testing.T) {
	for _, scheme := range []string{"mem", pollScheme} {
		t.Run(scheme, func(t *testing.T) {
			store := newStore(t)
			holder := open(t, "mem://"+store, "m1")
			probe := open(t, "mem://"+store, "probe")
			clk := newFakeClock()
			waiter := open(t, scheme+"://"+store, "m2", backend.WithClock(clk))
			g, ok, err := holder.TryLock(testCtx(t), "l", backend.LockOptions{Shared: true})
			if err != nil || !ok {
				t.Fatalf("shared lock: %v %v", ok, err)
			}
			errc := make(chan error, 1)
			go func() {
				g, err := waiter.Lock(context.Background(), "l", backend.LockOptions{})
				release(g)
				errc <- err
			}()
			if scheme == "mem" {
				waitQueued(t, probe, "l")
			} else {
				eventually(t, "the waiter to wait for its next attempt", func() bool {
					return len(clk.deadlines()) > 0
				})
			}
			must(t, waiter.Close(testCtx(t)), "close")
			select {
			case err := <-errc:
				wantErr(t, err, backend.ErrClosed, "Lock ended by Close")
			case <-time.After(wait):
				t.Fatal("Lock did not return after Close")
			}
			must(t, g.Release(testCtx(t)), "release")
			if _, held, err := probe.LockHolder(testCtx(t), "l"); err != nil || held {
				t.Fatalf("the lock is held (%v, %v) after the waiter was closed", held, err)
			}
		})
	}
}

// waitQueued waits until an exclusive waiter is queued for lock name on a
// mem:// store whose lock is held shared: the store then refuses new
// shared grants.
func waitQueued(t testing.TB, probe *backend.Backend, name string) {
	t.Helper()
	eventually(t, "an exclusive waiter to be queued", func() bool {
		g, ok, err := probe.TryLock(testCtx(t), name, backend.LockOptions{Shared: true})
		must(t, err, "probe")
		release(g)
		return !ok
	})
}

// Close with a context already cancelled still releases locally and on
// the server: another member takes the lock at once, not after the TTL.
func TestCloseWithCancelledContext(t *testing.T) {
	store := newStore(t)
	url := "mem://" + store + "?ttl=1h"
	b, other := open(t, url, "m1"), open(t, url, "m2")
	ctx := testCtx(t)
	must(t, other.CreateGroup(ctx, "g"), "create group")
	must(t, b.Join(ctx, "g", nil), "join")
	g := tryLock(t, b, "l")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	must(t, b.Close(cancelled), "close with a cancelled context")
	if !errors.Is(context.Cause(g.Context()), backend.ErrClosed) {
		t.Fatalf("grant cause %v after Close; want ErrClosed", context.Cause(g.Context()))
	}
	if _, ok, err := other.TryLock(ctx, "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("TryLock after the holder closed = %v, %v; want the lock free", ok, err)
	}
	ms, err := other.Members(ctx, "g")
	must(t, err, "members")
	if len(ms) != 0 {
		t.Fatalf("members after Close = %v; want none", ms)
	}
}

// On Redis too, Close with a cancelled context releases the lock on the
// server: a successor takes it at once, not after the TTL.
func TestRedisCloseWithCancelledContext(t *testing.T) {
	url := serverURL(t, "BATON_TEST_REDIS_URL", "redis")
	ns := "namespace=baton-close-" + unique() + "&timeout=60"
	b, other := open(t, url+"?"+ns, "m1"), open(t, url+"?"+ns, "m2")
	ctx := testCtx(t)
	tryLock(t, b, "l")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	must(t, b.Close(cancelled), "close with a cancelled context")
	if _, ok, err := other.TryLock(ctx, "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("TryLock after the holder closed = %v, %v; want the lock free", ok, err)
	}
}

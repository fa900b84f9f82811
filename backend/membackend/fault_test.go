package membackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/membackend"
)

func TestExpireSession(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	victim := openBackend(t, store, "victim")
	other := openBackend(t, store, "other")
	if err := victim.JoinCreate(ctx, "g", []byte("v")); err != nil {
		t.Fatal(err)
	}
	held, err := victim.Lock(ctx, "l", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := other.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waiting := make(chan result[*backend.Grant], 1)
	go func() {
		g, err := other.Lock(ctx, "l", backend.LockOptions{})
		waiting <- result[*backend.Grant]{g, err}
	}()

	name, ok := membackend.StoreName(victim)
	if !ok || name != store {
		t.Fatalf("StoreName = %q, %v; want %q, true", name, ok, store)
	}
	if err := membackend.ExpireSession(store, "victim"); err != nil {
		t.Fatal(err)
	}

	receive(t, victim.Done(), "the victim's Done")
	if err := victim.Err(); !errors.Is(err, backend.ErrLost) || !errors.Is(err, membackend.ErrSessionExpired) {
		t.Errorf("victim.Err() = %v; want ErrLost wrapping ErrSessionExpired", err)
	}
	receive(t, held.Context().Done(), "the grant's context")
	if cause := context.Cause(held.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Errorf("grant cause = %v; want ErrLost", cause)
	}
	r := receive(t, waiting, "the waiter's grant")
	if r.err != nil {
		t.Fatalf("waiter: %v", r.err)
	}
	if r.v.Token() <= held.Token() {
		t.Errorf("successor token %d is not above %d", r.v.Token(), held.Token())
	}
	if ev := nextEvent(t, w); ev.Type != backend.EventLeft || ev.Member.ID != "victim" {
		t.Errorf("event = %v; want victim left", ev)
	}
	if _, err := other.Member(ctx, "g", "victim"); !errors.Is(err, backend.ErrNotMember) {
		t.Errorf("victim still a member: %v", err)
	}
	if _, _, err := victim.TryLock(ctx, "x", backend.LockOptions{}); !errors.Is(err, backend.ErrLost) {
		t.Errorf("TryLock after expiry: %v; want ErrLost", err)
	}
	if err := membackend.ExpireSession(store, "victim"); err != nil {
		t.Errorf("expiring twice: %v", err)
	}
	if err := victim.Close(ctx); err != nil {
		t.Errorf("Close after expiry: %v", err)
	}
	if err := membackend.ExpireSession(store, "victim"); !errors.Is(err, membackend.ErrNoConn) {
		t.Errorf("expiring a closed member: %v; want ErrNoConn", err)
	}
}

func TestExpireSessionConn(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	obs := &recorder{}
	c := openConn(t, store, "m", obs)
	other := openConn(t, store, "o", nil)
	if _, ok, err := other.TryLock(ctx, driver.LockRequest{Key: "k", Member: "o"}); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	watching := make(chan error, 1)
	go func() {
		watching <- c.(driver.HolderWatcher).WatchHolder(ctx, "k", func(driver.Holder, bool) {})
	}()
	waiting := make(chan error, 1)
	go func() {
		_, err := c.(driver.LockWaiter).WaitLock(ctx, driver.LockRequest{Key: "k", Member: "m"})
		waiting <- err
	}()
	eventually(t, "the waiter to queue", func() bool { return membackend.QueueLen(store, "k") == 1 })
	if err := membackend.ExpireSession(store, "m"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan error{watching, waiting} {
		if err := receive(t, ch, "a blocking call to end"); code(t, err) != driver.CodeLost || !errors.Is(err, membackend.ErrSessionExpired) {
			t.Errorf("blocking call ended with %v; want lost", err)
		}
	}
	events, causes := obs.got()
	if len(events) != 1 || events[0] != "lost" || !errors.Is(causes[0], membackend.ErrSessionExpired) {
		t.Errorf("observer got %v %v; want one loss", events, causes)
	}
	if err := membackend.SetUnreachable(store, "m", true); err != nil {
		t.Fatal(err)
	}
	if err := membackend.SetUnreachable(store, "m", false); err != nil {
		t.Fatal(err)
	}
	if events, _ := obs.got(); len(events) != 1 {
		t.Errorf("observer got %v after expiry; want nothing more", events)
	}
	if _, err := c.Groups(ctx); code(t, err) != driver.CodeLost {
		t.Errorf("Groups after expiry: %v; want lost", err)
	}
	// The expired session's grants are not held any more.
	if err := c.Unlock(ctx, "k", 1); code(t, err) != driver.CodeNotHeld || !errors.Is(err, membackend.ErrSessionExpired) {
		t.Errorf("Unlock after expiry: %v; want not held", err)
	}
	if err := c.RefreshLock(ctx, "k", 1, time.Second); code(t, err) != driver.CodeNotHeld {
		t.Errorf("RefreshLock after expiry: %v; want not held", err)
	}
}

func TestSetUnreachable(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	b := openBackend(t, store, "b")
	other := openBackend(t, store, "other")
	g, err := b.Lock(ctx, "l", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	og, err := other.Lock(ctx, "busy", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer og.Release(ctx)
	waiting := make(chan error, 1)
	go func() {
		_, err := b.Lock(ctx, "busy", backend.LockOptions{})
		waiting <- err
	}()
	// The backend keys user locks "l/"+name.
	eventually(t, "the waiter to queue", func() bool { return membackend.QueueLen(store, "l/busy") == 1 })

	if err := membackend.SetUnreachable(store, "b", true); err != nil {
		t.Fatal(err)
	}
	receive(t, g.Context().Done(), "the suspended grant's context")
	// A blip does not end a blocking Lock: it waits on until granted or
	// its context ends (checked below, after the reconnect).
	select {
	case err := <-waiting:
		t.Errorf("blocked Lock ended on a blip: %v", err)
	default:
	}
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Errorf("grant cause = %v; want ErrLost", cause)
	}
	if _, err := b.Groups(ctx); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Groups while unreachable: %v; want ErrUnavailable", err)
	}
	// The store keeps the session: the lock stays held by b.
	if h, ok, err := other.LockHolder(ctx, "l"); err != nil || !ok || h.Member != "b" {
		t.Errorf("holder while b is unreachable = %v %v %v; want b", h, ok, err)
	}
	if b.Err() != nil {
		t.Errorf("backend ended while unreachable: %v", b.Err())
	}

	if err := membackend.SetUnreachable(store, "b", false); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); err != nil && !errors.Is(err, backend.ErrNotHeld) {
		t.Errorf("release after reconnect: %v", err)
	}
	g2, ok, err := b.TryLock(ctx, "l2", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock after reconnect: %v %v", ok, err)
	}
	if g2.Context().Err() != nil {
		t.Errorf("grant after reconnect is already lost: %v", context.Cause(g2.Context()))
	}
	if err := og.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, waiting, "the blocked Lock after the reconnect"); err != nil {
		t.Errorf("blocked Lock after the reconnect and release = %v; want granted", err)
	}
}

func TestSetUnreachableObserver(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	obs := &recorder{}
	c := openConn(t, store, "m", obs)
	watching := make(chan error, 1)
	if err := c.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	snap := make(chan struct{})
	go func() {
		watching <- c.(driver.GroupWatcher).WatchGroup(ctx, "g", func(ev driver.GroupEvent) {
			if ev.Type == driver.GroupSnapshot {
				close(snap)
			}
		})
	}()
	receive(t, snap, "the snapshot")
	for _, on := range []bool{true, true, false, false, true, false} {
		if err := membackend.SetUnreachable(store, "m", on); err != nil {
			t.Fatal(err)
		}
	}
	if err := receive(t, watching, "the watch to end"); code(t, err) != driver.CodeUnavailable {
		t.Errorf("watch ended with %v; want unavailable", err)
	}
	events, causes := obs.got()
	want := []string{"suspended", "resumed", "suspended", "resumed"}
	if len(events) != len(want) {
		t.Fatalf("observer got %v; want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d = %s; want %s", i, events[i], want[i])
		}
	}
	if !errors.Is(causes[0], membackend.ErrUnreachable) {
		t.Errorf("suspension cause = %v; want ErrUnreachable", causes[0])
	}
}

func TestSetDelay(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	c := openConn(t, store, "m", nil)
	const d = 50 * time.Millisecond
	if err := membackend.SetDelay(store, "m", d); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Groups(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("delayed call took %v; want at least %v", took, d)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := c.Groups(short); code(t, err) != driver.CodeDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call with a deadline below the delay: %v; want deadline exceeded", err)
	}
	// Close interrupts a delayed call.
	if err := membackend.SetDelay(store, "m", time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Groups(ctx)
		done <- err
	}()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, done, "the delayed call"); code(t, err) != driver.CodeCanceled || !errors.Is(err, membackend.ErrConnClosed) {
		t.Errorf("delayed call after Close: %v; want canceled", err)
	}
}

func TestFaultInjectionErrors(t *testing.T) {
	store := newStore(t)
	openConn(t, store, "m", nil)
	tests := []struct {
		name string
		give func() error
		want error
	}{
		{"expire unknown store", func() error { return membackend.ExpireSession(store+"-none", "m") }, membackend.ErrNoConn},
		{"expire unknown member", func() error { return membackend.ExpireSession(store, "none") }, membackend.ErrNoConn},
		{"unreachable unknown member", func() error { return membackend.SetUnreachable(store, "none", true) }, membackend.ErrNoConn},
		{"delay unknown member", func() error { return membackend.SetDelay(store, "none", time.Second) }, membackend.ErrNoConn},
		{"delay known member", func() error { return membackend.SetDelay(store, "m", 0) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.give(); !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
		})
	}
	if err := membackend.SetDelay(store, "m", -time.Second); err == nil {
		t.Error("negative delay accepted")
	}
}

// Fault injection addresses every open connection of a member.
func TestFaultInjectionEveryConn(t *testing.T) {
	ctx := testCtx(t)
	store := newStore(t)
	obs1, obs2 := &recorder{}, &recorder{}
	c1 := openConn(t, store, "m", obs1)
	c2 := openConn(t, store, "m", obs2)
	bystander := openConn(t, store, "n", nil)
	if err := membackend.SetUnreachable(store, "m", true); err != nil {
		t.Fatal(err)
	}
	for i, c := range []driver.Conn{c1, c2} {
		if _, err := c.Groups(ctx); code(t, err) != driver.CodeUnavailable {
			t.Errorf("conn %d: %v; want unavailable", i+1, err)
		}
	}
	if _, err := bystander.Groups(ctx); err != nil {
		t.Errorf("bystander: %v", err)
	}
	if err := membackend.ExpireSession(store, "m"); err != nil {
		t.Fatal(err)
	}
	for i, obs := range []*recorder{obs1, obs2} {
		if events, _ := obs.got(); len(events) != 2 || events[0] != "suspended" || events[1] != "lost" {
			t.Errorf("conn %d observer got %v; want suspended, lost", i+1, events)
		}
	}
}

package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// KilledProcessReleasesEverything checks that a process killed with
// SIGKILL while it holds a lock, a leadership and a membership loses all
// of them at once: another process's single TryLock succeeds right after
// the kill, with a larger token, the dead member is no longer listed and
// does not keep its group from being deleted, and a waiter blocked in
// Campaign takes over within 10 s (it logs how soon).
func (c Config) KilledProcessReleasesEverything(t *testing.T) {
	url := c.NewURL(t, "")
	child := c.StartHelper(t, "hold", url, "child", "")
	token, err := strconv.ParseUint(child.Expect("ready")[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	b := Open(t, url, "parent")
	if _, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("try lock held by the child: acquired=%v, %v", ok, err)
	}
	if h, ok, err := b.LockHolder(t.Context(), "l"); err != nil || !ok || h.Member != "child" || h.Token != token {
		t.Fatalf("holder: %+v %v %v, want child with token %d", h, ok, err, token)
	}
	if got := MemberIDs(t, b, "g"); len(got) != 1 || got[0] != "child" {
		t.Fatalf("members before the kill: %q", got)
	}
	type res struct {
		g   *backend.Grant
		at  time.Time
		err error
	}
	waiter := Open(t, url, "waiter")
	ch := make(chan res, 1)
	go func() {
		g, err := waiter.Campaign(t.Context(), "e", backend.LockOptions{})
		ch <- res{g, time.Now(), err}
	}()

	killed := time.Now()
	child.Kill()
	reaped := time.Now()
	g, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock right after the holder was killed: acquired=%v, %v", ok, err)
	}
	if c.LogTakeover {
		t.Logf("lock taken by one TryLock %v after SIGKILL (%v after the holder was reaped)", time.Since(killed), time.Since(reaped))
	}
	if g.Token() <= token {
		t.Fatalf("token %d after the kill is not above the dead holder's %d", g.Token(), token)
	}
	if got := MemberIDs(t, b, "g"); len(got) != 0 {
		t.Fatalf("members right after the kill: %q, want none", got)
	}
	if err := b.DeleteGroup(t.Context(), "g"); err != nil {
		t.Fatalf("delete the dead member's group: %v", err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("campaign after the leader was killed: %v", r.err)
		}
		t.Logf("leadership taken over %v after SIGKILL", r.at.Sub(killed))
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting candidate was not elected within 10s of the leader's death")
	}
}

// ProcessesExcludeEachOther checks that processes incrementing a shared
// counter under one lock (in a store with c.ExcludeQuery) never overlap:
// no increment is lost, and every holder's fencing token is above the
// last one written by any process.
func (c Config) ProcessesExcludeEachOther(t *testing.T) {
	url := c.NewURL(t, c.ExcludeQuery)
	counter := filepath.Join(t.TempDir(), "counter")
	const procs, each = 3, 150
	var hs []*Helper
	for i := range procs {
		hs = append(hs, c.StartHelper(t, "count", url, fmt.Sprintf("p%d", i), fmt.Sprintf("%s %d", counter, each)))
	}
	for i, h := range hs {
		if err := h.Wait(); err != nil {
			t.Fatalf("helper p%d: %v", i, err)
		}
	}
	data, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var last uint64
	if _, err := fmt.Sscanf(string(data), "%d %d", &n, &last); err != nil || n != procs*each {
		t.Fatalf("counter %q: got %d increments, want %d (%v)", data, n, procs*each, err)
	}
}

// SharedLockAcrossProcesses checks that shared locks are shared across
// processes and exclude exclusive ones, and that a killed shared holder's
// hold ends with it.
func (c Config) SharedLockAcrossProcesses(t *testing.T) {
	url := c.NewURL(t, "")
	child := c.StartHelper(t, "hold-shared", url, "child", "")
	child.Expect("ready")
	b := Open(t, url, "parent")
	if _, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("exclusive try lock while shared elsewhere: acquired=%v, %v", ok, err)
	}
	s, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{Shared: true})
	if err != nil || !ok {
		t.Fatalf("shared try lock while shared elsewhere: acquired=%v, %v", ok, err)
	}
	if h, ok, err := b.LockHolder(t.Context(), "l"); err != nil || !ok {
		t.Fatalf("holder of a shared lock: %+v %v %v", h, ok, err)
	}
	child.Kill()
	if err := s.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.LockHolder(t.Context(), "l"); err != nil || ok {
		t.Fatalf("holder after every shared holder left: held=%v, %v", ok, err)
	}
	g, ok, err := b.TryLock(t.Context(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("exclusive try lock after the shared holders left: acquired=%v, %v", ok, err)
	}
	if err := g.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// WatchSeesKilledProcessLeave checks that a group watch (polling every
// c.WatchPoll) sees another process join and, right after its SIGKILL,
// leave; it logs how soon the departure was seen.
func (c Config) WatchSeesKilledProcessLeave(t *testing.T) {
	url := c.NewURL(t, "")
	b := Open(t, url, "watcher", backend.WithPollInterval(c.WatchPoll))
	if err := b.CreateGroup(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	w, err := b.WatchGroup(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	child := c.StartHelper(t, "hold", url, "child", "")
	child.Expect("ready")
	next := func(want backend.EventType) time.Time {
		t.Helper()
		select {
		case ev, ok := <-w.Events():
			if !ok || ev.Type != want || ev.Member.ID != "child" {
				t.Fatalf("event %v (open=%v), want %v of child; watch error %v", ev, ok, want, w.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event within 10s", want)
		}
		return time.Now()
	}
	next(backend.EventJoined)
	killed := time.Now()
	child.Kill()
	t.Logf("departure seen %v after SIGKILL", next(backend.EventLeft).Sub(killed))
}

// LockHandover measures how long a lock takes to pass from a releasing
// process to one blocked in Lock in another process: the time from the
// release call to the waiter's acquisition, as both clocks (one host)
// tell it, reported as µs/handover.
func (c Config) LockHandover(b *testing.B) {
	url := c.NewURL(b, "")
	child := c.StartHelper(b, "pingpong", url, "child", "")
	be := Open(b, url, "parent")
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		g, err := be.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			b.Fatal(err)
		}
		child.Send("go")
		child.Expect("waiting")
		time.Sleep(2 * time.Millisecond) // let the child block in Lock
		released := time.Now()
		if err := g.Release(ctx); err != nil {
			b.Fatal(err)
		}
		at, err := strconv.ParseInt(child.Expect("acquired")[1], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Unix(0, at).Sub(released)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/handover")
	if err := child.CloseStdin(); err != nil {
		b.Fatal(err)
	}
}

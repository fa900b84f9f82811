package filebackend

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Without inotify, WatchGroup and WatchHolder poll every check_interval
// and still report changes.
func TestWatchesPollWithoutNotifications(t *testing.T) {
	dir := t.TempDir()
	q := url.Values{"check_interval": {"5ms"}}
	c1, c2 := openConnAt(t, dir, "m1", q), openConnAt(t, dir, "m2", q)
	c2.nt.close()
	ctx, cancel := context.WithCancel(t.Context())
	if err := c1.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	events := make(chan driver.GroupEvent, 16)
	holders := make(chan driver.Holder, 16)
	done := make(chan error, 2)
	go func() { done <- c2.WatchGroup(ctx, "g", func(ev driver.GroupEvent) { events <- ev }) }()
	go func() {
		done <- c2.WatchHolder(ctx, "k", func(h driver.Holder, held bool) { holders <- h })
	}()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != context.Canceled {
				t.Errorf("watch ended with %v, want context.Canceled", err)
			}
		}
	}()
	next := func() driver.GroupEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no group event within 10s")
			return driver.GroupEvent{}
		}
	}
	if ev := next(); ev.Type != driver.GroupSnapshot || len(ev.Members) != 0 {
		t.Fatalf("first event %+v, want an empty snapshot", ev)
	}
	if err := c1.Join(ctx, "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != driver.MemberJoined || ev.Member.ID != "m1" {
		t.Fatalf("event %+v, want m1 joined", ev)
	}
	if h := <-holders; h.Member != "" {
		t.Fatalf("first holder %+v, want none", h)
	}
	lease, _, err := c1.TryLock(ctx, driver.LockRequest{Key: "k", Member: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-holders:
		if h.Member != "m1" || h.Token != lease.Token {
			t.Fatalf("holder %+v, want m1 with token %d", h, lease.Token)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no holder change within 10s")
	}
}

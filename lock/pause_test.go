package lock_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/redisbackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/lock"
)

// TestHelperPausedHolder is the body of a holder process (it does nothing
// in a normal run): it takes the lock with a 2 s lease and "writes" in a
// tight loop, each write preceded by the Valid check, until the grant is
// gone. A write whose check came more than a second after the previous
// one (the process was paused in between) is reported as acted-after-gap.
func TestHelperPausedHolder(t *testing.T) {
	name := os.Getenv(testutil.HelperEnv)
	if name == "" {
		return
	}
	em := testutil.NewEmitter(name)
	ctx := context.Background()
	b, err := backend.Open(ctx, os.Getenv("BATON_TEST_URL"), backend.WithMemberID(name))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	l, err := lock.New(b, "paused", lock.WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	em.Emit(testutil.Event{Kind: "acquired", Token: l.Token()})
	last := time.Now()
	for {
		before := time.Now()
		if !l.Valid() {
			cause := context.Cause(l.Context())
			kind := "lost"
			if errors.Is(cause, backend.ErrExpired) {
				kind = "lost-expired"
			}
			em.Emit(testutil.Event{Kind: kind, Note: cause.Error()})
			return
		}
		if gap := before.Sub(last); gap > time.Second {
			em.Emit(testutil.Event{Kind: "acted-after-gap", Note: gap.String()})
		}
		last = before
		time.Sleep(time.Millisecond) // the "write"
	}
}

// TestMultiProcessPauseSafe stops a lock holder with SIGSTOP past its
// lease (2 s lease, 3.5 s pause, Redis) and checks that, once resumed,
// it never acts again: its first Valid check after SIGCONT reports the
// grant expired, before any timer of the process had a chance to run.
func TestMultiProcessPauseSafe(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) != "" {
		return
	}
	u := os.Getenv("BATON_TEST_REDIS_URL")
	if u == "" {
		t.Skip("BATON_TEST_REDIS_URL is not set: start redis with scripts/servers.sh")
	}
	u += "?namespace=pause-" + testutil.Unique()
	events := make(chan testutil.Event, 64)
	c := testutil.StartChild(t, "holder", "TestHelperPausedHolder", []string{"BATON_TEST_URL=" + u}, events)
	next := func(what string) testutil.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s event within 30s", what)
		}
		return testutil.Event{}
	}
	if ev := next("acquired"); ev.Kind != "acquired" {
		t.Fatalf("first event %+v; want acquired", ev)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(3500 * time.Millisecond) // the pause itself is the fault
	if err := syscall.Kill(c.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("holder paused %v", time.Since(stopped))
	ev := next("loss")
	if ev.Kind == "acted-after-gap" {
		t.Fatalf("the resumed holder acted after a %s pause past its lease", ev.Note)
	}
	if ev.Kind != "lost-expired" {
		t.Fatalf("event %+v after the pause; want the grant reported expired (ErrExpired)", ev)
	}
	t.Logf("resumed holder: %s", ev.Note)
}

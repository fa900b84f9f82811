package membackend_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// wait bounds every wait of the tests on a condition.
const wait = 10 * time.Second

// newStore returns the name of a mem:// store no other test uses.
var newStore = testutil.StoreName

// testCtx returns a context that ends with the test, or after wait.
func testCtx(t testing.TB) context.Context { return testutil.Context(t, wait) }

// openBackend opens a Backend on store as member and closes it at the end
// of the test.
func openBackend(t testing.TB, store, member string) *backend.Backend {
	t.Helper()
	b, err := backend.Open(context.Background(), "mem://"+store, backend.WithMemberID(member))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// recorder is a driver.SessionObserver recording what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string
	causes []error
}

func (r *recorder) add(ev string, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.causes = append(r.causes, cause)
}

func (r *recorder) Suspended(cause error) { r.add("suspended", cause) }
func (r *recorder) Resumed()              { r.add("resumed", nil) }
func (r *recorder) Lost(cause error)      { r.add("lost", cause) }

func (r *recorder) got() ([]string, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...), append([]error(nil), r.causes...)
}

// openConn opens a raw driver connection on store as member, reporting to
// obs (a fresh recorder when nil), and closes it at the end of the test.
func openConn(t testing.TB, store, member string, obs driver.SessionObserver) driver.Conn {
	t.Helper()
	cfg, err := backend.ParseURL("mem://" + store)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if obs == nil {
		obs = &recorder{}
	}
	c, err := cfg.Driver.Open(context.Background(), &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Path: cfg.Path, Options: cfg.Options,
		Redacted: cfg.Redacted, MemberID: member, Logger: zap.NewNop(), Observer: obs,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// code returns err's driver code, failing the test when it has none.
func code(t testing.TB, err error) driver.Code {
	t.Helper()
	c, ok := driver.CodeOf(err)
	if !ok {
		t.Fatalf("error %v has no driver code", err)
	}
	return c
}

// result is what a goroutine of a test reports.
type result[T any] struct {
	v   T
	err error
}

// receive waits for one value from ch.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// nextEvent returns the next event of a membership watch.
func nextEvent(t testing.TB, w *backend.GroupWatch) backend.Event {
	t.Helper()
	return testutil.NextEvent(t, w, wait)
}

// eventually polls cond until it holds, failing after the test deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

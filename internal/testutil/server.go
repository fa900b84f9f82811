package testutil

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// This file serves the tests of the drivers that run against a real
// server (etcd3://, etcd3+http://, consul://): finding the server, fresh
// namespaces, Backends and raw driver connections closed with the test.
// It imports no driver and no server's client library.

// ServerURL returns the URL of a running server from the environment
// variable envVar; the test fails, with a hint to start product (as
// `scripts/servers.sh start server`), when it is not set.
func ServerURL(t testing.TB, envVar, product, server string) string {
	t.Helper()
	u := os.Getenv(envVar)
	if u == "" {
		t.Fatalf("%s is not set: start %s with `scripts/servers.sh start %s` and load its environment (eval \"$(scripts/servers.sh env)\")", envVar, product, server)
	}
	return u
}

// NamespaceURL returns base with a fresh namespace and the query options
// opts ("k=v"), adding def (a "k=v" default such as "timeout=5") unless
// opts set its key.
func NamespaceURL(base, def string, opts ...string) string {
	key, _, _ := strings.Cut(def, "=")
	u := base + "?namespace=t-" + Unique()
	set := false
	for _, o := range opts {
		u += "&" + o
		set = set || strings.HasPrefix(o, key+"=")
	}
	if !set {
		u += "&" + def
	}
	return u
}

// NamespaceOf returns the namespace option of url, failing the test when
// url does not parse.
func NamespaceOf(t testing.TB, url string) string {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Options.String("namespace")
}

// OpenMember opens a Backend on url as member, giving the open 2*d, and
// closes it when the test ends, giving the close d; a failed close fails
// the test only when the Backend had not already ended on its own.
func OpenMember(t testing.TB, url, member string, d time.Duration, opts ...backend.Option) *backend.Backend {
	t.Helper()
	b, err := backend.Open(Context(t, 2*d), url, append(opts, backend.WithMemberID(member))...)
	if err != nil {
		t.Fatalf("open %s as %q: %v", url, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := b.Close(ctx); err != nil && b.Err() == nil {
			t.Errorf("close %q: %v", member, err)
		}
	})
	return b
}

// SessionRecorder is a driver.SessionObserver recording the losses it is
// told of; safe for concurrent use.
type SessionRecorder struct {
	mu   sync.Mutex
	lost []error
	ch   chan struct{} // closed on the first Lost
}

// NewSessionRecorder returns a SessionRecorder that has recorded nothing.
func NewSessionRecorder() *SessionRecorder { return &SessionRecorder{ch: make(chan struct{})} }

// Suspended ignores a suspension.
func (r *SessionRecorder) Suspended(error) {}

// Resumed ignores a resumption.
func (r *SessionRecorder) Resumed() {}

// Lost records the loss of the session and its cause.
func (r *SessionRecorder) Lost(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lost) == 0 {
		close(r.ch)
	}
	r.lost = append(r.lost, cause)
}

// Done returns a channel closed on the first Lost.
func (r *SessionRecorder) Done() <-chan struct{} { return r.ch }

// Causes returns the causes of every Lost so far, in order.
func (r *SessionRecorder) Causes() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.lost...)
}

// OpenConn opens a raw driver connection on url as member with open (the
// driver's own opener), giving it 2*d, with a no-op logger, the real
// clock and a SessionRecorder as its observer. The connection is closed
// when the test ends, within d.
func OpenConn(t testing.TB, url, member string, d time.Duration, open func(context.Context, *driver.Config) (driver.Conn, error)) (driver.Conn, *SessionRecorder) {
	t.Helper()
	return OpenClockConn(t, url, member, d, open, nil)
}

// OpenClockConn is OpenConn with clk as the connection's clock (the real
// clock when nil).
func OpenClockConn(t testing.TB, url, member string, d time.Duration, open func(context.Context, *driver.Config) (driver.Conn, error),
	clk driver.Clock) (driver.Conn, *SessionRecorder) {
	t.Helper()
	rec := NewSessionRecorder()
	cfg := DriverConfig(t, url, member, clk)
	cfg.Observer = rec
	c, err := open(Context(t, 2*d), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c, rec
}

// CodeIs reports whether err carries the driver code.
func CodeIs(err error, code driver.Code) bool {
	c, ok := driver.CodeOf(err)
	return ok && c == code
}

// WaitClosed blocks until ch is closed, failing the test with "WHAT: not
// within D" after d.
func WaitClosed(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ch:
	case <-tm.C:
		t.Fatalf("%s: not within %v", what, d)
	}
}

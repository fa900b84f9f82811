package consulbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTTL is the session TTL of test connections unless a test sets its
// own (the test agents accept TTLs down to 1 s).
const testTTL = "ttl=5"

// serverURL returns the URL of a running Consul from the environment; the
// test fails, with a hint, when it is not set.
func serverURL(t testing.TB, envVar, server string) string {
	t.Helper()
	u := os.Getenv(envVar)
	if u == "" {
		t.Fatalf("%s is not set: start Consul with `scripts/servers.sh start %s` and load its environment (eval \"$(scripts/servers.sh env)\")", envVar, server)
	}
	return u
}

func singleURL(t testing.TB) string { return serverURL(t, "BATON_TEST_CONSUL_URL", "consul") }

func clusterURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_CONSUL_CLUSTER_URL", "consul-cluster")
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nsURL returns base with a fresh namespace and the query options opts
// ("k=v"), adding testTTL unless opts set a ttl.
func nsURL(base string, opts ...string) string {
	u := base + "?namespace=t-" + unique()
	ttl := false
	for _, o := range opts {
		u += "&" + o
		ttl = ttl || strings.HasPrefix(o, "ttl=")
	}
	if !ttl {
		u += "&" + testTTL
	}
	return u
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	t.Cleanup(cancel)
	return ctx
}

// openBackend opens a Backend as member and closes it when the test ends.
func openBackend(t testing.TB, url, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	b, err := backend.Open(testCtx(t), url, append(opts, backend.WithMemberID(member))...)
	if err != nil {
		t.Fatalf("open %s as %q: %v", url, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil && b.Err() == nil {
			t.Errorf("close %q: %v", member, err)
		}
	})
	return b
}

// recorder is a driver.SessionObserver recording what it is told.
type recorder struct {
	mu   sync.Mutex
	lost []error
	ch   chan struct{} // closed on the first Lost
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) Suspended(error) {}
func (r *recorder) Resumed()        {}
func (r *recorder) Lost(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lost) == 0 {
		close(r.ch)
	}
	r.lost = append(r.lost, cause)
}

// openConn opens a raw driver connection as member and closes it when the
// test ends.
func openConn(t testing.TB, url, member string) (*conn, *recorder) {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	dc, err := open(testCtx(t), &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
		MemberID: member, Logger: zap.NewNop(), Observer: rec, Clock: driver.RealClock{},
	})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	c := dc.(*conn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c, rec
}

// newAdminClient returns a plain Consul client on the agent of url; the
// caller closes its idle connections with the returned function.
func newAdminClient(t testing.TB, url string) (*api.Client, func()) {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	conf := api.DefaultNonPooledConfig()
	conf.Address = cfg.Hosts[0]
	cli, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	return cli, conf.Transport.CloseIdleConnections
}

// namespaceOf returns the namespace option of url.
func namespaceOf(t testing.TB, url string) string {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Options.String("namespace")
}

// destroyMember destroys every session of member in the namespace of
// url, as an operator would (and as an expiry does): the harness's
// ExpireSession. It returns how many sessions it destroyed.
func destroyMember(t testing.TB, url, member string) int {
	t.Helper()
	cli, done := newAdminClient(t, url)
	defer done()
	name := sessionName(namespaceOf(t, url), member)
	ss, _, err := cli.Session().List((&api.QueryOptions{}).WithContext(testCtx(t)))
	if err != nil {
		t.Fatalf("list sessions: %v", err)
	}
	n := 0
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		if _, err := cli.Session().Destroy(s.ID, (&api.WriteOptions{}).WithContext(testCtx(t))); err != nil {
			t.Fatalf("destroy session %s: %v", s.ID, err)
		}
		n++
	}
	return n
}

// eventually polls cond until it holds, failing after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits for ch to close, failing after d.
func waitClosed(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ch:
	case <-tm.C:
		t.Fatalf("%s: not within %v", what, d)
	}
}

// codeIs reports whether err carries the driver code.
func codeIs(err error, code driver.Code) bool {
	c, ok := driver.CodeOf(err)
	return ok && c == code
}

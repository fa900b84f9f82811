package etcdgwbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTimeout is the timeout option (request timeout and lease TTL) of
// test connections unless a test sets its own.
const testTimeout = "timeout=5"

// serverURL returns the URL of a running etcd from the environment; the
// test fails, with a hint, when it is not set.
func serverURL(t testing.TB, envVar, server string) string {
	t.Helper()
	u := os.Getenv(envVar)
	if u == "" {
		t.Fatalf("%s is not set: start etcd with `scripts/servers.sh start %s` and load its environment (eval \"$(scripts/servers.sh env)\")", envVar, server)
	}
	return u
}

// singleURL is the gateway URL of the single etcd.
func singleURL(t testing.TB) string { return serverURL(t, "BATON_TEST_ETCDGW_URL", "etcd") }

// clusterURL is the gateway URL of the 3-member cluster.
func clusterURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_ETCDGW_CLUSTER_URL", "etcd-cluster")
}

// grpcSingleURL and grpcClusterURL are etcd3:// URLs of the same servers.
func grpcSingleURL(t testing.TB) string { return serverURL(t, "BATON_TEST_ETCD_URL", "etcd") }

func grpcClusterURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_ETCD_CLUSTER_URL", "etcd-cluster")
}

// gatewayURL turns an etcd3:// URL into the etcd3+http:// URL of the same
// endpoints.
func gatewayURL(grpcURL string) string {
	return "etcd3+http://" + strings.TrimPrefix(grpcURL, "etcd3://")
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nsURL returns base with a fresh namespace and the query options opts
// ("k=v"), adding testTimeout unless opts set a timeout.
func nsURL(base string, opts ...string) string {
	u := base + "?namespace=t-" + unique()
	timeout := false
	for _, o := range opts {
		u += "&" + o
		timeout = timeout || strings.HasPrefix(o, "timeout=")
	}
	if !timeout {
		u += "&" + testTimeout
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

// adminClient returns a plain etcd client on the servers of url, closed
// when the test ends.
func adminClient(t testing.TB, url string) *clientv3.Client {
	t.Helper()
	cli := newAdminClient(t, url)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// newAdminClient returns a plain etcd client on the servers of url; the
// caller closes it.
func newAdminClient(t testing.TB, url string) *clientv3.Client {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Hosts, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
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

// revokeMember revokes the lease of every session of member in the
// namespace of url, as an operator (or an expiry) would: the harness's
// ExpireSession. It returns how many leases it revoked. Its client is
// closed before it returns (the leak check counts goroutines mid-test).
func revokeMember(t testing.TB, url, member string) int {
	t.Helper()
	cli := newAdminClient(t, url)
	defer cli.Close()
	ctx := testCtx(t)
	ks := newKeyspace(namespaceOf(t, url))
	resp, err := cli.Get(ctx, ks.sessionsPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read sessions: %v", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		if string(kv.Value) != member {
			continue
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("revoke lease %x: %v", kv.Lease, err)
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

package etcdgwbackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTimeout is the timeout option (request timeout and lease TTL) of
// test connections unless a test sets its own.
const testTimeout = "timeout=5"

// singleURL is the gateway URL of the single etcd.
func singleURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCDGW_URL", "etcd", "etcd")
}

// clusterURL is the gateway URL of the 3-member cluster.
func clusterURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCDGW_CLUSTER_URL", "etcd", "etcd-cluster")
}

// grpcSingleURL and grpcClusterURL are etcd3:// URLs of the same servers.
func grpcSingleURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCD_URL", "etcd", "etcd")
}

func grpcClusterURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCD_CLUSTER_URL", "etcd", "etcd-cluster")
}

// gatewayURL turns an etcd3:// URL into the etcd3+http:// URL of the same
// endpoints.
func gatewayURL(grpcURL string) string {
	return "etcd3+http://" + strings.TrimPrefix(grpcURL, "etcd3://")
}

// nsURL returns base with a fresh namespace and the query options opts
// ("k=v"), adding testTimeout unless opts set a timeout.
func nsURL(base string, opts ...string) string {
	return testutil.NamespaceURL(base, testTimeout, opts...)
}

// testCtx returns a context ending with the test or after 2*wait.
func testCtx(t testing.TB) context.Context { return testutil.Context(t, 2*wait) }

// openBackend opens a Backend as member and closes it when the test ends.
func openBackend(t testing.TB, url, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	return testutil.OpenMember(t, url, member, wait, opts...)
}

// openConn opens a raw driver connection as member, with a
// SessionRecorder as its observer, and closes it when the test ends.
func openConn(t testing.TB, url, member string) (*conn, *testutil.SessionRecorder) {
	t.Helper()
	c, rec := testutil.OpenConn(t, url, member, wait, open)
	return c.(*conn), rec
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

// revokeMember revokes the lease of every session of member in the
// namespace of url, as an operator (or an expiry) would: the harness's
// ExpireSession. It returns how many leases it revoked. Its client is
// closed before it returns (the leak check counts goroutines mid-test).
func revokeMember(t testing.TB, url, member string) int {
	t.Helper()
	cli := newAdminClient(t, url)
	defer cli.Close()
	ctx := testCtx(t)
	ks := newKeyspace(testutil.NamespaceOf(t, url))
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

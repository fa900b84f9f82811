package etcdbackend

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/etcdproto"
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTimeout is the timeout option (request timeout and lease TTL) of
// test connections unless a test sets its own.
const testTimeout = "timeout=5"

func singleURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCD_URL", "etcd", "etcd")
}

func clusterURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_ETCD_CLUSTER_URL", "etcd", "etcd-cluster")
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

// revokeMember revokes the lease of every session of member in the
// namespace of url, as an operator (or an expiry) would: the harness's
// ExpireSession. It returns how many leases it revoked.
func revokeMember(t testing.TB, url, member string) int {
	t.Helper()
	return etcdtest.RevokeMember(t, testCtx(t), url, etcdproto.NewKeyspace(testutil.NamespaceOf(t, url)).SessionsPrefix(), member, false)
}

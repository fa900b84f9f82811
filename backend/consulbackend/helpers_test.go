package consulbackend

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTTL is the session TTL of test connections unless a test sets its
// own (the test agents accept TTLs down to 1 s).
const testTTL = "ttl=5"

func singleURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_CONSUL_URL", "Consul", "consul")
}

func clusterURL(t testing.TB) string {
	return testutil.ServerURL(t, "BATON_TEST_CONSUL_CLUSTER_URL", "Consul", "consul-cluster")
}

// nsURL returns base with a fresh namespace and the query options opts
// ("k=v"), adding testTTL unless opts set a ttl.
func nsURL(base string, opts ...string) string {
	return testutil.NamespaceURL(base, testTTL, opts...)
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

// destroyMember destroys every session of member in the namespace of
// url, as an operator would (and as an expiry does): the harness's
// ExpireSession. It returns how many sessions it destroyed.
func destroyMember(t testing.TB, url, member string) int {
	t.Helper()
	cli, done := newAdminClient(t, url)
	defer done()
	name := sessionName(testutil.NamespaceOf(t, url), member)
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

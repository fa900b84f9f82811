package etcd2backend

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// TestMain checks for leaked goroutines after every test. An HTTP
// keep-alive connection that a request handed back to its transport's
// idle pool just after the connection's Close emptied it keeps two
// net/http goroutines until the server drops it: that is the transport's
// pooling, not a goroutine of the driver, so those two are ignored here;
// every goroutine of the driver itself is still checked.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

// testTimeout is the timeout option (request timeout and TTLs) of test
// connections unless a test sets its own.
const testTimeout = "timeout=6"

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

func singleURL(t testing.TB) string { return serverURL(t, "BATON_TEST_ETCD2_URL", "etcd") }

func clusterURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_ETCD2_CLUSTER_URL", "etcd-cluster")
}

// nsURL returns base with a fresh namespace and the query options opts
// ("k=v"), adding testTimeout unless opts set a timeout.
func nsURL(base string, opts ...string) string {
	u := base + "?namespace=t-" + randomID()
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
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

// admin is a plain v2 client on the servers of a URL, for tests that act
// as an operator would.
type admin struct {
	*client
	keys keyspace
}

// newAdmin returns an admin client for url (its namespace too); it is
// closed when the test ends.
func newAdmin(t testing.TB, url string) *admin {
	t.Helper()
	cfg, err := backend.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, h := range cfg.Hosts {
		eps = append(eps, "http://"+h)
	}
	a := &admin{client: newClient(eps, newTransport(5*time.Second), "", "", 5*time.Second), keys: newKeyspace(cfg.Options.String("namespace"))}
	t.Cleanup(a.close)
	return a
}

// expireMember deletes the session keys of member and the member keys
// they wrote, as their expiry would: the harness's ExpireSession. It
// returns how many sessions it found.
func expireMember(t testing.TB, url, member string) int {
	t.Helper()
	a := newAdmin(t, url)
	defer a.close()
	ctx := testCtx(t)
	resp, err := a.get(ctx, a.keys.sessions(), quorum)
	if err != nil {
		t.Fatalf("read sessions: %v", err)
	}
	sessions := map[string]bool{}
	for _, n := range resp.Node.Nodes {
		if n.Value == member {
			sessions[n.Key] = true
		}
	}
	groups, err := a.get(ctx, a.keys.groups(), form("recursive", "true", "quorum", "true"))
	if err == nil {
		for _, g := range groups.Node.Nodes {
			for _, m := range g.Nodes {
				var r memberRecord
				if json.Unmarshal([]byte(m.Value), &r) == nil && sessions[r.Session] {
					if _, err := a.del(ctx, m.Key, nil); err != nil {
						t.Fatalf("delete member key %s: %v", m.Key, err)
					}
				}
			}
		}
	} else if !isCode(err, ecodeKeyNotFound) {
		t.Fatalf("read groups: %v", err)
	}
	for k := range sessions {
		if _, err := a.del(ctx, k, nil); err != nil {
			t.Fatalf("delete session key %s: %v", k, err)
		}
	}
	return len(sessions)
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

// driverConfig turns a parsed URL into the driver's configuration.
func driverConfig(cfg *backend.Config) *driver.Config {
	return &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
		MemberID: "m", Logger: zap.NewNop(), Clock: driver.RealClock{},
	}
}

// isInvalid reports whether err is a driver error coded invalid argument.
func isInvalid(err error) bool {
	c, ok := driver.CodeOf(err)
	return ok && c == driver.CodeInvalidArgument
}

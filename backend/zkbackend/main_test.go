package zkbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// testScheme is the zookeeper driver registered a second time by the
// tests, with an Open that records each connection by URL and member ID,
// so that the harness can expire a Backend's session (the Backend does not
// expose its driver connection). Everything else is the zookeeper://
// driver.
const testScheme = "zktest"

// opened maps URL and member ID (openedKey) to the connections opened
// through testScheme, latest last.
var opened = struct {
	sync.Mutex
	m map[string][]*conn
}{m: map[string][]*conn{}}

// openedKey is the key of opened: tests give every namespace its own URL.
func openedKey(redactedURL, member string) string { return redactedURL + "\x00" + member }

func TestMain(m *testing.M) {
	info := Info()
	info.Name = "ZooKeeper (test recorder)"
	info.Schemes = []string{testScheme}
	info.Open = func(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
		c, err := openConn(ctx, cfg)
		if err != nil {
			return nil, err
		}
		k := openedKey(cfg.Redacted, cfg.MemberID)
		opened.Lock()
		opened.m[k] = append(opened.m[k], c)
		opened.Unlock()
		return c.public(), nil
	}
	backend.Register(info)
	goleak.VerifyTestMain(m)
}

// connOf returns the driver connection of a Backend opened through
// testScheme.
func connOf(t testing.TB, b *backend.Backend) *conn {
	t.Helper()
	opened.Lock()
	defer opened.Unlock()
	var live []*conn
	for _, c := range opened.m[openedKey(b.Config().Redacted, b.MemberID())] {
		if c.check() == nil {
			live = append(live, c)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d live recorded connections for member %q on %s, want 1 (open it with a %s:// URL)", len(live), b.MemberID(), b.Config().Redacted, testScheme)
	}
	return live[0]
}

// serverURL returns the URL in env var name, or fails the test with how to
// start the server.
func serverURL(t testing.TB, name, server string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: start ZooKeeper with `eval \"$(scripts/servers.sh start %s)\"` from the repository root", name, server)
	}
	return u
}

// standaloneURL and ensembleURL return the servers' URLs.
func standaloneURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_ZOOKEEPER_URL", "zookeeper")
}

func ensembleURL(t testing.TB) string {
	return serverURL(t, "BATON_TEST_ZOOKEEPER_ENSEMBLE_URL", "zookeeper-ensemble")
}

// isolate rewrites a server URL for testScheme with a fresh namespace and
// extra query options (key, value pairs). The namespace is deleted when
// the test ends.
func isolate(t testing.TB, raw string, kv ...string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(raw, "zookeeper://")
	if !ok {
		t.Fatalf("unexpected ZooKeeper URL %q", raw)
	}
	ns := "baton-test/" + randomName(t)
	t.Cleanup(func() { removeNamespace(t, rest, "/"+ns) })
	q := url.Values{}
	q.Set("namespace", ns)
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return testScheme + "://" + rest + "?" + q.Encode()
}

func randomName(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// openBackend opens a Backend as member and closes it at the end of the test.
func openBackend(t testing.TB, rawURL, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := backend.Open(ctx, rawURL, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		t.Fatalf("open %s as %q: %v", rawURL, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// testCtx returns a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually checks cond every 10ms until it holds, failing after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

// removeNamespace deletes the znode tree at root, best effort, so that
// test runs do not fill the servers.
func removeNamespace(t testing.TB, hosts, root string) {
	hosts, _, _ = strings.Cut(hosts, "?")
	c, _, err := zk.Connect(strings.Split(strings.TrimSuffix(hosts, "/"), ","), 10*time.Second,
		zk.WithLogInfo(false), zk.WithLogger(zkLogger{zap.NewNop()}))
	if err != nil {
		return
	}
	defer c.Close()
	var del func(p string, depth int)
	del = func(p string, depth int) {
		kids, _, err := c.Children(p)
		if err != nil || depth > 8 {
			return
		}
		for _, k := range kids {
			del(p+"/"+k, depth+1)
		}
		if err := c.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Logf("cleanup: delete %s: %v", p, err)
		}
	}
	del(root, 0)
}

package mysqlbackend

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// testScheme is the mysql driver registered a second time by the tests,
// with an Open that records each connection by URL and member ID, so that
// the harness can kill a Backend's session connection. Everything else is
// the mysql:// driver.
const testScheme = "mysqltest"

var opened = struct {
	sync.Mutex
	m map[string][]*conn
}{m: map[string][]*conn{}}

func openedKey(redactedURL, member string) string { return redactedURL + "\x00" + member }

func TestMain(m *testing.M) {
	info := Info()
	info.Name = "MySQL (test recorder)"
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
		return c.outer(), nil
	}
	backend.Register(info)
	goleak.VerifyTestMain(m)
}

// connOf returns the live driver connection of a Backend opened through
// testScheme.
func connOf(t testing.TB, b *backend.Backend) *conn {
	t.Helper()
	opened.Lock()
	defer opened.Unlock()
	var live []*conn
	for _, c := range opened.m[openedKey(b.Config().Redacted, b.MemberID())] {
		if c.lost() == nil {
			live = append(live, c)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d live recorded connections for member %q, want 1 (open it with a %s:// URL)", len(live), b.MemberID(), testScheme)
	}
	return live[0]
}

// serverURL returns the URL in env var name, or fails the test with how
// to start the server.
func serverURL(t testing.TB, name string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: start MariaDB with `eval \"$(scripts/servers.sh start mysql)\"` from the repository root", name)
	}
	return u
}

func mysqlURL(t testing.TB) string     { return serverURL(t, "BATON_TEST_MYSQL_URL") }
func mysqlRootURL(t testing.TB) string { return serverURL(t, "BATON_TEST_MYSQL_ROOT_URL") }

// isolate rewrites a server URL for testScheme with a fresh namespace and
// extra query options (key, value pairs); the namespace's rows are
// deleted when the test ends.
func isolate(t testing.TB, raw string, kv ...string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(raw, "mysql://")
	if !ok {
		t.Fatalf("unexpected MySQL URL %q", raw)
	}
	rest, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	ns := "t-" + randomName(t)
	q.Set("namespace", ns)
	q.Set("timeout", "5")
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	t.Cleanup(func() { dropNamespace(t, raw, ns, q.Get("table_prefix")) })
	return testScheme + "://" + rest + "?" + q.Encode()
}

func randomName(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// rawDB opens database/sql on a mysql:// URL of the test servers.
func rawDB(t testing.TB, raw string) *sql.DB {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	mc := mysql.NewConfig()
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	mc.Net, mc.Addr = "tcp", u.Host
	if s := u.Query().Get("unix_socket"); s != "" {
		mc.Net, mc.Addr = "unix", s
	}
	mc.DBName = strings.TrimPrefix(u.Path, "/")
	mc.Logger = nopLogger{}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// dropNamespace deletes a test namespace's rows, best effort.
func dropNamespace(t testing.TB, raw, ns, prefix string) {
	if prefix == "" {
		prefix = defaultTablePrefix
	}
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	mc := mysql.NewConfig()
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	mc.Net, mc.Addr, mc.DBName, mc.Logger = "tcp", u.Host, strings.TrimPrefix(u.Path, "/"), nopLogger{}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tbl := range newTables(prefix).all() {
		_, _ = db.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE ns = ?", ns)
	}
}

// killSession kills b's session connection on the server, as a crash or
// a server-side timeout would.
func killSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	c := connOf(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.db.ExecContext(ctx, fmt.Sprintf("KILL %d", c.sid)); err != nil {
		t.Fatalf("kill the session connection of %q: %v", b.MemberID(), err)
	}
}

// openBackend opens a Backend as member and closes it at the end of the test.
func openBackend(t testing.TB, rawURL, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := backend.Open(ctx, rawURL, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		t.Fatalf("open as %q: %v", member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
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

func itoa(i int) string { return strconv.Itoa(i) }

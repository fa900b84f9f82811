package pgbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// testScheme is the postgresql driver registered a second time by the
// tests, with an Open that records each connection by URL and member ID,
// so that the harness can end a Backend's session on the server (the
// Backend does not expose its driver connection).
const testScheme = "pgtest"

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

var opened = struct {
	sync.Mutex
	m map[string][]*conn
}{m: map[string][]*conn{}}

func openedKey(redactedURL, member string) string { return redactedURL + "\x00" + member }

func TestMain(m *testing.M) {
	info := Info()
	info.Name = "PostgreSQL (test recorder)"
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
		return c, nil
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
		if c.check() == nil {
			live = append(live, c)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d live recorded connections for member %q, want 1 (open it with a %s:// URL)", len(live), b.MemberID(), testScheme)
	}
	return live[0]
}

// serverURL returns the test server's URL, or fails with how to start it.
func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("BATON_TEST_POSTGRESQL_URL")
	if u == "" {
		t.Fatalf("BATON_TEST_POSTGRESQL_URL is not set: start PostgreSQL with `eval \"$(scripts/servers.sh start postgresql)\"` from the repository root")
	}
	return u
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withOptions adds query options (key, value pairs) to a URL.
func withOptions(raw string, kv ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// isolate rewrites a server URL for testScheme with a fresh schema and
// extra options; the schema is dropped when the test ends.
func isolate(t testing.TB, raw string, kv ...string) string {
	t.Helper()
	schema := "baton_test_" + unique()
	t.Cleanup(func() { dropSchema(t, raw, schema) })
	u := withOptions(raw, append([]string{"namespace", schema}, kv...)...)
	_, rest, _ := strings.Cut(u, "://")
	return testScheme + "://" + rest
}

// rawConn connects to the server of a postgresql:// URL with pgx alone.
func rawConn(t testing.TB, raw string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatalf("connect %s: %v", raw, err)
	}
	return c
}

// dropSchema drops a test schema, best effort.
func dropSchema(t testing.TB, raw, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := pgx.Connect(ctx, raw)
	if err != nil {
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Logf("cleanup: drop schema %s: %v", schema, err)
	}
}

// terminate ends the session connection of b on the server, as an
// administrator (or the server's idle_session_timeout) would.
func terminate(t testing.TB, b *backend.Backend) {
	t.Helper()
	c := connOf(t, b)
	pid := c.sess.conn.PgConn().PID()
	admin := rawConn(t, serverURL(t))
	defer admin.Close(context.Background())
	var ok bool
	if err := admin.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate session backend %d: %v %v", pid, ok, err)
	}
}

// openBackend opens a Backend as member and closes it when the test ends.
func openBackend(t testing.TB, rawURL, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := backend.Open(ctx, rawURL, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		t.Fatalf("open as %q: %v", member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
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

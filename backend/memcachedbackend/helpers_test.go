package memcachedbackend

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

const startHint = "start the server with `eval \"$(scripts/servers.sh start memcached)\"` (or scripts/with-servers.sh)"

func envURL(t testing.TB, name string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: %s", name, startHint)
	}
	return u
}

// serverURL is the memcached server of scripts/servers.sh.
func serverURL(t testing.TB) string { return envURL(t, "BATON_TEST_MEMCACHED_URL") }

// serversScript is scripts/servers.sh, for fault injection.
func serversScript(t testing.TB) string { return envURL(t, "BATON_SERVERS") }

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withOptions appends query options to a connection string.
func withOptions(u string, opts ...string) string {
	for _, o := range opts {
		if strings.Contains(u, "?") {
			u += "&" + o
		} else {
			u += "?" + o
		}
	}
	return u
}

// freshURL returns base with a namespace no other test uses (plus opts).
func freshURL(t testing.TB, base string, opts ...string) string {
	t.Helper()
	return withOptions(base, append([]string{"namespace=baton-test-" + unique()}, opts...)...)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// openBackend opens a Backend as member and closes it at the end of the
// test.
func openBackend(t testing.TB, u, member string, opts ...backend.Option) *backend.Backend {
	t.Helper()
	b, err := backend.Open(testCtx(t), u, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// settingsOf resolves a Backend's configuration.
func settingsOf(t testing.TB, cfg *backend.Config) *settings {
	t.Helper()
	s, err := parseSettings(&driver.Config{Scheme: cfg.Scheme, Hosts: cfg.Hosts, Path: cfg.Path, Options: cfg.Options})
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	return s
}

// rawClient is a gomemcache client on the servers of s.
func rawClient(s *settings) *memcache.Client {
	return memcache.New(s.servers...)
}

// dumpKeys lists the keys of every server of s that start with prefix
// (lru_crawler metadump; one crawl at a time per server, so a busy
// crawler is asked again).
func dumpKeys(t testing.TB, s *settings, prefix string) []string {
	t.Helper()
	var out []string
	for _, addr := range s.servers {
		var keys []string
		eventually(t, wait, "metadump of "+addr, func() bool {
			var busy bool
			keys, busy = metadump(t, addr, prefix)
			return !busy
		})
		out = append(out, keys...)
	}
	return out
}

// metadump runs one lru_crawler metadump; busy reports a crawl under way.
func metadump(t testing.TB, addr, prefix string) (keys []string, busy bool) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(nc, "lru_crawler metadump all\r\n")
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("metadump: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "END":
			return keys, false
		case strings.HasPrefix(line, "BUSY"):
			return nil, true
		case strings.HasPrefix(line, "ERROR"), strings.HasPrefix(line, "CLIENT_ERROR"), strings.HasPrefix(line, "SERVER_ERROR"):
			t.Fatalf("metadump: %s", line)
		}
		f, _, _ := strings.Cut(line, " ")
		k, ok := strings.CutPrefix(f, "key=")
		if !ok {
			continue
		}
		if k, err = url.QueryUnescape(k); err == nil && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
}

// expireSession makes b's session lost on the server, as if its liveness
// key had expired: it deletes the liveness keys of b's member and the
// locks that member holds.
func expireSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	s := settingsOf(t, b.Config())
	ks := keyspace{ns: s.namespace}
	mc := rawClient(s)
	defer mc.Close()
	for _, k := range dumpKeys(t, s, ks.key(kindSession)+":") {
		if it, err := mc.Get(k); err == nil && string(it.Value) == b.MemberID() {
			_ = mc.Delete(k)
		}
	}
	for _, k := range dumpKeys(t, s, ks.key(kindLock)+":") {
		if it, err := mc.Get(k); err == nil {
			if v, err := parseLockValue(it.Value); err == nil && v.Member == b.MemberID() {
				_ = mc.Delete(k)
			}
		}
	}
}

// eventually waits until cond holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// servers runs scripts/servers.sh with args and returns its output.
func servers(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(serversScript(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("servers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// openConn opens a driver connection (no Backend around it) as member and
// closes it at the end of the test.
func openConn(t testing.TB, u, member string) *conn {
	t.Helper()
	c, _ := testutil.OpenConn(t, u, member, wait, open)
	return c.(*conn)
}

// codeOf returns the driver code of err (CodeInternal when it has none).
func codeOf(err error) driver.Code {
	c, _ := driver.CodeOf(err)
	return c
}

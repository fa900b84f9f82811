package redisbackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// wait bounds every wait of the tests on a condition.
const wait = 20 * time.Second

const startHint = "start the servers with `eval \"$(scripts/servers.sh start redis)\"` (or scripts/with-servers.sh)"

// envURL returns the connection string in the environment variable name;
// the test fails when it is unset.
func envURL(t testing.TB, name string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: %s", name, startHint)
	}
	return u
}

// plainURL is the standalone Redis server of scripts/servers.sh.
func plainURL(t testing.TB) string { return envURL(t, "BATON_TEST_REDIS_URL") }

// sentinelURL reaches the same server through its sentinels.
func sentinelURL(t testing.TB) string { return envURL(t, "BATON_TEST_REDIS_SENTINEL_URL") }

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

// freshURL returns base with a namespace no other test uses (plus opts);
// every key of the namespace is deleted when the test ends.
func freshURL(t testing.TB, base string, opts ...string) string {
	t.Helper()
	u := withOptions(base, append([]string{"namespace=baton-test-" + unique()}, opts...)...)
	cfg, err := backend.ParseURL(u)
	if err != nil {
		t.Fatalf("parse %s: %v", u, err)
	}
	t.Cleanup(func() {
		rdb, ks := rawClient(t, cfg)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		iter := rdb.Scan(ctx, 0, ks.pattern(), 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return u
}

// rawClient opens a go-redis client on the server and namespace of cfg.
func rawClient(t testing.TB, cfg *backend.Config) (redis.UniversalClient, keyspace) {
	t.Helper()
	s, err := parseSettings(&driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options,
	})
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	rdb, _, err := s.newClient()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return rdb, keyspace{ns: s.namespace, db: s.db}
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

// expireSession makes b's session lost on the server, as if its liveness
// key had expired: it deletes the liveness keys of b's member and breaks
// (deletes and publishes) the grants that member holds, exclusive and
// shared.
func expireSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	rdb, ks := rawClient(t, b.Config())
	defer rdb.Close()
	ctx := testCtx(t)
	sc := newScripts()
	scan := func(prefix string, each func(key string)) {
		iter := rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			each(iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatalf("scan: %v", err)
		}
	}
	scan(ks.sessionPrefix(), func(key string) {
		if v, err := rdb.Get(ctx, key).Result(); err == nil && v == b.MemberID() {
			if err := rdb.Del(ctx, key).Err(); err != nil {
				t.Fatalf("delete %s: %v", key, err)
			}
		}
	})
	scan(ks.ns+":l:", func(key string) {
		v, err := rdb.Get(ctx, key).Result()
		if lv, perr := parseLockValue(v); err != nil || perr != nil || lv.member != b.MemberID() {
			return
		}
		name := strings.TrimPrefix(key, ks.ns+":l:")
		if err := sc.breakLock.Run(ctx, rdb, []string{key, ks.readers(name), ks.queue(name), ks.expiries(name)}, ks.lockChannel(name)).Err(); err != nil {
			t.Fatalf("break %s: %v", key, err)
		}
	})
	scan(ks.ns+":r:", func(key string) {
		name := strings.TrimPrefix(key, ks.ns+":r:")
		entries, _ := rdb.ZRange(ctx, key, 0, -1).Result()
		for _, e := range entries {
			if lv, err := parseLockValue(e); err == nil && lv.member == b.MemberID() {
				rdb.ZRem(ctx, key, e)
				rdb.Publish(ctx, ks.lockChannel(name), "B")
			}
		}
	})
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
	return openClockConn(t, u, member, driver.RealClock{})
}

// codeOf returns the driver code of err (CodeInternal when it has none).
func codeOf(err error) driver.Code {
	c, _ := driver.CodeOf(err)
	return c
}

// waitSubscribed waits until someone listens to channel on the server.
func waitSubscribed(t testing.TB, b *backend.Backend, channel func(keyspace) string) {
	t.Helper()
	rdb, ks := rawClient(t, b.Config())
	defer rdb.Close()
	ctx := testCtx(t)
	eventually(t, wait, "a subscriber on "+channel(ks), func() bool {
		n, err := rdb.PubSubNumSub(ctx, channel(ks)).Result()
		return err == nil && n[channel(ks)] > 0
	})
}

package backend_test

// A test of the portable layer against a real Redis: native errors keep
// their cause. The TTL paths themselves are tested hermetically on
// mem:// in lease mode under a fake clock (lease_test.go).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	_ "github.com/baton-go/baton/backend/etcdbackend"
)

// serverURL returns the connection string in the environment variable
// name; the test fails, saying how to start the server, when it is unset.
func serverURL(t testing.TB, name, server string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: start the server with `eval \"$(scripts/servers.sh start %s)\"` (or run the tests under scripts/with-servers.sh)", name, server)
	}
	return u
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withQuery appends query options to a connection string.
func withQuery(u string, opts ...string) string {
	for _, o := range opts {
		if strings.Contains(u, "?") {
			u += "&" + o
		} else {
			u += "?" + o
		}
	}
	return u
}

// redisEnv is a Redis server with an ACL user of the test's own, whose
// permissions the test can take away and give back: a fault confined to
// the test's connections.
type redisEnv struct {
	admin *redis.Client
	user  string
	url   string // as user, in a fresh namespace
}

func newRedisEnv(t *testing.T, opts ...string) *redisEnv {
	t.Helper()
	base := serverURL(t, "BATON_TEST_REDIS_URL", "redis")
	cfg, err := backend.ParseURL(base)
	must(t, err, "parse "+base)
	if len(cfg.Hosts) != 1 {
		t.Fatalf("%s: want a single Redis server", base)
	}
	admin := redis.NewClient(&redis.Options{Addr: cfg.Hosts[0], Username: cfg.Username, Password: cfg.Password})
	e := &redisEnv{admin: admin, user: "baton-test-" + unique()}
	const pw = "pw-of-the-test"
	ns := "baton-test-" + unique()
	ctx := testCtx(t)
	must(t, admin.Do(ctx, "ACL", "SETUSER", e.user, "reset", "on", ">"+pw, "~*", "&*", "+@all").Err(), "create ACL user")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		admin.Do(ctx, "ACL", "DELUSER", e.user)
		iter := admin.Scan(ctx, 0, ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			admin.Del(ctx, iter.Val())
		}
		_ = admin.Close()
	})
	e.url = withQuery("redis://"+e.user+":"+pw+"@"+cfg.Hosts[0], append([]string{"namespace=" + ns}, opts...)...)
	return e
}

// deny takes commands away from the test's user (allow gives them back).
func (e *redisEnv) deny(t *testing.T, cmds ...string) { e.acl(t, "-", cmds) }

func (e *redisEnv) allow(t *testing.T, cmds ...string) { e.acl(t, "+", cmds) }

func (e *redisEnv) acl(t *testing.T, sign string, cmds []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", e.user}
	for _, c := range cmds {
		args = append(args, sign+c)
	}
	must(t, e.admin.Do(testCtx(t), args...).Err(), "ACL SETUSER")
}

// A native error of the driver's client is reachable through the one
// *backend.Error, and a password never shows in it.
func TestRedisNativeError(t *testing.T) {
	e := newRedisEnv(t)
	const pw = "not-the-password"
	u := strings.Replace(e.url, ":pw-of-the-test@", ":"+pw+"@", 1)
	_, err := backend.Open(testCtx(t), u, backend.WithMemberID("m1"))
	if err == nil {
		t.Fatal("open with a wrong password succeeded")
	}
	var native redis.Error
	if !errors.As(err, &native) {
		t.Fatalf("the Redis error is not reachable from %v", err)
	}
	var de *driver.Error
	if !errors.As(err, &de) {
		t.Fatalf("the driver's error is not reachable from %v", err)
	}
	wantOnce(t, err, "open")
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("the error shows the password: %v", err)
	}
}

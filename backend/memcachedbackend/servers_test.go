package memcachedbackend

import (
	"strconv"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend"
)

// twoServersURL lists both memcached servers of scripts/servers.sh.
func twoServersURL(t testing.TB) string {
	t.Helper()
	a := strings.TrimPrefix(serverURL(t), "memcached://")
	b := strings.TrimPrefix(envURL(t, "BATON_TEST_MEMCACHED_SMALL_URL"), "memcached://")
	return "memcached://" + a + "," + b
}

// TestSeveralServers spreads locks, groups and members over two servers
// as gomemcache's ServerList does, and checks that each server holds some
// of them and that two Backends agree on all of them.
func TestSeveralServers(t *testing.T) {
	u := freshURL(t, twoServersURL(t))
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	const n = 24
	for i := range n {
		name := "x" + strconv.Itoa(i)
		if _, ok, err := a.TryLock(ctx, name, backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("lock %s: %v %v", name, ok, err)
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("second lock %s: %v %v; want refused", name, ok, err)
		}
		if err := a.JoinCreate(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
		if err := b.Join(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := b.Groups(ctx)
	if err != nil || len(groups) != n {
		t.Fatalf("groups: %v %v; want %d", groups, err, n)
	}
	for i := range n {
		name := "x" + strconv.Itoa(i)
		ms, err := b.Members(ctx, name)
		if err != nil || len(ms) != 2 || string(ms[0].Capabilities) != name {
			t.Fatalf("members of %s: %+v %v", name, ms, err)
		}
		if h, held, err := b.LockHolder(ctx, name); err != nil || !held || h.Member != "a" {
			t.Fatalf("holder of %s: %+v %v %v", name, h, held, err)
		}
	}
	s := settingsOf(t, a.Config())
	ks := keyspace{ns: s.namespace}
	for _, addr := range s.servers {
		one := *s
		one.servers = []string{addr}
		if keys := dumpKeys(t, &one, ks.key(kindLock)+":"); len(keys) == 0 {
			t.Fatalf("server %s holds no lock of the %d", addr, n)
		}
	}
}

func TestConformanceTwoServers(t *testing.T) {
	testConformance(t, twoServersURL(t))
}

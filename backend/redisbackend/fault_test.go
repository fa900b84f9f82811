package redisbackend

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
)

// The fault tests act on the servers of scripts/servers.sh (restart,
// failover) and wait for real timeouts, so they take seconds each.

// roles returns the addresses of the current master and replica, as the
// first answering sentinel sees them.
func roles(t testing.TB) (master, replica string) {
	t.Helper()
	ctx := testCtx(t)
	for _, addr := range strings.Split(envURL(t, "BATON_TEST_REDIS_SENTINEL_ADDRS"), ",") {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		m, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		rs, err2 := sc.Replicas(ctx, "mymaster").Result()
		_ = sc.Close()
		if err != nil || err2 != nil || len(m) != 2 || len(rs) == 0 {
			continue
		}
		return m[0] + ":" + m[1], rs[0]["ip"] + ":" + rs[0]["port"]
	}
	t.Fatal("no sentinel answers")
	return "", ""
}

// restoreRoles makes the server of BATON_TEST_REDIS_ADDR the master again,
// as the other tests expect.
func restoreRoles(t testing.TB) {
	t.Helper()
	if m, _ := roles(t); m != envURL(t, "BATON_TEST_REDIS_ADDR") {
		servers(t, "redis-failover")
	}
}

func TestServerRestartWithoutPersistence(t *testing.T) {
	restoreRoles(t)
	u := freshURL(t, plainURL(t), "membership_timeout=3", "lock_timeout=3")
	a := openBackend(t, u, "a")
	ctx := testCtx(t)
	g, err := a.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	// The server comes back empty: the lock, the group and the liveness
	// key are gone. Nothing may be kept silently.
	servers(t, "restart", "redis")
	select {
	case <-g.Context().Done():
		if !errors.Is(context.Cause(g.Context()), backend.ErrLost) {
			t.Fatalf("grant cause %v; want ErrLost", context.Cause(g.Context()))
		}
	case <-ctx.Done():
		t.Fatal("a grant whose key the restart lost was kept")
	}
	select {
	case <-a.Done():
		if !errors.Is(a.Err(), backend.ErrLost) {
			t.Fatalf("a.Err() = %v; want ErrLost", a.Err())
		}
	case <-ctx.Done():
		t.Fatal("a session whose key the restart lost was kept")
	}
	// New clients work at once.
	b := openBackend(t, u, "b")
	if _, ok, err := b.TryLock(ctx, "job", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("lock after restart: %v %v", ok, err)
	}
}

func TestServerRestartWithPersistence(t *testing.T) {
	restoreRoles(t)
	u := freshURL(t, plainURL(t), "membership_timeout=6", "lock_timeout=6")
	a, b := openBackend(t, u, "a"), openBackend(t, u, "b")
	ctx := testCtx(t)
	g, err := a.Lock(ctx, "job", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	w, err := b.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rdb, _ := rawClient(t, a.Config())
	defer rdb.Close()
	dir, err := rdb.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	dump := dir["dir"] + "/dump.rdb"
	t.Cleanup(func() { _ = os.Remove(dump) }) // later restarts start empty again
	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	servers(t, "restart", "redis")
	// Clients reconnect; the session, the lock and the membership
	// survived, and the watcher lists the group again.
	if err := b.Join(ctx, "g", []byte("after")); err != nil {
		t.Fatalf("join after restart: %v", err)
	}
	nextEvent(t, ctx, w, is(backend.EventJoined, "b"))
	ms, err := b.Members(ctx, "g")
	if err != nil || len(ms) != 2 {
		t.Fatalf("members after restart = %+v, %v", ms, err)
	}
	if h, held, err := b.LockHolder(ctx, "job"); err != nil || !held || h.Member != "a" || h.Token != g.Token() {
		t.Fatalf("holder after restart: %+v %v %v", h, held, err)
	}
	// Two more refreshes and renewals go through.
	eventually(t, wait, "two lock refreshes after the restart", func() bool {
		p, err := rdb.PTTL(ctx, keyspace{ns: a.Config().Options.String("namespace")}.lock("l/job")).Result()
		return err == nil && p > 5*time.Second
	})
	if g.Context().Err() != nil || a.Err() != nil {
		t.Fatalf("grant or session lost across a restart that kept the data: %v / %v", context.Cause(g.Context()), a.Err())
	}
}

// TestFailoverLosesUnreplicatedLockAndReportsIt cuts the replica off its
// master, takes a lock that therefore never reaches the replica, and fails
// over to the replica. The lock is lost with the write (asynchronous
// replication), but the next grant's token is still above the lost one's
// (the server's clock is the token's floor); the holder must learn of the
// loss at its next refresh, and must not refresh or release the new
// holder's grant. A lock taken before the cut survives.
func TestFailoverLosesUnreplicatedLockAndReportsIt(t *testing.T) {
	u := freshURL(t, sentinelURL(t), "lock_timeout=20")
	restoreRoles(t)
	masterAddr, replicaAddr := roles(t)
	mc := redis.NewClient(&redis.Options{Addr: masterAddr})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replicaAddr})
	defer rc.Close()
	b, c := openBackend(t, u, "b"), openBackend(t, u, "c")
	ks := keyspace{ns: b.Config().Options.String("namespace")}
	ctx := testCtx(t)

	kept, err := b.Lock(ctx, "kept", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the replica has the first lock and both sessions", func() bool {
		n, _ := rc.Exists(ctx, ks.lock("l/kept")).Result()
		keys, _ := rc.Keys(ctx, globEscape(ks.sessionPrefix())+"*").Result()
		return n == 1 && len(keys) == 2
	})

	// Cut replication: the replica cannot authenticate to its master.
	t.Cleanup(func() {
		for _, cl := range []*redis.Client{rc, mc} {
			_ = cl.ConfigSet(context.Background(), "masterauth", "").Err()
			_ = cl.Do(context.Background(), "CONFIG", "REWRITE").Err()
		}
		restoreRoles(t)
	})
	if err := rc.ConfigSet(ctx, "masterauth", "baton-test-cut").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "CLIENT", "KILL", "TYPE", "master").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the replication link to be down", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:down")
	})
	lost, err := b.Lock(ctx, "lost", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Exists(ctx, ks.lock("l/lost")).Result(); n != 0 {
		t.Fatal("the replica got the second lock: replication was not cut")
	}

	servers(t, "redis-failover")
	if m, _ := roles(t); m != replicaAddr {
		t.Fatalf("master is %s after the failover; want %s", m, replicaAddr)
	}
	if err := rc.ConfigSet(ctx, "masterauth", "").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "CONFIG", "REWRITE").Err(); err != nil {
		t.Fatal(err)
	}

	// The new master never saw the second acquisition: c gets the lock,
	// with a token above the one b was given (the counter's increment was
	// lost, the server's clock was not).
	var gc *backend.Grant
	eventually(t, wait, "c to take the lost lock from the new master", func() bool {
		g, ok, err := c.TryLock(ctx, "lost", backend.LockOptions{})
		if ok {
			gc = g
		}
		return err == nil && ok
	})
	if gc.Token() <= lost.Token() {
		t.Fatalf("token after the failover %d is not above the lost grant's %d", gc.Token(), lost.Token())
	}
	select {
	case <-lost.Context().Done():
		if !errors.Is(context.Cause(lost.Context()), backend.ErrLost) {
			t.Fatalf("cause %v; want ErrLost", context.Cause(lost.Context()))
		}
	case <-ctx.Done():
		t.Fatal("the holder of a lock lost by the failover was never told")
	}
	// b's attempt to release the lost grant in the background must not
	// touch c's grant, even with the same token.
	eventually(t, wait, "c to keep its grant", func() bool {
		h, held, err := c.LockHolder(ctx, "lost")
		return err == nil && held && h.Member == "c" && h.Token == gc.Token()
	})
	if err := gc.Release(ctx); err != nil {
		t.Fatalf("c's release: %v", err)
	}
	if kept.Context().Err() != nil || b.Err() != nil {
		t.Fatalf("the replicated lock or the session was lost: %v / %v", context.Cause(kept.Context()), b.Err())
	}
	if h, held, err := c.LockHolder(ctx, "kept"); err != nil || !held || h.Member != "b" || h.Token != kept.Token() {
		t.Fatalf("holder of the replicated lock: %+v %v %v", h, held, err)
	}
}

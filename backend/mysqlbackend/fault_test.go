package mysqlbackend

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// servers runs the server script (BATON_SERVERS) with args.
func servers(t *testing.T, args ...string) {
	t.Helper()
	script := os.Getenv("BATON_SERVERS")
	if script == "" {
		t.Fatalf("BATON_SERVERS is not set: start the server with `eval \"$(scripts/servers.sh start mysql)\"` from the repository root")
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitLost waits until g's context ends and checks its cause.
func waitLost(t *testing.T, g *backend.Grant, d time.Duration) time.Time {
	t.Helper()
	select {
	case <-g.Context().Done():
	case <-time.After(d):
		t.Fatalf("grant not cancelled within %v", d)
	}
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Fatalf("grant cause %v, want ErrLost", cause)
	}
	return time.Now()
}

// TestHelperHolder is the child process of TestFaultKillHolder: it takes
// the lock and joins the group, reports it, and waits to be killed. In the
// test process itself it does nothing.
func TestHelperHolder(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) == "" {
		return
	}
	em := testutil.NewEmitter(os.Getenv(testutil.HelperEnv))
	b := openBackend(t, os.Getenv("BATON_HELPER_URL"), "child")
	ctx := testCtx(t, time.Minute)
	if err := b.JoinCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	em.Emit(testutil.Event{Kind: "locked", Token: g.Token()})
	<-ctx.Done()
}

// kill -9 of a holder process: its connection drops, and the server frees
// its lock and its membership at once; a waiter blocked on the server
// gets the lock with a larger token.
func TestFaultKillHolder(t *testing.T) {
	u := isolate(t, mysqlURL(t))
	w := openBackend(t, u, "waiter")
	events := make(chan testutil.Event, 10)
	child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{"BATON_HELPER_URL=" + u}, events)
	var ev testutil.Event
	select {
	case ev = <-events:
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not take the lock")
	}
	ctx := testCtx(t, time.Minute)
	got := make(chan *backend.Grant, 1)
	go func() {
		g, err := w.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			t.Error(err)
		}
		got <- g
	}()
	root := rawDB(t, mysqlRootURL(t))
	eventually(t, 20*time.Second, "the waiter blocked on the server", func() bool {
		var n int
		err := root.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT GET_LOCK(%, 3600), RELEASE_LOCK(%'`).Scan(&n)
		return err == nil && n > 0
	})
	killed := child.Kill()
	g := <-got
	if g == nil {
		t.FailNow()
	}
	t.Logf("lock granted %v after kill -9 of the holder", time.Since(killed).Round(time.Millisecond))
	if g.Token() <= ev.Token {
		t.Fatalf("token %d not above the killed holder's %d", g.Token(), ev.Token)
	}
	eventually(t, 20*time.Second, "the killed member gone", func() bool {
		ms, err := w.Members(ctx, "g")
		return err == nil && len(ms) == 0
	})
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A server restart under a held lock: the holder's grant is cancelled
// and its Backend lost (a MySQL session does not survive a restart), no
// other session held the lock meanwhile, and a new Backend takes it with
// a larger token (the fencing counter is durable).
func TestFaultServerRestart(t *testing.T) {
	u := isolate(t, mysqlURL(t))
	a := openBackend(t, u, "holder")
	ctx := testCtx(t, 2*time.Minute)
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	cancelled := make(chan time.Time, 1)
	go func() {
		<-g.Context().Done()
		cancelled <- time.Now()
	}()
	start := time.Now()
	servers(t, "restart", "mysql")
	t.Logf("server restarted in %v", time.Since(start).Round(time.Millisecond))
	waitLost(t, g, 30*time.Second)
	at := <-cancelled
	t.Logf("grant cancelled %v after the restart began", at.Sub(start).Round(time.Millisecond))
	select {
	case <-a.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("holder Backend not lost")
	}
	b := openBackend(t, u, "successor")
	g2, err := b.Lock(ctx, "l", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g2.Token() <= g.Token() {
		t.Fatalf("token %d after the restart not above %d", g2.Token(), g.Token())
	}
	t.Logf("lock retaken %v after the restart began", time.Since(start).Round(time.Millisecond))
}

// A blackholed holder (the proxy forwards nothing, both ends keep the
// TCP connection): its grant is cancelled within two thirds of the
// session timeout, and only afterwards, once the server dropped the silent
// session (wait_timeout), does another member get the lock.
func TestFaultBlackhole(t *testing.T) {
	addr := os.Getenv("BATON_TEST_MYSQL_ADDR")
	if addr == "" {
		t.Fatal("BATON_TEST_MYSQL_ADDR is not set: start the server with scripts/servers.sh start mysql")
	}
	p := testutil.StartProxy(t, addr)
	base := mysqlURL(t)
	u := isolate(t, strings.Replace(base, addr, p.Addr(), 1), "timeout", "3")
	direct := strings.Replace(u, p.Addr(), addr, 1)
	a := openBackend(t, u, "holder")
	b := openBackend(t, direct, "other")
	ctx := testCtx(t, time.Minute)
	g, ok, err := a.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	got := make(chan time.Time, 1)
	go func() {
		g2, err := b.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		_ = g2.Release(ctx)
	}()
	cut := time.Now()
	p.Blackhole(true)
	lost := waitLost(t, g, 10*time.Second)
	t.Logf("grant cancelled %v after the cut (session timeout 3s)", lost.Sub(cut).Round(time.Millisecond))
	if lost.Sub(cut) > 2*time.Second+time.Second {
		t.Errorf("grant cancelled after %v, beyond the bound", lost.Sub(cut))
	}
	var took time.Time
	select {
	case took = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the other member never got the lock")
	}
	if took.IsZero() {
		t.FailNow()
	}
	if !took.After(lost) {
		t.Fatalf("the other member got the lock (%v) before the holder's grant was cancelled (%v)", took, lost)
	}
	t.Logf("lock taken over %v after the cut", took.Sub(cut).Round(time.Millisecond))
	p.Heal()
}

// 1,000 members in one group and 10,000 held locks on one Backend, with
// a bounded number of connections.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	// A generous session timeout: 1,001 Backends in one test process
	// (under -race, on a shared machine) must not miss pings.
	u := isolate(t, mysqlURL(t), "timeout", "30")
	ctx := testCtx(t, 20*time.Minute)
	root := rawDB(t, mysqlURL(t))
	count := func() int {
		var n int
		if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'baton'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	b := openBackend(t, u, "holder")
	start := time.Now()
	const nLocks = 10000
	grants := make([]*backend.Grant, 0, nLocks)
	for i := range nLocks {
		g, ok, err := b.TryLock(ctx, "lock-"+itoa(i), backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("try lock %d: %v %v", i, ok, err)
		}
		grants = append(grants, g)
	}
	t.Logf("%d locks taken in %v", nLocks, time.Since(start).Round(time.Millisecond))
	if n := count() - before; n > 1+2*defaultPoolSizeForTest {
		t.Fatalf("%d connections for one Backend holding %d locks", n, nLocks)
	}
	w := openBackend(t, u, "watcher")
	if _, ok, err := w.TryLock(ctx, "lock-9999", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("a held lock was granted again: %v %v", ok, err)
	}
	if err := w.CreateGroup(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	const nMembers = 1000
	start = time.Now()
	for i := range nMembers {
		m := openBackend(t, u, "member-"+itoa(i), backend.WithPollInterval(time.Minute))
		if err := m.Join(ctx, "big", nil); err != nil {
			t.Fatal(err)
		}
		if (i+1)%100 == 0 {
			// Each Backend keeps its session connection and at most one
			// idle pooled connection once its queries are done.
			if n := count() - before; n > 2*(i+1)+2+defaultPoolSizeForTest {
				t.Fatalf("%d connections for %d members and the holder", n, i+1)
			}
		}
	}
	t.Logf("%d members joined in %v", nMembers, time.Since(start).Round(time.Millisecond))
	ms, err := w.Members(ctx, "big")
	if err != nil || len(ms) != nMembers {
		t.Fatalf("members: %d, %v", len(ms), err)
	}
	t.Logf("connections of the test user with %d held locks and %d members: %d", nLocks, nMembers, count()-before)
	for _, g := range grants {
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// defaultPoolSizeForTest is the pool_size default.
const defaultPoolSizeForTest = 8

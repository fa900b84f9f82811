package pgbackend

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
		t.Fatalf("BATON_SERVERS is not set: start the server with `eval \"$(scripts/servers.sh start postgresql)\"` from the repository root")
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
}

// waitCtx waits until ctx is done, failing after d; it returns when.
func waitCtx(t *testing.T, ctx context.Context, d time.Duration, what string) time.Time {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return time.Now()
	case <-timer.C:
		t.Fatalf("%s: not within %v", what, d)
	}
	return time.Time{}
}

// wantLost waits until g is cancelled and checks that the cause is a loss.
func wantLost(t *testing.T, g *backend.Grant, d time.Duration) time.Time {
	t.Helper()
	at := waitCtx(t, g.Context(), d, "grant cancelled")
	if cause := context.Cause(g.Context()); !errors.Is(cause, backend.ErrLost) {
		t.Fatalf("grant cause %v, want ErrLost", cause)
	}
	return at
}

// helperLock is the body of the child process of TestFaultKillHolder: it
// takes the lock and joins the group named by the environment, reports
// it, and waits to be killed.
func helperLock(t *testing.T) {
	url := os.Getenv("BATON_PG_HELPER_URL")
	em := testutil.NewEmitter(os.Getenv(testutil.HelperEnv))
	ctx := context.Background()
	b, err := backend.Open(ctx, url, backend.WithMemberID("child"))
	if err != nil {
		em.Emit(testutil.Event{Kind: "error", Note: err.Error()})
		return
	}
	if err := b.JoinCreate(ctx, "g", nil); err != nil {
		em.Emit(testutil.Event{Kind: "error", Note: err.Error()})
		return
	}
	g, err := b.Lock(ctx, "l", backend.LockOptions{})
	if err != nil {
		em.Emit(testutil.Event{Kind: "error", Note: err.Error()})
		return
	}
	em.Emit(testutil.Event{Kind: "locked", Token: g.Token()})
	select {}
}

func TestHelperProcess(t *testing.T) {
	if os.Getenv(testutil.HelperEnv) == "" {
		return // only a child process runs the helper
	}
	helperLock(t)
}

// kill -9 of the holder's process: its connections drop, the server ends
// its session, and a waiter gets the lock (and a watcher sees the member
// leave) only then, with a larger token.
func TestFaultKillHolder(t *testing.T) {
	url := isolate(t, serverURL(t), "timeout", "5")
	child, ev := startHolder(t, url)
	b, w := openWaiter(t, url)
	if h, ok, err := b.LockHolder(context.Background(), "l"); err != nil || !ok || h.Member != "child" {
		t.Fatalf("holder before the kill: %v %v %v", h, ok, err)
	}
	got := lockLater(t, b)
	select {
	case <-got:
		t.Fatal("the waiter got the lock while its holder was alive")
	case <-time.After(300 * time.Millisecond): // the waiter is blocked
	}
	killed := child.Kill()
	g := grantAfterKill(t, got, ev)
	took := time.Since(killed)
	awaitLeave(t, w, "child")
	t.Logf("killed holder's lock taken over after %v (token %d -> %d); leave seen after %v", took.Round(time.Millisecond), ev.Token, g.Token(), time.Since(killed).Round(time.Millisecond))
	if err := g.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// startHolder starts a child process that opens url as member "child",
// joins group "g" and takes lock "l" (TestHelperProcess), and returns it
// with its "locked" event once it holds the lock.
func startHolder(t *testing.T, url string) (*testutil.Child, testutil.Event) {
	t.Helper()
	plain := "postgresql" + strings.TrimPrefix(url, testScheme)
	events := make(chan testutil.Event, 4)
	child := testutil.StartChild(t, "holder", "TestHelperProcess", []string{"BATON_PG_HELPER_URL=" + plain}, events)
	var ev testutil.Event
	select {
	case ev = <-events:
	case <-time.After(wait):
		t.Fatal("the child did not take the lock")
	}
	if ev.Kind != "locked" {
		t.Fatalf("child: %s %s", ev.Kind, ev.Note)
	}
	return child, ev
}

// openWaiter opens url as member "waiter", watching group "g" (the
// watch is closed at the end of the test).
func openWaiter(t *testing.T, url string) (*backend.Backend, *backend.GroupWatch) {
	t.Helper()
	b := openBackend(t, url, "waiter")
	w, err := b.WatchGroup(testutil.Context(t, time.Minute), "g")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return b, w
}

// lockLater has b wait for lock "l" in the background; the channel gets
// the grant (nil when Lock failed, which fails the test).
func lockLater(t *testing.T, b *backend.Backend) <-chan *backend.Grant {
	got := make(chan *backend.Grant, 1)
	go func() {
		g, err := b.Lock(testutil.Context(t, time.Minute), "l", backend.LockOptions{})
		if err != nil {
			t.Errorf("lock after the kill: %v", err)
		}
		got <- g
	}()
	return got
}

// grantAfterKill returns the waiter's grant, which must come within wait
// of the holder's kill with a token above the killed holder's.
func grantAfterKill(t *testing.T, got <-chan *backend.Grant, killed testutil.Event) *backend.Grant {
	t.Helper()
	var g *backend.Grant
	select {
	case g = <-got:
	case <-time.After(wait):
		t.Fatal("the waiter did not get the lock after the holder was killed")
	}
	if g == nil {
		t.FailNow()
	}
	if g.Token() <= killed.Token {
		t.Fatalf("token %d after the kill is not above the killed holder's %d", g.Token(), killed.Token)
	}
	return g
}

// awaitLeave waits until w reports member's leave.
func awaitLeave(t *testing.T, w *backend.GroupWatch, member string) {
	t.Helper()
	deadline := time.After(wait)
	for left := false; !left; {
		select {
		case e, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			left = e.Type == backend.EventLeft && e.Member.ID == member
		case <-deadline:
			t.Fatalf("%s's leave was not seen", member)
		}
	}
}

// A server restart under a held lock: the holder's grant is cancelled as
// its session is lost, nobody holds the lock twice, and the lock is
// taken again after the restart with a larger token (the counter is
// durable).
func TestFaultServerRestart(t *testing.T) {
	url := isolate(t, serverURL(t), "timeout", "5")
	b1 := openBackend(t, url, "m1")
	g1, ok, err := b1.TryLock(context.Background(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	lost := make(chan time.Time, 1)
	go func() { <-g1.Context().Done(); lost <- time.Now() }()
	start := time.Now()
	servers(t, "restart", "postgresql")
	restarted := time.Since(start)
	wantLost(t, g1, wait)
	lostAt := <-lost
	waitCtx(t, doneCtx(b1), wait, "Backend reports its session lost")
	if !errors.Is(b1.Err(), backend.ErrLost) {
		t.Fatalf("Err %v after the restart, want ErrLost", b1.Err())
	}
	var b2 *backend.Backend
	eventually(t, wait, "a new Backend opens after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := backend.Open(ctx, url, backend.WithMemberID("m2"))
		if err != nil {
			return false
		}
		b2 = b
		return true
	})
	t.Cleanup(func() { _ = b2.Close(context.Background()) })
	g2, err := b2.Lock(testutil.Context(t, wait), "l", backend.LockOptions{})
	if err != nil {
		t.Fatalf("lock after the restart: %v", err)
	}
	if g2.Token() <= g1.Token() {
		t.Fatalf("token after the restart %d is not above %d", g2.Token(), g1.Token())
	}
	t.Logf("restart took %v; holder's grant cancelled %v after the restart began; token %d -> %d",
		restarted.Round(time.Millisecond), lostAt.Sub(start).Round(time.Millisecond), g1.Token(), g2.Token())
}

func doneCtx(b *backend.Backend) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-b.Done(); cancel() }()
	return ctx
}

// A holder cut off by a black hole (every connection through the proxy
// kept open, nothing forwarded): its grant is cancelled within the
// session timeout of its last answered ping, before the server ends its
// session; only then does another member get the lock.
func TestFaultBlackhole(t *testing.T) {
	const ttl = 3 * time.Second
	base := isolate(t, serverURL(t), "timeout", "3")
	addr := os.Getenv("BATON_TEST_POSTGRESQL_ADDR")
	proxy := testutil.StartProxy(t, addr)
	cut := strings.Replace(base, addr, proxy.Addr(), 1)
	b1 := openBackend(t, cut, "m1")
	b2 := openBackend(t, base, "m2")
	g1, ok, err := b1.TryLock(context.Background(), "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	acquired := time.Now()
	got := make(chan time.Time, 1)
	go func() {
		g, err := b2.Lock(testutil.Context(t, time.Minute), "l", backend.LockOptions{})
		if err != nil {
			t.Errorf("lock by the other member: %v", err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		_ = g.Release(context.Background())
	}()
	proxy.Blackhole(true)
	cutAt := time.Now()
	lostAt := wantLost(t, g1, 2*ttl)
	var takenAt time.Time
	select {
	case takenAt = <-got:
	case <-time.After(wait + 2*ttl):
		t.Fatal("the other member did not get the lock")
	}
	if takenAt.IsZero() {
		t.FailNow()
	}
	if !takenAt.After(lostAt) {
		t.Fatalf("the other member got the lock at %v, before the cut-off holder's grant was cancelled at %v", takenAt, lostAt)
	}
	if lostAt.Sub(acquired) > ttl {
		t.Fatalf("grant cancelled %v after it was taken, beyond the session timeout %v", lostAt.Sub(acquired), ttl)
	}
	t.Logf("black hole: grant cancelled %v after the cut (timeout %v), lock taken by the other member %v after the cut, %v after the cancellation",
		lostAt.Sub(cutAt).Round(time.Millisecond), ttl, takenAt.Sub(cutAt).Round(time.Millisecond), takenAt.Sub(lostAt).Round(time.Millisecond))
	proxy.Heal()
}

// kill -9 of the holder's process with a long session timeout (30 s: the
// janitor runs every 10 s, a blocked waiter retries every 30 s): the
// waiter's session watcher, blocked on the holder's session, sees it end
// as the server frees it and runs the janitor at once, so the waiter
// gets the lock, and a watcher of the group sees the killed member leave,
// within a small part of the janitor's period.
func TestFaultKillHolderWatched(t *testing.T) {
	const bound = 3 * time.Second // the janitor's period is 10 s
	url := isolate(t, serverURL(t), "timeout", "30")
	child, ev := startHolder(t, url)
	b, w := openWaiter(t, url)
	if ms := w.Initial(); len(ms) != 1 || ms[0].ID != "child" {
		t.Fatalf("members before the kill: %v", ms)
	}
	got := lockLater(t, b)
	// The waiter is blocked: it counted itself on the lock's row.
	c := connOf(t, b)
	eventually(t, wait, "the waiter counted on the lock's row", func() bool {
		var n int
		err := c.pool.QueryRow(context.Background(), `SELECT waiters FROM `+c.schema+`.locks WHERE name = $1`, userLockPrefix+"l").Scan(&n)
		return err == nil && n == 1
	})
	select {
	case <-got:
		t.Fatal("the waiter got the lock while its holder was alive")
	default:
	}
	// ... and its session watcher waits on the server for the holder's
	// session (before the watcher, nothing waited there).
	var holder int32
	if err := c.pool.QueryRow(context.Background(), `SELECT sid FROM `+c.schema+`.locks WHERE name = $1`, userLockPrefix+"l").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the waiter's session watcher waits for the holder's session", func() bool {
		return watcherPID(t, c, holder) != 0
	})
	killed := child.Kill()
	g := grantAfterKill(t, got, ev)
	took := time.Since(killed)
	if took > bound {
		t.Fatalf("the killed holder's lock was taken over after %v, beyond %v (the janitor runs every 10 s)", took, bound)
	}
	awaitLeave(t, w, "child")
	leave := time.Since(killed)
	if leave > bound {
		t.Fatalf("the killed member's leave was seen after %v, beyond %v", leave, bound)
	}
	t.Logf("killed holder's lock taken over after %v (token %d -> %d); leave seen after %v", took.Round(time.Millisecond), ev.Token, g.Token(), leave.Round(time.Millisecond))
	if err := g.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
)

// admin runs SQL as the test server's superuser.
func admin(t *testing.T, sql string, args ...any) {
	t.Helper()
	c := rawConn(t, serverURL(t))
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A wrong password fails Open with ErrInvalidArgument, and neither the
// password nor the URL's password appears in the error.
func TestWrongPassword(t *testing.T) {
	admin(t, `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'baton_password_test') THEN
			CREATE ROLE baton_password_test LOGIN PASSWORD 'right-horse-battery';
		END IF; END $$`)
	admin(t, `GRANT CREATE ON DATABASE baton TO baton_password_test`)
	addr := os.Getenv("BATON_TEST_POSTGRESQL_ADDR")
	url := "postgresql://baton_password_test:wrong-staple-secret@" + addr + "/baton?sslmode=disable"
	_, err := backend.Open(testutil.Context(t, wait), url, backend.WithMemberID("m"))
	if err == nil {
		t.Fatal("open with a wrong password succeeded (is the server's pg_hba.conf from scripts/servers.sh?)")
	}
	if !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("error %v, want ErrInvalidArgument", err)
	}
	if strings.Contains(err.Error(), "wrong-staple-secret") {
		t.Errorf("error %q shows the password", err)
	}
	if !strings.Contains(err.Error(), "password") {
		t.Errorf("error %q does not say the password was refused", err)
	}
	t.Logf("wrong password: %v", err)
	schema := "pw_" + unique()
	t.Cleanup(func() { dropSchema(t, serverURL(t), schema) })
	b := openBackend(t, "postgresql://baton_password_test:right-horse-battery@"+addr+"/baton?sslmode=disable&namespace="+schema, "m")
	if err := b.CreateGroup(testutil.Context(t, wait), "g"); err != nil {
		t.Fatal(err)
	}
}

// A role without the right to create the schema gets an error naming the
// missing privilege; once an administrator created the schema and granted
// CREATE on it, the same role works (the schema's rights suffice).
func TestMissingCreatePrivilege(t *testing.T) {
	role := "baton_limited_" + unique()
	schema := "limited_" + unique()
	admin(t, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		dropSchema(t, serverURL(t), schema)
		admin(t, "DROP OWNED BY "+role)
		admin(t, "DROP ROLE "+role)
	})
	addr := os.Getenv("BATON_TEST_POSTGRESQL_ADDR")
	url := fmt.Sprintf("postgresql://%s@%s/baton?namespace=%s", role, addr, schema)
	_, err := backend.Open(testutil.Context(t, wait), url, backend.WithMemberID("m"))
	if err == nil {
		t.Fatal("open without the CREATE privilege succeeded")
	}
	if !errors.Is(err, backend.ErrInvalidArgument) || !strings.Contains(err.Error(), "CREATE privilege on the database") {
		t.Fatalf("error %v does not name the missing privilege", err)
	}
	t.Logf("missing privilege: %v", err)
	admin(t, "CREATE SCHEMA "+schema)
	admin(t, "GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role)
	b := openBackend(t, url, "m")
	ctx := testutil.Context(t, wait)
	if err := b.JoinCreate(ctx, "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("lock as the limited role: %v %v", ok, err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// The socket-directory form (host=/dir, as tooz's test URL) works: every
// connection of the Backend goes through the unix socket.
func TestUnixSocket(t *testing.T) {
	dir := os.Getenv("BATON_TEST_POSTGRESQL_SOCKET_DIR")
	if dir == "" {
		t.Fatal("BATON_TEST_POSTGRESQL_SOCKET_DIR is not set: start PostgreSQL with scripts/servers.sh")
	}
	_, port, _ := strings.Cut(os.Getenv("BATON_TEST_POSTGRESQL_ADDR"), ":")
	for _, form := range []string{
		"postgresql://localhost/baton?host=" + dir + "&port=" + port + "&user=postgres",
		"postgresql:///baton?host=" + dir + "&port=" + port + "&user=postgres",
	} {
		t.Run(form, func(t *testing.T) {
			u := isolate(t, form)
			b1, b2 := openBackend(t, u, "m1"), openBackend(t, u, "m2")
			ctx := testutil.Context(t, wait)
			if err := b1.JoinCreate(ctx, "g", nil); err != nil {
				t.Fatal(err)
			}
			w, err := b2.WatchGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := b2.Join(ctx, "g", []byte("c")); err != nil {
				t.Fatal(err)
			}
			if e := <-w.Events(); e.Type != backend.EventJoined || e.Member.ID != "m2" {
				t.Fatalf("event %v, want m2 joined", e)
			}
			g, ok, err := b1.TryLock(ctx, "l", backend.LockOptions{})
			if err != nil || !ok {
				t.Fatalf("lock: %v %v", ok, err)
			}
			if err := g.Release(ctx); err != nil {
				t.Fatal(err)
			}
			var local bool
			if err := connOf(t, b1).pool.QueryRow(ctx, "SELECT inet_client_addr() IS NULL").Scan(&local); err != nil || !local {
				t.Fatalf("the connection is not on the unix socket: %v %v", local, err)
			}
		})
	}
}

// Many processes opening a fresh namespace at once all succeed: the
// schema is created once, whoever comes first.
func TestConcurrentFirstUse(t *testing.T) {
	u := isolate(t, serverURL(t))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := backend.Open(testutil.Context(t, wait), u, backend.WithMemberID(fmt.Sprint("m", i)))
			if err != nil {
				errs <- err
				return
			}
			errs <- b.Close(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// connections counts the server connections whose application_name is app.
func connections(t *testing.T, app string) (conns, advisory int) {
	t.Helper()
	c := rawConn(t, serverURL(t))
	defer c.Close(context.Background())
	err := c.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM pg_stat_activity WHERE application_name = $1),
		(SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND a.application_name = $1)`, app).Scan(&conns, &advisory)
	if err != nil {
		t.Fatal(err)
	}
	return conns, advisory
}

// One Backend holds 10,000 locks with one session connection, one
// listener, at most pool_size other connections and one advisory lock;
// Close frees them all at once.
func TestTenThousandLocks(t *testing.T) {
	app := "baton_locks_" + unique()
	u := isolate(t, serverURL(t), "application_name", app, "pool_size", "4")
	b := openBackend(t, u, "holder")
	other := openBackend(t, u, "other")
	ctx := testutil.Context(t, 5*time.Minute)
	const n = 10000
	start := time.Now()
	for i := range n {
		_, ok, err := b.TryLock(ctx, fmt.Sprint("lock-", i), backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("lock %d: %v %v", i, ok, err)
		}
	}
	took := time.Since(start)
	conns, advisory := connections(t, app)
	if conns > 2*(2+4) || advisory != 2 {
		t.Fatalf("%d connections and %d advisory locks for two Backends holding %d locks; want at most %d and 2", conns, advisory, n, 2*(2+4))
	}
	if _, ok, err := other.TryLock(ctx, "lock-4242", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("another member took a held lock: %v %v", ok, err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 4242, n - 1} {
		if _, ok, err := other.TryLock(ctx, fmt.Sprint("lock-", i), backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("lock %d after the holder closed: %v %v", i, ok, err)
		}
	}
	t.Logf("%d locks taken in %v (%.0f/s); %d connections and %d advisory locks for both Backends", n, took.Round(time.Millisecond), n/took.Seconds(), conns, advisory)
}

// A group of 1,000 members (20 Backends, each holding 50 member rows of
// its session, since each Backend is one member and the test server
// takes 300 connections) is listed and watched; when the Backends end,
// every one of the 1,000 leaves is seen, and no connection is left.
func TestThousandMembers(t *testing.T) {
	app := "baton_members_" + unique()
	u := isolate(t, serverURL(t), "application_name", app, "pool_size", "2")
	ctx := testutil.Context(t, 5*time.Minute)
	watcher := openBackend(t, u, "watcher")
	if err := watcher.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	w, err := watcher.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const backends, per = 20, 50
	var bs []*backend.Backend
	for i := range backends {
		b := openBackend(t, u, fmt.Sprint("b", i))
		bs = append(bs, b)
		c := connOf(t, b)
		batch := &pgx.Batch{}
		for j := range per {
			batch.Queue(c.q.join, "g", fmt.Sprintf("m%03d-%02d", i, j), c.sid, []byte(fmt.Sprint(i, j)))
		}
		if err := c.pool.SendBatch(ctx, batch).Close(); err != nil {
			t.Fatal(err)
		}
	}
	joins := 0
	for joins < backends*per {
		select {
		case e := <-w.Events():
			if e.Type == backend.EventJoined {
				joins++
			}
		case <-time.After(wait):
			t.Fatalf("%d joins seen, want %d", joins, backends*per)
		}
	}
	ms, err := watcher.Members(ctx, "g")
	if err != nil || len(ms) != backends*per {
		t.Fatalf("%d members listed (%v), want %d", len(ms), err, backends*per)
	}
	conns, _ := connections(t, app)
	if conns > (backends+1)*(2+2) {
		t.Fatalf("%d connections for %d Backends", conns, backends+1)
	}
	start := time.Now()
	for _, b := range bs {
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	leaves := 0
	for leaves < backends*per {
		select {
		case e := <-w.Events():
			if e.Type == backend.EventLeft {
				leaves++
			}
		case <-time.After(wait):
			t.Fatalf("%d leaves seen, want %d", leaves, backends*per)
		}
	}
	eventually(t, wait, "the closed Backends' connections gone", func() bool {
		n, _ := connections(t, app)
		return n <= 2+2
	})
	t.Logf("1,000 members: %d connections for 21 Backends; 1,000 leaves seen %v after the Backends closed", conns, time.Since(start).Round(time.Millisecond))
}

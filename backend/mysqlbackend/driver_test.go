package mysqlbackend

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// The unix_socket form (tooz's pifpaf URL shape): the host is ignored.
func TestUnixSocket(t *testing.T) {
	sock := os.Getenv("BATON_TEST_MYSQL_SOCKET")
	if sock == "" {
		t.Fatal("BATON_TEST_MYSQL_SOCKET is not set: start the server with scripts/servers.sh start mysql")
	}
	u, err := url.Parse(mysqlURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "ignored.invalid"
	raw := isolate(t, u.String(), "unix_socket", sock)
	b := openBackend(t, raw, "m1")
	ctx := testCtx(t, time.Minute)
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("try lock over the socket: %v %v", ok, err)
	}
	if err := b.JoinCreate(ctx, "g", []byte("caps")); err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Bad connection strings: each a clear ErrInvalidArgument naming the
// option, before connecting.
func TestBadOptions(t *testing.T) {
	base := isolate(t, mysqlURL(t))
	tests := []struct {
		name, giveQuery, wantKey string
	}{
		{"verify mode", "ssl_verify_mode=maybe", "ssl_verify_mode"},
		{"check hostname", "ssl_check_hostname=ture", "ssl_check_hostname"},
		{"timeout below 1s", "timeout=0.5", "timeout"},
		{"table prefix", "table_prefix=a-b", "table_prefix"},
		{"cipher", "ssl_cipher=NOPE-CIPHER", "ssl_cipher"},
		{"key without cert", "ssl_key=/nonexistent.key", "ssl_key"},
		{"missing CA file", "ssl_ca=/nonexistent/ca.pem", "ssl_ca"},
		{"pool size", "pool_size=0", "pool_size"},
		{"unknown", "lock_timout=5", "lock_timout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			_, err := backend.Open(ctx, base+"&"+tt.giveQuery)
			if !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("error %q does not name %q", err, tt.wantKey)
			}
			if strings.Contains(err.Error(), "baton-pw") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	t.Run("no database", func(t *testing.T) {
		u, _ := url.Parse(base)
		u.Path = ""
		_, err := backend.Open(testCtx(t, 20*time.Second), u.String())
		if !errors.Is(err, backend.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
	})
}

// A wrong password: ErrInvalidArgument, and the password never appears.
func TestWrongPassword(t *testing.T) {
	u, _ := url.Parse(isolate(t, mysqlURL(t)))
	u.User = url.UserPassword(u.User.Username(), "Wr0ng-S3cret")
	_, err := backend.Open(testCtx(t, 20*time.Second), u.String())
	if !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
	if strings.Contains(err.Error(), "Wr0ng-S3cret") {
		t.Fatalf("error shows the password: %v", err)
	}
	t.Logf("error: %v", err)
}

// A user without the CREATE right gets an error naming it while the tables
// are missing, and works once another user created them.
func TestNoCreateRight(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	root := rawDB(t, mysqlRootURL(t))
	user := "ro_" + randomName(t)
	prefix := "p" + randomName(t)
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'ro-pass'",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON baton.* TO '" + user + "'@'%'",
	} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = root.ExecContext(context.Background(), "DROP USER '"+user+"'@'%'")
		dropTables(t, prefix)
	})
	u, _ := url.Parse(mysqlURL(t))
	u.User = url.UserPassword(user, "ro-pass")
	roURL := isolate(t, u.String(), "table_prefix", prefix)
	_, err := backend.Open(ctx, roURL)
	if !errors.Is(err, backend.ErrInvalidArgument) || !strings.Contains(err.Error(), "CREATE privilege") {
		t.Fatalf("got %v, want ErrInvalidArgument naming the CREATE privilege", err)
	}
	t.Logf("error: %v", err)
	openBackend(t, isolate(t, mysqlURL(t), "table_prefix", prefix), "creator")
	schemaReady.Clear()
	b := openBackend(t, roURL, "reader")
	if _, ok, err := b.TryLock(ctx, "l", backend.LockOptions{}); err != nil || !ok {
		t.Fatalf("try lock without the CREATE right: %v %v", ok, err)
	}
}

// Many Backends creating the tables at once (first use by many
// processes): every Open succeeds.
func TestConcurrentSchemaCreation(t *testing.T) {
	prefix := "c" + randomName(t)
	t.Cleanup(func() { dropTables(t, prefix) })
	u := isolate(t, mysqlURL(t), "table_prefix", prefix)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := backend.Open(ctx, u, backend.WithMemberID("m"+itoa(i)))
			if err != nil {
				errs <- err
				return
			}
			errs <- b.Close(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func dropTables(t testing.TB, prefix string) {
	db := rawDB(t, mysqlRootURL(t))
	for _, tbl := range newTables(prefix).all() {
		_, _ = db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+tbl)
	}
}

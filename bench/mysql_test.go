package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/mysqlbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// mysqlBenchURL returns the MariaDB URL of the benchmarks, in a fresh
// namespace.
func mysqlBenchURL(b *testing.B) (string, *url.URL) {
	raw := os.Getenv("BATON_TEST_MYSQL_URL")
	if raw == "" {
		b.Fatal("BATON_TEST_MYSQL_URL is not set: start MariaDB with `eval \"$(scripts/servers.sh start mysql)\"`")
	}
	u, err := url.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	return raw + "?namespace=bench-" + testutil.Unique(), u
}

func openMySQL(b *testing.B, raw, member string, opts ...backend.Option) *backend.Backend {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := backend.Open(ctx, raw, append([]backend.Option{backend.WithMemberID(member)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close(context.Background()) })
	return be
}

// BenchmarkMySQLLock: uncontended acquire+release. baton (TryLock +
// Release) against the raw recipe on one database/sql connection
// (SELECT GET_LOCK(name, 0); SELECT RELEASE_LOCK(name)) and tooz 3.1.
func BenchmarkMySQLLock(b *testing.B) {
	raw, u := mysqlBenchURL(b)
	b.Run("baton", func(b *testing.B) {
		be := openMySQL(b, raw, "bench")
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			g, ok, err := be.TryLock(ctx, "bench-lock", backend.LockOptions{})
			if err != nil || !ok {
				b.Fatalf("try lock: %v %v", ok, err)
			}
			if err := g.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-GET_LOCK", func(b *testing.B) {
		mc := mysql.NewConfig()
		mc.User = u.User.Username()
		mc.Passwd, _ = u.User.Password()
		mc.Net, mc.Addr, mc.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
		mc.InterpolateParams = true
		connector, err := mysql.NewConnector(mc)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		ctx := context.Background()
		c, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		name := "bench-raw-" + testutil.Unique()
		b.ResetTimer()
		for b.Loop() {
			var got, rel int
			if err := c.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil || got != 1 {
				b.Fatalf("GET_LOCK: %v %v", got, err)
			}
			if err := c.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&rel); err != nil || rel != 1 {
				b.Fatalf("RELEASE_LOCK: %v %v", rel, err)
			}
		}
	})
	b.Run("tooz", func(b *testing.B) {
		tu := "mysql://" + u.User.String() + "@" + u.Host + u.Path
		tz := newToozLocker(b, tu)
		ops, took, err := tz.run(time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(took.Nanoseconds())/float64(ops), "tooz-ns/op")
		b.ReportMetric(float64(ops)/took.Seconds(), "tooz-ops/s")
	})
}

// BenchmarkMySQLJoinWatch: the delay from Join returning to the watcher
// seeing the event (poll interval 10ms).
func BenchmarkMySQLJoinWatch(b *testing.B) {
	raw, _ := mysqlBenchURL(b)
	poll := backend.WithPollInterval(10 * time.Millisecond)
	w := openMySQL(b, raw, "watcher", poll)
	j := openMySQL(b, raw, "joiner", poll)
	ctx := context.Background()
	if err := w.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	gw, err := w.WatchGroup(ctx, "g")
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		if err := j.Join(ctx, "g", nil); err != nil {
			b.Fatal(err)
		}
		joined := time.Now()
		for ev := range gw.Events() {
			if ev.Type == backend.EventJoined {
				break
			}
		}
		lat = append(lat, time.Since(joined))
		if err := j.Leave(ctx, "g"); err != nil {
			b.Fatal(err)
		}
		for ev := range gw.Events() {
			if ev.Type == backend.EventLeft {
				break
			}
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, k int) bool { return lat[i] < lat[k] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-join-watch-µs")
}

// The MariaDB target: baton's mysql:// against the raw recipe on one
// database/sql connection (GET_LOCK(name, 0), RELEASE_LOCK: two round
// trips, no fencing token, no membership, no loss signal) and tooz's
// mysql driver. A crash ends the peer's connection, which frees its lock
// at once.
func init() {
	targets = append(targets, &target{
		name: "mysql", env: "BATON_TEST_MYSQL_URL", server: "mysql",
		crashOpts: "timeout=2",
		lockPeer:  "raw GET_LOCK (database/sql)", newLockPeer: newGetLockLocker,
		electPeer: "raw GET_LOCK (wait on the server)", newElectPeer: newGetLockElector, crashPeer: true,
		toozURL: func(s *site) string {
			u, err := url.Parse(s.url)
			if err != nil {
				return s.url
			}
			return "mysql://" + u.User.String() + "@" + u.Host + u.Path
		},
	})
}

// mysqlConn is one database/sql connection (client-side interpolation,
// as baton's driver does) to the site's server, closed when tb ends.
func mysqlConn(tb testing.TB, s *site) *sql.Conn {
	u, err := url.Parse(s.url)
	if err != nil {
		tb.Fatal(err)
	}
	mc := mysql.NewConfig()
	mc.User = u.User.Username()
	mc.Passwd, _ = u.User.Password()
	mc.Net, mc.Addr, mc.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	mc.InterpolateParams = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(connector)
	c, err := db.Conn(context.Background())
	if err != nil {
		_ = db.Close()
		tb.Fatalf("mysql connect %s: %v", redact(s.url), err)
	}
	tb.Cleanup(func() { _ = c.Close(); _ = db.Close() })
	return c
}

// newGetLockLocker is the raw recipe: GET_LOCK(name, 0) then
// RELEASE_LOCK(name) on one connection.
func newGetLockLocker(tb testing.TB, s *site) lockOp {
	c := mysqlConn(tb, s)
	name := "bench-raw-" + testutil.Unique()
	return func(ctx context.Context) error {
		var got, rel sql.NullInt64
		if err := c.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
			return err
		}
		if got.Int64 != 1 {
			return errors.New("mysql: uncontended GET_LOCK failed")
		}
		if err := c.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&rel); err != nil {
			return err
		}
		if rel.Int64 != 1 {
			return errors.New("mysql: RELEASE_LOCK found no lock")
		}
		return nil
	}
}

// newGetLockElector is GET_LOCK waiting on the server (in waits of a
// second, so that a cancelled campaign ends) on a connection of its own;
// RELEASE_LOCK resigns.
func newGetLockElector(tb testing.TB, s *site, _ bool, name string) elector {
	c := mysqlConn(tb, s)
	key := name + ":getlock"
	return funcElector(func(ctx context.Context) (func() error, error) {
		for {
			var got sql.NullInt64
			if err := c.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", key).Scan(&got); err != nil {
				return nil, fmt.Errorf("GET_LOCK: %w", err)
			}
			if got.Int64 == 1 {
				break
			}
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
			defer cancel()
			_, err := c.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", key)
			return err
		}, nil
	})
}

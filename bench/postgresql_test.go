package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/pgbackend"
)

// The PostgreSQL target: baton against pgx's session advisory locks on
// one connection (pg_try_advisory_lock / pg_advisory_unlock, the raw
// recipe, with no fencing token, no membership and no loss signal) and
// against tooz's postgresql driver.
func init() {
	targets = append(targets, &target{
		name: "postgresql", env: "BATON_TEST_POSTGRESQL_URL", server: "postgresql",
		crashOpts: "timeout=2",
		lockPeer:  "pgx pg_try_advisory_lock", newLockPeer: newPgxLocker,
		electPeer: "pgx pg_advisory_lock", newElectPeer: newPgxElector, crashPeer: true,
		toozURL: func(s *site) string { return s.url },
	})
}

// pgxConn is one plain pgx connection to the site's server.
func pgxConn(tb testing.TB, s *site) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.url)
	if err != nil {
		tb.Fatalf("pgx connect %s: %v", redact(s.url), err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// advisoryKey maps a name to a bigint advisory key.
func advisoryKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum64())
}

// newPgxLocker is the raw recipe: pg_try_advisory_lock then
// pg_advisory_unlock on one connection (two round trips).
func newPgxLocker(tb testing.TB, s *site) lockOp {
	c := pgxConn(tb, s)
	key := advisoryKey("bench-" + tb.Name())
	return func(ctx context.Context) error {
		var ok bool
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("pgx: uncontended pg_try_advisory_lock failed")
		}
		if err := c.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("pgx: pg_advisory_unlock found no lock")
		}
		return nil
	}
}

// newPgxElector is pg_advisory_lock (a wait on the server) on a
// connection of its own; pg_advisory_unlock resigns, and a crash ends the
// connection, which frees the lock at once.
func newPgxElector(tb testing.TB, s *site, _ bool, name string) elector {
	c := pgxConn(tb, s)
	key := advisoryKey(name + ":pgx")
	return funcElector(func(ctx context.Context) (func() error, error) {
		if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
			return nil, fmt.Errorf("pg_advisory_lock: %w", err)
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
			defer cancel()
			_, err := c.Exec(ctx, "SELECT pg_advisory_unlock($1)", key)
			return err
		}, nil
	})
}

// BenchmarkPostgreSQLJoinWatch measures the latency from a Join call to
// the watcher's joined event, and from a Leave call to the left event
// (pushed by the members trigger's NOTIFY).
func BenchmarkPostgreSQLJoinWatch(b *testing.B) {
	s := newSite(b, targetNamed("postgresql"))
	rounds := 200
	if n, ok := benchRounds(); ok {
		rounds = n
	}
	measureOnce(b, func(b *testing.B) []metric {
		url := s.batonURL(false)
		watcher, joiner := openBackend(b, url, "watcher"), openBackend(b, url, "joiner")
		ctx := context.Background()
		if err := watcher.CreateGroup(ctx, "g"); err != nil {
			b.Fatal(err)
		}
		w, err := watcher.WatchGroup(ctx, "g")
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		next := func(want backend.EventType) time.Time {
			for {
				select {
				case e, ok := <-w.Events():
					if !ok {
						b.Fatalf("watch ended: %v", w.Err())
					}
					if e.Type == want {
						return time.Now()
					}
				case <-time.After(30 * time.Second):
					b.Fatalf("no %v event", want)
				}
			}
		}
		var joins, leaves []time.Duration
		for range rounds {
			t0 := time.Now()
			if err := joiner.Join(ctx, "g", []byte("caps")); err != nil {
				b.Fatal(err)
			}
			joins = append(joins, next(backend.EventJoined).Sub(t0))
			t0 = time.Now()
			if err := joiner.Leave(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			leaves = append(leaves, next(backend.EventLeft).Sub(t0))
		}
		slices.Sort(joins)
		slices.Sort(leaves)
		b.Logf("join→event p50 %v p99 %v; leave→event p50 %v p99 %v (%d rounds)",
			quantile(joins, 0.5), quantile(joins, 0.99), quantile(leaves, 0.5), quantile(leaves, 0.99), rounds)
		return []metric{
			{float64(quantile(joins, 0.5).Microseconds()), "join-p50-µs"},
			{float64(quantile(joins, 0.99).Microseconds()), "join-p99-µs"},
			{float64(quantile(leaves, 0.5).Microseconds()), "leave-p50-µs"},
		}
	})
}

// benchRounds is N of -benchtime Nx.
func benchRounds() (int, bool) {
	var n int
	if _, err := fmt.Sscanf(benchtime(), "%dx", &n); err == nil && n > 0 {
		return n, true
	}
	return 0, false
}

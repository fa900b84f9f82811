package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/consulbackend"
	"github.com/baton-go/baton/internal/testutil"
)

// The Consul targets: baton's consul:// driver against consul/api's own
// api.Lock (the recipe Consul documents, and the one `consul lock` runs)
// on the dev agent and on the 3-server cluster (every client talks to its
// first member), and tooz 3.1's consul driver (on Debian's
// python3-consul2, the client it requires) with tooz's URL and defaults:
// namespace tooz, ttl 15.
func init() {
	for _, tg := range []*target{
		{
			name: "consul", env: "BATON_TEST_CONSUL_URL", server: "consul",
			crashOpts: "ttl=2",
			lockPeer:  "consul/api api.Lock", newLockPeer: newConsulLocker,
			electPeer: "consul/api api.Lock", newElectPeer: newConsulElector, crashPeer: true,
			toozURL: toozConsulURL,
		},
		{
			name: "consul-cluster", env: "BATON_TEST_CONSUL_CLUSTER_URL", server: "consul-cluster",
			crashOpts: "ttl=2",
			lockPeer:  "consul/api api.Lock", newLockPeer: newConsulLocker,
			electPeer: "consul/api api.Lock", newElectPeer: newConsulElector, crashPeer: true,
			toozURL: toozConsulURL,
		},
	} {
		targets = append(targets, tg)
	}
}

// toozConsulURL is tooz's URL for the site's agent (tooz's consul driver
// takes one agent, as baton's does).
func toozConsulURL(s *site) string { return "consul://" + s.hosts[0] }

// consulClient is a consul/api client of the site's agent; its idle
// connections are closed when tb ends.
func consulClient(tb testing.TB, s *site) *api.Client {
	conf := api.DefaultConfig()
	conf.Address = s.hosts[0]
	cli, err := api.NewClient(conf)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(conf.Transport.CloseIdleConnections)
	return cli
}

// consulSession creates a session of ttl (lock-delay 1 ms, the least
// consul/api can ask for, and no health check, like baton's), renewed by
// consul/api's RenewPeriodic and destroyed when tb ends.
func consulSession(tb testing.TB, cli *api.Client, ttl time.Duration) string {
	id, _, err := cli.Session().Create(&api.SessionEntry{
		Name: "bench-" + testutil.Unique(), TTL: ttl.String(), Behavior: api.SessionBehaviorDelete,
		LockDelay: time.Millisecond, Checks: []string{},
	}, nil)
	if err != nil {
		tb.Fatalf("consul session: %v", err)
	}
	done := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		_ = cli.Session().RenewPeriodic(ttl.String(), id, nil, done)
	}()
	tb.Cleanup(func() {
		close(done) // RenewPeriodic destroys the session when done
		<-renewed
	})
	return id
}

// newConsulLocker is consul/api's api.Lock on one session (TTL 15 s, like
// baton's default): Lock with LockTryOnce, then Unlock.
func newConsulLocker(tb testing.TB, s *site) lockOp {
	cli := consulClient(tb, s)
	sid := consulSession(tb, cli, 15*time.Second)
	l, err := cli.LockOpts(&api.LockOptions{
		Key: "bench-" + testutil.Unique() + "/lock", Session: sid,
		LockTryOnce: true, LockWaitTime: time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return func(ctx context.Context) error {
		ch, err := l.Lock(ctx.Done())
		if err != nil {
			return fmt.Errorf("api.Lock: %w", err)
		}
		if ch == nil {
			return errors.New("api.Lock: uncontended Lock failed")
		}
		return l.Unlock()
	}
}

// newConsulElector is api.Lock as a leader election (what Consul's
// leader-election guide does): Lock blocks until acquired, Unlock
// releases; on a session of its own (TTL 15 s, or the crash TTL).
func newConsulElector(tb testing.TB, s *site, crash bool, name string) elector {
	ttl := 15 * time.Second
	if crash {
		ttl = crashTTL
	}
	cli := consulClient(tb, s)
	sid := consulSession(tb, cli, ttl)
	l, err := cli.LockOpts(&api.LockOptions{Key: name + "/leader", Session: sid})
	if err != nil {
		tb.Fatal(err)
	}
	return funcElector(func(ctx context.Context) (func() error, error) {
		ch, err := l.Lock(ctx.Done())
		if err != nil {
			return nil, fmt.Errorf("api.Lock: %w", err)
		}
		if ch == nil {
			return nil, ctx.Err()
		}
		return l.Unlock, nil
	})
}

// BenchmarkConsulWatchLatency measures how long a membership change takes
// to reach a watcher on another Backend: from the moment member a starts
// its Join until b's watch delivers the joined event (and likewise for
// Leave), on each Consul target. It reports the p50 and p99 of both, and
// the p50 of the Join call itself (one round trip more than the write:
// the join reads the group record first) for scale.
func BenchmarkConsulWatchLatency(b *testing.B) {
	for _, name := range []string{"consul", "consul-cluster"} {
		b.Run(name, func(b *testing.B) {
			s := newSite(b, targetNamed(name))
			url := s.batonURL(false)
			a, w := openBackend(b, url, "a"), openBackend(b, url, "b")
			ctx := context.Background()
			if err := a.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			gw, err := w.WatchGroup(ctx, "g")
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			next := func(want backend.EventType) time.Time {
				for {
					select {
					case ev, ok := <-gw.Events():
						if !ok {
							b.Fatalf("watch ended: %v", gw.Err())
						}
						if ev.Type == want && ev.Member.ID == "a" {
							return time.Now()
						}
					case <-time.After(30 * time.Second):
						b.Fatalf("no %s event", want)
					}
				}
			}
			var joins, leaves, calls []time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := a.Join(ctx, "g", nil); err != nil {
					b.Fatal(err)
				}
				calls = append(calls, time.Since(t0))
				joins = append(joins, next(backend.EventJoined).Sub(t0))
				t1 := time.Now()
				if err := a.Leave(ctx, "g"); err != nil {
					b.Fatal(err)
				}
				leaves = append(leaves, next(backend.EventLeft).Sub(t1))
			}
			b.StopTimer()
			ms := func(ds []time.Duration, q float64) float64 {
				return float64(quantile(ds, q)) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(joins, 0.5), "join-p50-ms")
			b.ReportMetric(ms(joins, 0.99), "join-p99-ms")
			b.ReportMetric(ms(leaves, 0.5), "leave-p50-ms")
			b.ReportMetric(ms(leaves, 0.99), "leave-p99-ms")
			b.ReportMetric(ms(calls, 0.5), "join-call-p50-ms")
		})
	}
}

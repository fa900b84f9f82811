package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

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

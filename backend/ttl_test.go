package backend_test

// Tests of the TTL-liveness paths of the portable layer (the renew loop,
// leases measured from their send time and the safety margin, lock
// refresh), on real TTL drivers: Redis (locks with their own lease) and
// etcd (locks bound to the session's lease). The Backends run on a fake
// clock, so every renewal, refresh and expiry happens exactly when the
// test steps the clock; the servers are real.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	_ "github.com/baton-go/baton/backend/etcdbackend"
)

// serverURL returns the connection string in the environment variable
// name; the test fails, saying how to start the server, when it is unset.
func serverURL(t testing.TB, name, server string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		t.Fatalf("%s is not set: start the server with `eval \"$(scripts/servers.sh start %s)\"` (or run the tests under scripts/with-servers.sh)", name, server)
	}
	return u
}

func unique() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withQuery appends query options to a connection string.
func withQuery(u string, opts ...string) string {
	for _, o := range opts {
		if strings.Contains(u, "?") {
			u += "&" + o
		} else {
			u += "?" + o
		}
	}
	return u
}

// redisEnv is a Redis server with an ACL user of the test's own, whose
// permissions the test can take away and give back: a fault confined to
// the test's connections.
type redisEnv struct {
	admin *redis.Client
	user  string
	url   string // as user, in a fresh namespace
}

func newRedisEnv(t *testing.T, opts ...string) *redisEnv {
	t.Helper()
	base := serverURL(t, "BATON_TEST_REDIS_URL", "redis")
	cfg, err := backend.ParseURL(base)
	must(t, err, "parse "+base)
	if len(cfg.Hosts) != 1 {
		t.Fatalf("%s: want a single Redis server", base)
	}
	admin := redis.NewClient(&redis.Options{Addr: cfg.Hosts[0], Username: cfg.Username, Password: cfg.Password})
	e := &redisEnv{admin: admin, user: "baton-test-" + unique()}
	const pw = "pw-of-the-test"
	ns := "baton-test-" + unique()
	ctx := testCtx(t)
	must(t, admin.Do(ctx, "ACL", "SETUSER", e.user, "reset", "on", ">"+pw, "~*", "&*", "+@all").Err(), "create ACL user")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		admin.Do(ctx, "ACL", "DELUSER", e.user)
		iter := admin.Scan(ctx, 0, ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			admin.Del(ctx, iter.Val())
		}
		_ = admin.Close()
	})
	e.url = withQuery("redis://"+e.user+":"+pw+"@"+cfg.Hosts[0], append([]string{"namespace=" + ns}, opts...)...)
	return e
}

// deny takes commands away from the test's user (allow gives them back).
func (e *redisEnv) deny(t *testing.T, cmds ...string) { e.acl(t, "-", cmds) }

func (e *redisEnv) allow(t *testing.T, cmds ...string) { e.acl(t, "+", cmds) }

func (e *redisEnv) acl(t *testing.T, sign string, cmds []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", e.user}
	for _, c := range cmds {
		args = append(args, sign+c)
	}
	must(t, e.admin.Do(testCtx(t), args...).Err(), "ACL SETUSER")
}

// Renewals extend TTL liveness to their send time plus the TTL; when they
// keep failing until then, the session is lost at exactly that instant,
// with the last renewal's native error reachable.
func TestRedisRenewLoop(t *testing.T) {
	e := newRedisEnv(t, "membership_timeout=30")
	clk := newFakeClock()
	t0 := clk.Now()
	b := open(t, e.url, "m1", backend.WithClock(clk))
	if s := b.Session(); s.Liveness != driver.LivenessTTL || s.TTL != 30*time.Second || s.RenewInterval != 10*time.Second {
		t.Fatalf("session %+v; want TTL liveness, TTL 30s, renewed every 10s", s)
	}
	// A lease long enough not to be refreshed between the last successful
	// renewal and the loss of the session (the refresh script would fail
	// too, without PEXPIRE).
	g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 200 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	lost := func() bool { return isClosed(b.Done()) }
	var lastRenew time.Time
	for clk.Now().Before(t0.Add(95 * time.Second)) {
		at := clk.step(t)
		if at.Sub(t0)%(10*time.Second) == 0 {
			lastRenew = at
		}
	}
	if b.Err() != nil || g.Lost() {
		t.Fatalf("after renewing for %v (three TTLs): Err %v, grant lost %v", clk.Now().Sub(t0), b.Err(), g.Lost())
	}
	e.deny(t, "pexpire")
	until := lastRenew.Add(30 * time.Second)
	for !lost() {
		if !clk.next(t).Before(until) {
			// The server would take a renewal now, but others may have
			// seen this member expire: it must not come back.
			e.allow(t, "pexpire")
		}
		clk.step(t)
		if !lost() && !clk.Now().Before(until) {
			t.Fatalf("at %v, past the liveness of the last renewal (%v), the session is not lost", clk.Now().Sub(t0), until.Sub(t0))
		}
	}
	if at := clk.Now(); !at.Equal(until) {
		t.Fatalf("lost at %v; want at the last renewal's send time plus the TTL, %v", at.Sub(t0), until.Sub(t0))
	}
	wantErr(t, b.Err(), backend.ErrLost, "Err after failing renewals")
	var native redis.Error
	if !errors.As(b.Err(), &native) {
		t.Fatalf("the renewal's Redis error is not reachable from %v", b.Err())
	}
	waitClosed(t, g.Context().Done(), "the grant to end with the session")
	wantErr(t, context.Cause(g.Context()), backend.ErrLost, "grant cause")
}

// A lease is valid from the acquiring request's send time for its TTL; the
// grant is lost the margin before that, when refreshes keep failing.
func TestRedisGrantLostAtMargin(t *testing.T) {
	e := newRedisEnv(t, "membership_timeout=60")
	clk := newFakeClock()
	b := open(t, e.url, "m1", backend.WithClock(clk))
	t0 := clk.Now()
	g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second, Margin: 5 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	if g.TTL() != 30*time.Second || !g.AcquiredAt().Equal(t0) {
		t.Fatalf("grant TTL %v acquired at %v; want 30s at the send time", g.TTL(), g.AcquiredAt().Sub(t0))
	}
	e.deny(t, "evalsha", "eval")
	lossAt := t0.Add(25 * time.Second)
	steps := 0
	for !g.Lost() {
		clk.step(t)
		steps++
		if !g.Lost() && !clk.Now().Before(lossAt) {
			t.Fatalf("at %v the grant is not lost; its lease runs out at 30s with a 5s margin", clk.Now().Sub(t0))
		}
	}
	if !clk.Now().Equal(lossAt) {
		t.Fatalf("lost at %v; want at 25s", clk.Now().Sub(t0))
	}
	if steps < 5 {
		t.Fatalf("only %d clock steps before the loss: the failing refresh was not retried", steps)
	}
	cause := context.Cause(g.Context())
	wantErr(t, cause, backend.ErrLost, "cause")
	if !strings.Contains(cause.Error(), "safety margin") {
		t.Errorf("cause %q does not say the lease ran into the safety margin", cause)
	}
	if b.Err() != nil {
		t.Fatalf("Err() = %v: losing a grant must not end the session", b.Err())
	}
	e.allow(t, "evalsha", "eval")
	wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "release of a lost grant")
}

// Successful refreshes, every third of the TTL, keep a lease valid
// indefinitely; a refresh that fails for a while is retried, and a later
// success extends the lease from its own send time.
func TestRedisRefresh(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		name := "refreshes"
		if failFirst {
			name = "retried after a failure"
		}
		t.Run(name, func(t *testing.T) {
			e := newRedisEnv(t, "membership_timeout=60")
			// A clock far from the wall clock: deadlines must be taken
			// from it as durations, never as wall-clock instants.
			clk := newFakeClockAt(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
			b := open(t, e.url, "m1", backend.WithClock(clk))
			t0 := clk.Now()
			g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second, Margin: 5 * time.Second})
			if err != nil || !ok {
				t.Fatalf("try lock: %v %v", ok, err)
			}
			if failFirst {
				e.deny(t, "evalsha", "eval")
				clk.step(t) // the first refresh, at 10s, fails
				if !clk.Now().Equal(t0.Add(10 * time.Second)) {
					t.Fatalf("first step to %v; want the refresh at 10s", clk.Now().Sub(t0))
				}
				e.allow(t, "evalsha", "eval")
			}
			for clk.Now().Before(t0.Add(100 * time.Second)) {
				clk.step(t)
				if g.Lost() {
					t.Fatalf("grant lost at %v: %v", clk.Now().Sub(t0), context.Cause(g.Context()))
				}
			}
			h, held, err := b.LockHolder(testCtx(t), "l")
			if err != nil || !held || h.Token != g.Token() {
				t.Fatalf("holder %+v (%v, %v); want the refreshed grant %d", h, held, err, g.Token())
			}
			must(t, g.Release(testCtx(t)), "release")
		})
	}
}

// A refresh that finds the lock gone (broken by an administrator) loses
// the grant at once, and Release then reports ErrNotHeld.
func TestRedisRefreshFindsLockBroken(t *testing.T) {
	e := newRedisEnv(t, "membership_timeout=60")
	clk := newFakeClock()
	b := open(t, e.url, "m1", backend.WithClock(clk))
	admin := open(t, e.url, "admin")
	t0 := clk.Now()
	g, ok, err := b.TryLock(testCtx(t), "l", backend.LockOptions{TTL: 30 * time.Second})
	if err != nil || !ok {
		t.Fatalf("try lock: %v %v", ok, err)
	}
	broke, err := admin.BreakLock(testCtx(t), "l")
	if err != nil || !broke {
		t.Fatalf("break lock: %v %v", broke, err)
	}
	for !g.Lost() {
		clk.step(t)
		if !g.Lost() && !clk.Now().Before(t0.Add(10*time.Second)) {
			t.Fatalf("the refresh at %v did not lose the broken grant", clk.Now().Sub(t0))
		}
	}
	wantErr(t, context.Cause(g.Context()), backend.ErrLost, "cause")
	wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "release of a broken grant")
}

// Margins are checked against the session TTL at Open, against the TTL
// asked for before acquiring, and against the lease granted after.
func TestRedisMargins(t *testing.T) {
	e := newRedisEnv(t, "membership_timeout=30", "lock_timeout=5")
	ctx := testCtx(t)
	_, err := backend.Open(ctx, e.url, backend.WithSafetyMargin(30*time.Second))
	wantErr(t, err, backend.ErrInvalidArgument, "open with a margin of the whole session TTL")

	b := open(t, e.url, "m1", backend.WithSafetyMargin(10*time.Second))
	other := open(t, e.url, "m2")
	_, _, err = b.TryLock(ctx, "l", backend.LockOptions{TTL: 5 * time.Second, Margin: 5 * time.Second})
	wantErr(t, err, backend.ErrInvalidArgument, "margin equal to the TTL asked for")
	_, _, err = b.TryLock(ctx, "l", backend.LockOptions{})
	wantErr(t, err, backend.ErrInvalidArgument, "Backend margin above the granted lease (lock_timeout 5s)")
	g := tryLock(t, other, "l") // nothing was left held
	must(t, g.Release(ctx), "release")
	g, ok, err := b.TryLock(ctx, "l", backend.LockOptions{TTL: 20 * time.Second})
	if err != nil || !ok || g.TTL() != 20*time.Second {
		t.Fatalf("lock with a lease above the margin: %v %v", ok, err)
	}
	must(t, g.Release(ctx), "release")
}

// A native error of the driver's client is reachable through the one
// *backend.Error, and a password never shows in it.
func TestRedisNativeError(t *testing.T) {
	e := newRedisEnv(t)
	const pw = "not-the-password"
	u := strings.Replace(e.url, ":pw-of-the-test@", ":"+pw+"@", 1)
	_, err := backend.Open(testCtx(t), u, backend.WithMemberID("m1"))
	if err == nil {
		t.Fatal("open with a wrong password succeeded")
	}
	var native redis.Error
	if !errors.As(err, &native) {
		t.Fatalf("the Redis error is not reachable from %v", err)
	}
	var de *driver.Error
	if !errors.As(err, &de) {
		t.Fatalf("the driver's error is not reachable from %v", err)
	}
	wantOnce(t, err, "open")
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// A lock bound to a TTL session (etcd: a key of the session's lease) is
// valid while the session is: renewals move its loss instant, and it is
// lost the margin before the session's liveness runs out.
func TestEtcdSessionBoundGrant(t *testing.T) {
	base := serverURL(t, "BATON_TEST_ETCD_URL", "etcd")
	u := withQuery(base, "namespace=baton-test-"+unique(), "membership_timeout=30", "lock_timeout=30", "timeout=5")
	t.Run("renewals keep it", func(t *testing.T) {
		clk := newFakeClock()
		t0 := clk.Now()
		b := open(t, u, "m1", backend.WithClock(clk))
		if s := b.Session(); s.Liveness != driver.LivenessTTL || s.TTL < 30*time.Second {
			t.Fatalf("session %+v; want TTL liveness of at least 30s", s)
		}
		g := tryCampaign(t, b, "g")
		if g.TTL() != 0 {
			t.Fatalf("leadership TTL %v; want 0 (bound to the session)", g.TTL())
		}
		for clk.Now().Before(t0.Add(3 * b.Session().TTL)) {
			clk.step(t)
			if g.Lost() {
				t.Fatalf("leadership lost at %v while renewals succeed: %v", clk.Now().Sub(t0), context.Cause(g.Context()))
			}
		}
		must(t, g.Release(testCtx(t)), "resign")
	})
	t.Run("lost the margin before liveness ends", func(t *testing.T) {
		clk := newFakeClock()
		t0 := clk.Now()
		// With a margin of 25s of the 30s TTL, the grant is in doubt 5s
		// after Open, before the first renewal is due (at 10s).
		b := open(t, u, "m1", backend.WithClock(clk), backend.WithSafetyMargin(25*time.Second))
		other := open(t, u, "m2")
		ttl := b.Session().TTL
		g := tryCampaign(t, b, "g")
		clk.step(t)
		if !g.Lost() || !clk.Now().Equal(t0.Add(ttl-25*time.Second)) {
			t.Fatalf("at %v: lost %v (%v; session: %v); want lost at TTL minus the margin, %v",
				clk.Now().Sub(t0), g.Lost(), context.Cause(g.Context()), b.Err(), ttl-25*time.Second)
		}
		wantErr(t, context.Cause(g.Context()), backend.ErrLost, "cause")
		if b.Err() != nil {
			t.Fatalf("Err() = %v; the session itself is not lost", b.Err())
		}
		// The term in doubt was given up on the server: another member
		// takes over without waiting for the session's TTL.
		l, err := other.Campaign(testCtx(t), "g", backend.LockOptions{})
		must(t, err, "campaign after the leader's term was lost")
		if l.Token() <= g.Token() {
			t.Fatalf("term token %d not above the lost term's %d", l.Token(), g.Token())
		}
		wantErr(t, g.Release(testCtx(t)), backend.ErrNotHeld, "resign a lost term")
	})
}

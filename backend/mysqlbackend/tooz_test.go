package mysqlbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/tooztest"
)

// wait bounds every wait of the tooz tests on a condition.
const toozWait = 20 * time.Second

// toozURL is tooz's URL of the test server: the same form.
func toozURL(t testing.TB) string { return mysqlURL(t) }

// toozMode returns an isolated baton URL in compat=tooz mode.
func toozMode(t testing.TB, kv ...string) string {
	return isolate(t, mysqlURL(t), append([]string{"compat", "tooz"}, kv...)...)
}

// TestToozConformance runs the conformance suite in compat=tooz mode.
func TestToozConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string {
			return toozSuiteScheme + strings.TrimPrefix(toozMode(t), testScheme)
		},
		ExpireSession: killSession,
		Options:       []backend.Option{backend.WithPollInterval(50 * time.Millisecond)},
	})
}

// acquireAsync runs a blocking tooz acquire (within d) in the background.
func acquireAsync(p *tooztest.Peer, name string, d time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() {
		res, err := p.Do("lock_acquire", map[string]any{"name": name, "timeout": d.Seconds()})
		if err == nil {
			var ok bool
			if err = json.Unmarshal(res, &ok); err == nil && !ok {
				err = fmt.Errorf("tooz did not get the lock")
			}
		}
		ch <- err
	}()
	return ch
}

// A lock held by one side is refused to the other and handed over on
// release, both ways.
func TestToozLock(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		name := "tz-" + randomName(t)
		p := tooztest.Start(t, toozURL(t), "tooz-"+randomName(t))
		b := openBackend(t, toozMode(t), "baton")
		if !p.Acquire(name) {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock while tooz holds it: acquired=%v err=%v", ok, err)
		}
		if _, held, err := b.LockHolder(ctx, name); err != nil || !held {
			t.Fatalf("baton LockHolder while tooz holds it: held=%v err=%v", held, err)
		}
		type res struct {
			g   *backend.Grant
			err error
		}
		ch := make(chan res, 1)
		go func() {
			g, err := b.Lock(ctx, name, backend.LockOptions{})
			ch <- res{g, err}
		}()
		if !p.Release(name) {
			t.Fatal("tooz release reported not held")
		}
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("baton Lock after tooz released: %v", r.err)
			}
			if p.Acquire(name) {
				t.Fatal("tooz got the lock baton holds")
			}
			if err := r.g.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case <-time.After(toozWait):
			t.Fatalf("baton's waiter did not get the lock within %v of tooz's release", toozWait)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := "tz-" + randomName(t)
		p := tooztest.Start(t, toozURL(t), "tooz-"+randomName(t))
		b := openBackend(t, toozMode(t), "baton")
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton TryLock: %v %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz got the lock baton holds")
		}
		ch := acquireAsync(p, name, toozWait)
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-ch; err != nil {
			t.Fatalf("tooz's waiter after baton released: %v", err)
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock while tooz holds it again: acquired=%v err=%v", ok, err)
		}
		p.Release(name)
	})
	t.Run("LongName", func(t *testing.T) {
		// Past MySQL's 64 characters (MariaDB takes 192 bytes): the name
		// is still tooz's wherever the server takes it.
		name := "tz-" + randomName(t) + "-" + strings.Repeat("n", 80)
		p := tooztest.Start(t, toozURL(t), "tooz-"+randomName(t))
		b := openBackend(t, toozMode(t), "baton")
		res, err := p.Do("lock_acquire", map[string]any{"name": name, "blocking": false})
		if err == nil && string(res) == "true" {
			if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
				t.Fatalf("baton TryLock of a long name tooz holds: acquired=%v err=%v", ok, err)
			}
			p.Release(name)
		} else {
			t.Logf("tooz cannot lock a %d-character name on this server: %s %v", len(name), res, err)
		}
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton TryLock of a long name: %v %v", ok, err)
		}
		_ = g.Release(ctx)
	})
	t.Run("NoSharedLocks", func(t *testing.T) {
		b := openBackend(t, toozMode(t), "baton")
		if b.Characteristics().SharedLocks || b.Characteristics().Fencing != driver.FencingPartial {
			t.Fatalf("tooz-mode characteristics: %+v", b.Characteristics())
		}
		_, _, err := b.TryLock(ctx, "x", backend.LockOptions{Shared: true})
		if !errors.Is(err, backend.ErrUnimplemented) {
			t.Fatalf("shared TryLock in tooz mode: %v, want ErrUnimplemented", err)
		}
	})
}

// A tooz process killed -9 loses its lock at once (the server drops its
// connection); a baton member whose session connection ends (killed, as
// when its process dies) loses its lock for tooz.
func TestToozKill(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		name := "tz-" + randomName(t)
		p := tooztest.Start(t, toozURL(t), "tooz-"+randomName(t))
		b := openBackend(t, toozMode(t), "baton")
		if !p.Acquire(name) {
			t.Fatal("tooz did not get a free lock")
		}
		start := time.Now()
		p.Kill()
		lctx, cancel := context.WithTimeout(ctx, toozWait)
		defer cancel()
		g, err := b.Lock(lctx, name, backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton Lock after tooz was killed: %v", err)
		}
		t.Logf("lock of a killed tooz process taken by baton after %v", time.Since(start))
		_ = g.Release(ctx)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := "tz-" + randomName(t)
		p := tooztest.Start(t, toozURL(t), "tooz-"+randomName(t))
		b := openBackend(t, toozMode(t), "baton")
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("baton TryLock: %v %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz got the lock baton holds")
		}
		start := time.Now()
		killSession(t, b)
		if !p.AcquireWithin(name, toozWait) {
			t.Fatal("tooz did not get the lock of an ended baton session")
		}
		t.Logf("lock of an ended baton session taken by tooz after %v", time.Since(start))
		p.Release(name)
	})
}

// toozSuiteScheme is the driver registered once more for the conformance
// suite in compat=tooz mode. GET_LOCK names are server-wide, with no
// namespace, while the suite runs its subtests in parallel, each in a
// namespace of its own, with the same lock names ("l"): this scheme's
// connections prefix user lock names with the namespace, so that
// parallel subtests do not share tooz's locks. Everything else is the
// driver's tooz mode unchanged.
const toozSuiteScheme = "mysqltoozsuite"

func init() {
	info := Info()
	info.Name = "MySQL (tooz-mode suite)"
	info.Schemes = []string{toozSuiteScheme}
	info.Open = func(ctx context.Context, cfg *driver.Config) (driver.Conn, error) {
		c, err := openConn(ctx, cfg)
		if err != nil {
			return nil, err
		}
		k := openedKey(cfg.Redacted, cfg.MemberID)
		opened.Lock()
		opened.m[k] = append(opened.m[k], c)
		opened.Unlock()
		return &nsConn{Conn: c.outer(), c: c, prefix: userLockPrefix + cfg.Options.String("namespace") + "."}, nil
	}
	backend.Register(info)
}

// nsConn prefixes user lock names with (the start of) the namespace.
type nsConn struct {
	driver.Conn
	c      *conn
	prefix string
}

func (n *nsConn) key(k string) string {
	if name, ok := strings.CutPrefix(k, userLockPrefix); ok {
		return n.prefix + name
	}
	return k
}

func (n *nsConn) req(r driver.LockRequest) driver.LockRequest { r.Key = n.key(r.Key); return r }

func (n *nsConn) TryLock(ctx context.Context, r driver.LockRequest) (driver.Lease, bool, error) {
	return n.Conn.TryLock(ctx, n.req(r))
}

func (n *nsConn) WaitLock(ctx context.Context, r driver.LockRequest) (driver.Lease, error) {
	return n.c.WaitLock(ctx, n.req(r))
}

func (n *nsConn) Unlock(ctx context.Context, k string, token uint64) error {
	return n.Conn.Unlock(ctx, n.key(k), token)
}

func (n *nsConn) RefreshLock(ctx context.Context, k string, token uint64, ttl time.Duration) error {
	return n.Conn.RefreshLock(ctx, n.key(k), token, ttl)
}

func (n *nsConn) Holder(ctx context.Context, k string) (driver.Holder, error) {
	return n.Conn.Holder(ctx, n.key(k))
}

// BenchmarkToozLock measures an uncontended exclusive acquire and release
// through *backend.Backend with compat=baton and compat=tooz (GET_LOCK on
// tooz's name instead of baton's).
func BenchmarkToozLock(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{driver.CompatBaton, driver.CompatTooz} {
		b.Run("compat="+mode, func(b *testing.B) {
			be := openBackend(b, isolate(b, mysqlURL(b), "compat", mode), "bench")
			name := "bench-" + randomName(b)
			for b.Loop() {
				g, ok, err := be.TryLock(ctx, name, backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("lock: %v %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatalf("release: %v", err)
				}
			}
		})
	}
}

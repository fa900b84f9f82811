package pgbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/tooztest"
)

// toozURL is tooz's URL of the test server: the same form.
func toozURL(t testing.TB) string { return serverURL(t) }

// toozMode returns an isolated baton URL in compat=tooz mode.
func toozMode(t testing.TB, kv ...string) string {
	return isolate(t, serverURL(t), append([]string{"compat", "tooz", "timeout", "5"}, kv...)...)
}

// TestToozConformance runs the conformance suite in compat=tooz mode.
func TestToozConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string {
			u := toozMode(t)
			return toozSuiteScheme + strings.TrimPrefix(u, testScheme)
		},
		ExpireSession: terminate,
	})
}

func TestToozKey(t *testing.T) {
	// md5("lock") = dce7c417...: tooz takes pg_advisory_lock(220, 231).
	if k := toozKey("lock"); k != [2]int32{0xdc, 0xe7} {
		t.Fatalf("toozKey(lock) = %v", k)
	}
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
		name := "tz-" + unique()
		p := tooztest.Start(t, toozURL(t), "tooz-"+unique())
		b := openBackend(t, toozMode(t), "baton")
		if !p.Acquire(name) {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock while tooz holds it: acquired=%v err=%v", ok, err)
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{Shared: true}); err != nil || ok {
			t.Fatalf("baton shared TryLock while tooz holds it: acquired=%v err=%v", ok, err)
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
		case <-time.After(wait):
			t.Fatalf("baton's waiter did not get the lock within %v of tooz's release", wait)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := "tz-" + unique()
		p := tooztest.Start(t, toozURL(t), "tooz-"+unique())
		b := openBackend(t, toozMode(t), "baton")
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton TryLock: %v %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz got the lock baton holds")
		}
		ch := acquireAsync(p, name, wait)
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
		// A baton shared hold excludes tooz too.
		s, ok, err := b.TryLock(ctx, name, backend.LockOptions{Shared: true})
		if err != nil || !ok {
			t.Fatalf("baton shared TryLock: %v %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz got the lock baton holds shared")
		}
		if err := s.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !p.Acquire(name) {
			t.Fatal("tooz did not get the lock baton released")
		}
		p.Release(name)
	})
	t.Run("SameTwoByteKey", func(t *testing.T) {
		// Two names with one tooz key: tooz holding one excludes baton
		// from the other, as tooz's processes exclude each other.
		a, c := collision(t)
		p := tooztest.Start(t, toozURL(t), "tooz-"+unique())
		b := openBackend(t, toozMode(t), "baton")
		if !p.Acquire(a) {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, c, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock of %q while tooz holds %q (same key): acquired=%v err=%v", c, a, ok, err)
		}
		p.Release(a)
		// One Backend holds both: its rows keep the names apart.
		g1, ok1, err1 := b.TryLock(ctx, a, backend.LockOptions{})
		g2, ok2, err2 := b.TryLock(ctx, c, backend.LockOptions{})
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			t.Fatalf("one Backend holding %q and %q: %v %v %v %v", a, c, ok1, err1, ok2, err2)
		}
		_ = g1.Release(ctx)
		if p.Acquire(c) {
			t.Fatalf("tooz got %q while baton holds %q (same key)", c, a)
		}
		_ = g2.Release(ctx)
		if !p.Acquire(c) {
			t.Fatal("tooz did not get the key baton released twice")
		}
		p.Release(c)
	})
}

// collision finds two distinct names with the same two-byte md5 prefix.
func collision(t *testing.T) (string, string) {
	seen := map[[2]int32]string{}
	base := "coll-" + unique() + "-"
	for i := 0; ; i++ {
		n := fmt.Sprint(base, i)
		k := toozKey(n)
		if o, ok := seen[k]; ok {
			return o, n
		}
		seen[k] = n
	}
}

// A tooz process killed -9 loses its lock at once (the server ends its
// session); a baton member whose session ends (terminated, as when its
// process dies) loses its lock for tooz.
func TestToozKill(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		name := "tz-" + unique()
		p := tooztest.Start(t, toozURL(t), "tooz-"+unique())
		b := openBackend(t, toozMode(t), "baton")
		if !p.Acquire(name) {
			t.Fatal("tooz did not get a free lock")
		}
		start := time.Now()
		p.Kill()
		lctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		g, err := b.Lock(lctx, name, backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton Lock after tooz was killed: %v", err)
		}
		t.Logf("lock of a killed tooz process taken by baton after %v", time.Since(start))
		_ = g.Release(ctx)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := "tz-" + unique()
		p := tooztest.Start(t, toozURL(t), "tooz-"+unique())
		b := openBackend(t, toozMode(t), "baton")
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("baton TryLock: %v %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz got the lock baton holds")
		}
		start := time.Now()
		terminate(t, b)
		if !p.AcquireWithin(name, wait) {
			t.Fatal("tooz did not get the lock of an ended baton session")
		}
		t.Logf("lock of an ended baton session taken by tooz after %v", time.Since(start))
		p.Release(name)
	})
}

// toozSuiteScheme is the driver registered once more for the conformance
// suite in compat=tooz mode. tooz's advisory keys are database-wide, with
// no namespace, while the suite runs its subtests in parallel, each in a
// namespace of its own, with the same lock names ("l"): this scheme's
// connections prefix user lock names with the namespace, so that
// parallel subtests do not share tooz's keys. Everything else is the
// driver's tooz mode unchanged.
const toozSuiteScheme = "pgtoozsuite"

func init() {
	info := Info()
	info.Name = "PostgreSQL (tooz-mode suite)"
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
		return &nsConn{conn: c, prefix: userLockPrefix + cfg.Options.String("namespace") + "."}, nil
	}
	backend.Register(info)
}

// nsConn prefixes user lock names with the namespace.
type nsConn struct {
	*conn
	prefix string
}

func (n *nsConn) key(k string) string {
	if name, ok := strings.CutPrefix(k, userLockPrefix); ok {
		return suiteKeys.of(n.prefix + name)
	}
	return k
}

// suiteKeys gives every lock name the suite uses a name whose tooz key
// (two bytes of md5) no other name of the run has: tooz's keys collide
// for about 2% of 52 names held at once, and the parallel subtests hold
// hundreds, so without it names that tooz's layout makes exclusive would
// fail subtests that assume distinct names are independent. The tooz
// key derivation itself is the driver's, unchanged.
var suiteKeys = &keyRegistry{names: map[string]string{}, used: map[[2]int32]bool{}}

type keyRegistry struct {
	sync.Mutex
	names map[string]string
	used  map[[2]int32]bool
}

func (s *keyRegistry) of(name string) string {
	s.Lock()
	defer s.Unlock()
	if m, ok := s.names[name]; ok {
		return m
	}
	// name is a full lock key; tooz's name is the part after the prefix.
	tk := func(key string) [2]int32 { return toozKey(strings.TrimPrefix(key, userLockPrefix)) }
	m := name
	for i := 1; s.used[tk(m)]; i++ {
		m = fmt.Sprintf("%s~%d", name, i)
	}
	s.used[tk(m)] = true
	s.names[name] = m
	return m
}

func (n *nsConn) req(r driver.LockRequest) driver.LockRequest { r.Key = n.key(r.Key); return r }

func (n *nsConn) TryLock(ctx context.Context, r driver.LockRequest) (driver.Lease, bool, error) {
	return n.conn.TryLock(ctx, n.req(r))
}

func (n *nsConn) TryLockShared(ctx context.Context, r driver.LockRequest) (driver.Lease, bool, error) {
	return n.conn.TryLockShared(ctx, n.req(r))
}

func (n *nsConn) WaitLock(ctx context.Context, r driver.LockRequest) (driver.Lease, error) {
	return n.conn.WaitLock(ctx, n.req(r))
}

func (n *nsConn) Unlock(ctx context.Context, k string, token uint64) error {
	return n.conn.Unlock(ctx, n.key(k), token)
}

func (n *nsConn) RefreshLock(ctx context.Context, k string, token uint64, ttl time.Duration) error {
	return n.conn.RefreshLock(ctx, n.key(k), token, ttl)
}

func (n *nsConn) Holder(ctx context.Context, k string) (driver.Holder, error) {
	return n.conn.Holder(ctx, n.key(k))
}

func (n *nsConn) BreakLock(ctx context.Context, k string) (bool, error) {
	return n.conn.BreakLock(ctx, n.key(k))
}

// BenchmarkToozLock measures an uncontended exclusive acquire and release
// through *backend.Backend with compat=baton and compat=tooz (which also
// takes and gives back tooz's advisory key on the session connection).
func BenchmarkToozLock(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{driver.CompatBaton, driver.CompatTooz} {
		b.Run("compat="+mode, func(b *testing.B) {
			be := openBackend(b, isolate(b, serverURL(b), "compat", mode), "bench")
			name := "bench-" + unique()
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

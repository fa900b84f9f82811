//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/backend/ipcbackend"
	"github.com/baton-go/baton/internal/proctest"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
)

// toozURL is baton's URL in compat=tooz mode with tooz's own keys (the
// empty namespace); tooz's URL is "ipc://".
const toozURL = "ipc://?compat=tooz"

const toozWait = 30 * time.Second

// toozPeer starts a tooz member and removes, when the test ends, what
// tooz's ipc driver leaves on the host (its group list segment and
// internal lock; tooz's own stop removes the former too).
func toozPeer(t *testing.T) *tooztest.Peer {
	t.Cleanup(func() { ipcbackend.RemoveToozObjects("") })
	return tooztest.Start(t, "ipc://", "tooz-"+testutil.Unique())
}

// TestToozConformance runs the conformance suite in compat=tooz mode,
// each subtest in a namespace of its own (every key, tooz's group list
// included, is then the namespace's).
func TestToozConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string { return newURL(t, "check_interval=10ms&compat=tooz") },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			if err := ipcbackend.ExpireSession(b.Config().String(), b.MemberID()); err != nil {
				t.Fatalf("expire session of %q: %v", b.MemberID(), err)
			}
		},
		Options:        []backend.Option{backend.WithPollInterval(20 * time.Millisecond)},
		GroupListBytes: 1021, // tooz's segment: 1024 bytes, a 2-byte length, msgpack below 1022
	})
}

func toozGroups(p *tooztest.Peer) []string {
	var gs []string
	p.Must("get_groups", nil, &gs)
	return gs
}

func TestToozGroups(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p := toozPeer(t)
		b := proctest.Open(t, toozURL, "baton")
		g := "g-" + testutil.Unique()
		p.Must("create_group", map[string]any{"group": g}, nil)
		gs, err := b.Groups(ctx)
		if err != nil || !slices.Contains(gs, g) {
			t.Fatalf("baton's groups %q (%v) lack tooz's group", gs, err)
		}
		if err := b.CreateGroup(ctx, g); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("baton creating tooz's group: %v, want ErrGroupExists", err)
		}
		// Members are baton's own: tooz's ipc driver has none.
		if err := b.Join(ctx, g, nil); err != nil {
			t.Fatalf("baton joining tooz's group: %v", err)
		}
		if ms := proctest.MemberIDs(t, b, g); !slices.Equal(ms, []string{"baton"}) {
			t.Fatalf("members %q", ms)
		}
		if _, err := p.Do("members", map[string]any{"group": g}); !errors.Is(err, tooztest.ErrTooz) {
			t.Fatalf("tooz's get_members on ipc: %v, want tooz's NotImplemented", err)
		}
		if err := b.Leave(ctx, g); err != nil {
			t.Fatal(err)
		}
		p.Must("delete_group", map[string]any{"group": g}, nil)
		gs, err = b.Groups(ctx)
		if err != nil || slices.Contains(gs, g) {
			t.Fatalf("baton's groups %q (%v) still hold the group tooz deleted", gs, err)
		}
		if err := b.Join(ctx, g, nil); !errors.Is(err, backend.ErrGroupNotFound) {
			t.Fatalf("baton joining the group tooz deleted: %v, want ErrGroupNotFound", err)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		p := toozPeer(t)
		b := proctest.Open(t, toozURL, "baton")
		g := "g-" + testutil.Unique()
		if err := b.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); !slices.Contains(gs, g) {
			t.Fatalf("tooz's groups %q lack baton's group", gs)
		}
		if _, err := p.Do("create_group", map[string]any{"group": g}); err == nil {
			t.Fatal("tooz created baton's group again")
		}
		if err := b.DeleteGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); slices.Contains(gs, g) {
			t.Fatalf("tooz's groups %q still hold the group baton deleted", gs)
		}
	})
}

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

func TestToozLock(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p := toozPeer(t)
		b := proctest.Open(t, toozURL, "baton")
		name := "l-" + testutil.Unique()
		if !p.Acquire(name) {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock while tooz holds it: %v %v", ok, err)
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
				t.Fatal(r.err)
			}
			if p.Acquire(name) {
				t.Fatal("tooz got the lock baton holds")
			}
			_ = r.g.Release(ctx)
		case <-time.After(toozWait):
			t.Fatal("baton's waiter did not get the lock tooz released")
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		p := toozPeer(t)
		b := proctest.Open(t, toozURL, "baton")
		name := "l-" + testutil.Unique()
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
			t.Fatalf("baton TryLock while tooz holds it: %v %v", ok, err)
		}
		p.Release(name)
	})
	t.Run("NoSharedLocks", func(t *testing.T) {
		b := proctest.Open(t, toozURL, "baton")
		c := b.Characteristics()
		if c.SharedLocks || c.Fencing != driver.FencingPartial {
			t.Fatalf("tooz-mode characteristics: %+v", c)
		}
		if _, _, err := b.TryLock(ctx, "x-"+testutil.Unique(), backend.LockOptions{Shared: true}); !errors.Is(err, backend.ErrUnimplemented) {
			t.Fatalf("shared TryLock in tooz mode: %v, want ErrUnimplemented", err)
		}
	})
}

func TestToozKill(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p := toozPeer(t)
		b := proctest.Open(t, toozURL, "baton")
		name := "l-" + testutil.Unique()
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
		p := toozPeer(t)
		h := procs.StartHelper(t, "hold", toozURL, "baton-child", "")
		h.Expect("ready")
		if gs := toozGroups(p); !slices.Contains(gs, "g") {
			t.Fatalf("tooz's groups %q lack the baton child's group", gs)
		}
		if p.Acquire("l") {
			t.Fatal("tooz got the lock the baton child holds")
		}
		start := time.Now()
		h.Kill()
		if !p.AcquireWithin("l", toozWait) {
			t.Fatal("tooz did not get the lock of a killed baton process")
		}
		t.Logf("lock of a killed baton process taken by tooz after %v", time.Since(start))
		p.Release("l")
		b := proctest.Open(t, toozURL, "cleaner")
		if err := b.DeleteGroup(ctx, "g"); err != nil {
			t.Fatalf("deleting the group of a killed baton member: %v", err)
		}
	})
}

// BenchmarkToozLock measures an uncontended exclusive acquire and release
// through *backend.Backend with compat=baton and compat=tooz (the same
// semaphores: the mode changes groups, not locks).
func BenchmarkToozLock(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{driver.CompatBaton, driver.CompatTooz} {
		b.Run("compat="+mode, func(b *testing.B) {
			u := newURL(b, "compat="+mode)
			be, err := backend.Open(ctx, u, backend.WithMemberID("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close(ctx)
			for b.Loop() {
				g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
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

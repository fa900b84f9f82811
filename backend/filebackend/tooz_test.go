//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filebackend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/backend/filebackend"
	"github.com/baton-go/baton/internal/tooztest"
)

// toozWait bounds every wait of the tooz tests on a condition.
const toozWait = 30 * time.Second

// toozTimeout is the member timeout (seconds) of both sides in the
// tests: a dead member disappears that long after its last heartbeat.
const toozTimeout = 2

// toozDirs returns baton's compat=tooz URL and tooz's URL of one fresh
// directory.
func toozDirs(t *testing.T) (batonURL, toozURL string) {
	dir := t.TempDir()
	b := url.URL{Scheme: "file", Path: dir, RawQuery: fmt.Sprintf("compat=tooz&timeout=%d", toozTimeout)}
	z := url.URL{Scheme: "file", Path: dir, RawQuery: fmt.Sprintf("timeout=%d", toozTimeout)}
	return b.String(), z.String()
}

func openTooz(t *testing.T, u, member string) *backend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toozWait)
	defer cancel()
	b, err := backend.Open(ctx, u, backend.WithMemberID(member), backend.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatalf("open %s as %q: %v", u, member, err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// poll checks cond every 20ms until it holds, failing after toozWait.
func poll(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > toozWait {
			t.Fatalf("timed out after %v waiting for %s", toozWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func batonMembers(t *testing.T, b *backend.Backend, group string) []string {
	t.Helper()
	ms, err := b.Members(t.Context(), group)
	if err != nil {
		t.Fatalf("baton members of %q: %v", group, err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func batonGroups(t *testing.T, b *backend.Backend) []string {
	t.Helper()
	gs, err := b.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

func toozGroups(p *tooztest.Peer) []string {
	var gs []string
	p.Must("get_groups", nil, &gs)
	return gs
}

// TestToozConformance runs the conformance suite in compat=tooz mode.
func TestToozConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string { return newURL(t, "compat=tooz&timeout=3") },
		ExpireSession: func(t testing.TB, b *backend.Backend) {
			if err := filebackend.ExpireSession(b.Config().String(), b.MemberID()); err != nil {
				t.Fatalf("expire session of %q: %v", b.MemberID(), err)
			}
		},
		Options: []backend.Option{backend.WithPollInterval(20 * time.Millisecond)},
	})
}

func TestToozGroups(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		p.Must("create_group", map[string]any{"group": "g-tooz"}, nil)
		if gs := batonGroups(t, b); !slices.Contains(gs, "g-tooz") {
			t.Fatalf("baton's groups %q lack tooz's group", gs)
		}
		if err := b.CreateGroup(ctx, "g-tooz"); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("baton creating tooz's group: %v, want ErrGroupExists", err)
		}
		p.Must("delete_group", map[string]any{"group": "g-tooz"}, nil)
		if gs := batonGroups(t, b); slices.Contains(gs, "g-tooz") {
			t.Fatalf("baton's groups %q still hold the group tooz deleted", gs)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		if err := b.CreateGroup(ctx, "g-baton ünï"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); !slices.Contains(gs, "g-baton ünï") {
			t.Fatalf("tooz's groups %q lack baton's group", gs)
		}
		if _, err := p.Do("create_group", map[string]any{"group": "g-baton ünï"}); err == nil {
			t.Fatal("tooz created baton's group again")
		}
		if err := b.DeleteGroup(ctx, "g-baton ünï"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); slices.Contains(gs, "g-baton ünï") {
			t.Fatalf("tooz's groups %q still hold the group baton deleted", gs)
		}
	})
}

func TestToozMembers(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		p.Must("join", map[string]any{"group": "g"}, nil)
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz"}) {
			t.Fatalf("baton's members %q, want [tooz]", ms)
		}
		if err := b.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("baton deleting a group tooz is a member of: %v, want ErrGroupNotEmpty", err)
		}
		// Heartbeats keep tooz's member listed past its timeout.
		time.Sleep(2 * toozTimeout * time.Second)
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz"}) {
			t.Fatalf("baton's members after 2 timeouts %q, want [tooz] (heartbeats)", ms)
		}
		p.Must("leave", map[string]any{"group": "g"}, nil)
		if ms := batonMembers(t, b, "g"); len(ms) != 0 {
			t.Fatalf("baton's members after tooz left: %q", ms)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		if err := b.JoinCreate(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); !slices.Equal(ms, []string{"baton"}) {
			t.Fatalf("tooz's members %q, want [baton]", ms)
		}
		if _, err := p.Do("delete_group", map[string]any{"group": "g"}); err == nil {
			t.Fatal("tooz deleted a group baton is a member of")
		}
		// baton's renewals keep its member listed for tooz.
		time.Sleep(2 * toozTimeout * time.Second)
		if ms := p.Members("g"); !slices.Equal(ms, []string{"baton"}) {
			t.Fatalf("tooz's members after 2 timeouts %q, want [baton] (renewals)", ms)
		}
		p.Must("join", map[string]any{"group": "g"}, nil)
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"baton", "tooz"}) {
			t.Fatalf("baton's members %q", ms)
		}
		if err := b.Leave(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); !slices.Equal(ms, []string{"tooz"}) {
			t.Fatalf("tooz's members after baton left: %q", ms)
		}
	})
}

func TestToozCapabilities(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		p.Must("join", map[string]any{"group": "g", "caps": map[string]any{"weight": 3, "zone": "a"}}, nil)
		ms, err := b.Members(ctx, "g")
		if err != nil || len(ms) != 1 {
			t.Fatalf("members: %v %v", ms, err)
		}
		var caps map[string]any
		if err := msgpack.Unmarshal(ms[0].Capabilities, &caps); err != nil {
			t.Fatalf("tooz's capabilities %x: %v", ms[0].Capabilities, err)
		}
		if fmt.Sprint(caps["weight"]) != "3" || caps["zone"] != "a" {
			t.Fatalf("tooz's capabilities as baton reads them: %v", caps)
		}
		p.Must("create_group", map[string]any{"group": "g2"}, nil)
		p.Must("join", map[string]any{"group": "g2", "caps_bytes": "raw"}, nil)
		ms, err = b.Members(ctx, "g2")
		if err != nil || len(ms) != 1 {
			t.Fatalf("members: %v %v", ms, err)
		}
		var raw []byte
		if err := msgpack.Unmarshal(ms[0].Capabilities, &raw); err != nil || string(raw) != "raw" {
			t.Fatalf("tooz's bytes capabilities as baton reads them: %x (%v)", ms[0].Capabilities, err)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		caps, _ := msgpack.Marshal(map[string]any{"weight": 5})
		if err := b.JoinCreate(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton"}, &got)
		if fmt.Sprint(got["weight"]) != "5" {
			t.Fatalf("baton's capabilities as tooz reads them: %v", got)
		}
		caps, _ = msgpack.Marshal(map[string]any{"weight": 7})
		if err := b.UpdateCapabilities(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton"}, &got)
		if fmt.Sprint(got["weight"]) != "7" {
			t.Fatalf("baton's updated capabilities as tooz reads them: %v", got)
		}
		// Bytes that are not msgpack reach tooz as bytes.
		if err := b.JoinCreate(ctx, "g2", []byte("not msgpack")); err != nil {
			t.Fatal(err)
		}
		var s string
		p.Must("capabilities", map[string]any{"group": "g2", "member": "baton"}, &s)
		if s != "not msgpack" {
			t.Fatalf("baton's raw capabilities as tooz reads them: %q", s)
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
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		if !p.Acquire("l") {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, "l", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock while tooz holds it: %v %v", ok, err)
		}
		if _, ok, err := b.TryLock(ctx, "l", backend.LockOptions{Shared: true}); err != nil || ok {
			t.Fatalf("baton shared TryLock while tooz holds it: %v %v", ok, err)
		}
		h, held, err := b.LockHolder(ctx, "l")
		if err != nil || !held || h.Member != "" {
			t.Fatalf("baton LockHolder while tooz holds it: %+v %v %v", h, held, err)
		}
		type res struct {
			g   *backend.Grant
			err error
		}
		ch := make(chan res, 1)
		go func() {
			g, err := b.Lock(ctx, "l", backend.LockOptions{})
			ch <- res{g, err}
		}()
		if !p.Release("l") {
			t.Fatal("tooz release reported not held")
		}
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if p.Acquire("l") {
				t.Fatal("tooz got the lock baton holds")
			}
			_ = r.g.Release(ctx)
		case <-time.After(toozWait):
			t.Fatal("baton's waiter did not get the lock tooz released")
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		for _, shared := range []bool{false, true} {
			g, ok, err := b.TryLock(ctx, "sub/l", backend.LockOptions{Shared: shared})
			if err != nil || !ok {
				t.Fatalf("baton TryLock (shared %v): %v %v", shared, ok, err)
			}
			if p.Acquire("sub/l") {
				t.Fatalf("tooz got the lock baton holds (shared %v)", shared)
			}
			ch := acquireAsync(p, "sub/l", toozWait)
			if err := g.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-ch; err != nil {
				t.Fatalf("tooz's waiter after baton released: %v", err)
			}
			if _, ok, err := b.TryLock(ctx, "sub/l", backend.LockOptions{}); err != nil || ok {
				t.Fatalf("baton TryLock while tooz holds it: %v %v", ok, err)
			}
			p.Release("sub/l")
		}
	})
}

func TestToozKill(t *testing.T) {
	ctx := t.Context()
	t.Run("BatonSeesTooz", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		b := openTooz(t, bu, "baton")
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		p.Must("join", map[string]any{"group": "g"}, nil)
		if !p.Acquire("l") {
			t.Fatal("tooz did not get a free lock")
		}
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz"}) {
			t.Fatalf("baton's members %q", ms)
		}
		start := time.Now()
		p.Kill()
		lctx, cancel := context.WithTimeout(ctx, toozWait)
		defer cancel()
		g, err := b.Lock(lctx, "l", backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton Lock after tooz was killed: %v", err)
		}
		t.Logf("lock of a killed tooz process taken by baton after %v", time.Since(start))
		_ = g.Release(ctx)
		d := poll(t, "the killed tooz member to leave baton's view", func() bool { return len(batonMembers(t, b, "g")) == 0 })
		t.Logf("killed tooz member gone for baton after %v (timeout %ds)", time.Since(start), toozTimeout)
		_ = d
		if err := b.DeleteGroup(ctx, "g"); err != nil {
			t.Fatalf("baton deleting the group of a dead tooz member: %v", err)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		bu, zu := toozDirs(t)
		p := tooztest.Start(t, zu, "tooz")
		h := procs.StartHelper(t, "hold", bu, "baton-child", "")
		h.Expect("ready")
		if ms := p.Members("g"); !slices.Equal(ms, []string{"baton-child"}) {
			t.Fatalf("tooz's members %q, want the baton child", ms)
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
		poll(t, "the killed baton member to leave tooz's view", func() bool { return len(p.Members("g")) == 0 })
		t.Logf("killed baton member gone for tooz after %v (timeout %ds)", time.Since(start), toozTimeout)
	})
}

func TestToozCharacteristics(t *testing.T) {
	bu, _ := toozDirs(t)
	b := openTooz(t, bu, "baton")
	c := b.Characteristics()
	if c.Liveness != driver.LivenessTTL || c.Watch != driver.WatchPoll || c.Fencing != driver.FencingPartial || c.NonTimeoutBased || !c.SharedLocks {
		t.Fatalf("tooz-mode characteristics: %+v", c)
	}
	if _, err := backend.Open(t.Context(), bu+"&namespace=x"); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("compat=tooz with a namespace: %v, want ErrInvalidArgument", err)
	}
}

// BenchmarkToozLock measures an uncontended exclusive acquire and release
// through *backend.Backend with compat=baton (flock on baton's lock file)
// and compat=tooz (fcntl lock on tooz's file DIR/NAME).
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

package etcdgwbackend

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
	"github.com/baton-go/baton/membership"
)

// Mixed fleets: baton (compat=tooz) and a real tooz member (python3-tooz's
// etcd3gw driver) on one etcd. tooz's keys have no namespace, so each test
// uses group and lock names of its own.

// toozWait bounds every wait on the other side (a busy machine).
const toozWait = 30 * time.Second

// toozURLs returns a compat=tooz baton URL and the tooz URL of the same
// server, both with 5 s leases. tooz 3.1 defaults to the gateway path
// /v3alpha, which etcd 3.4 no longer serves: the tooz URL names v3.
func toozURLs(t *testing.T) (batonURL, toozURL string) {
	base := singleURL(t)
	return nsURL(base, "compat=tooz", "timeout=5"), base + "?api_version=v3&timeout=5"
}

func toozName(what string) string { return what + "-" + testutil.Unique() }

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func batonGroups(t *testing.T, b *backend.Backend) []string {
	t.Helper()
	gs, err := b.Groups(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return sorted(gs)
}

func batonMembers(t *testing.T, b *backend.Backend, group string) []string {
	t.Helper()
	ms, err := b.Members(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return sorted(ids)
}

func toozGroups(p *tooztest.Peer) []string {
	var gs []string
	p.Must("get_groups", nil, &gs)
	return sorted(gs)
}

func TestToozGroups(t *testing.T) {
	bu, tu := toozURLs(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t)
	t.Run("ToozSeesBaton", func(t *testing.T) {
		g := toozName("by-baton")
		if err := b.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); !slices.Contains(gs, g) {
			t.Fatalf("tooz groups %v lack %s", gs, g)
		}
		if err := b.DeleteGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); slices.Contains(gs, g) {
			t.Fatalf("tooz groups %v still list %s", gs, g)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		g := toozName("by-tooz")
		p.Must("create_group", map[string]any{"group": g}, nil)
		if gs := batonGroups(t, b); !slices.Contains(gs, g) {
			t.Fatalf("baton groups %v lack %s", gs, g)
		}
		if err := b.CreateGroup(ctx, g); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("create a group tooz made: %v, want ErrGroupExists", err)
		}
		// With a member, tooz lists bogus groups made of member keys
		// (its bug); baton lists the group only.
		p.Must("join", map[string]any{"group": g}, nil)
		if gs := batonGroups(t, b); slices.ContainsFunc(gs, func(s string) bool { return strings.HasPrefix(s, g+"/") }) {
			t.Fatalf("baton groups %v list member keys as groups", gs)
		}
		if err := b.DeleteGroup(ctx, g); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("delete a group with a tooz member: %v, want ErrGroupNotEmpty", err)
		}
		p.Must("leave", map[string]any{"group": g}, nil)
		p.Must("delete_group", map[string]any{"group": g}, nil)
		if gs := batonGroups(t, b); slices.Contains(gs, g) {
			t.Fatalf("baton groups %v still list %s", gs, g)
		}
	})
}

func TestToozMembers(t *testing.T) {
	bu, tu := toozURLs(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t)
	g := toozName("g")
	if err := b.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	t.Run("ToozSeesBaton", func(t *testing.T) {
		if err := b.Join(ctx, g, nil); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members(g); !slices.Equal(ms, []string{"baton-1"}) {
			t.Fatalf("tooz members %v, want [baton-1]", ms)
		}
		if err := b.Leave(ctx, g); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members(g); len(ms) != 0 {
			t.Fatalf("tooz members %v after baton left, want none", ms)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("join", map[string]any{"group": g}, nil)
		if ms := batonMembers(t, b, g); !slices.Equal(ms, []string{"tooz-1"}) {
			t.Fatalf("baton members %v, want [tooz-1]", ms)
		}
		m, err := b.Member(ctx, g, "tooz-1")
		if err != nil || len(m.Capabilities) != 0 {
			t.Fatalf("tooz member with default capabilities: %+v, %v; want none", m, err)
		}
		p.Must("leave", map[string]any{"group": g}, nil)
		if ms := batonMembers(t, b, g); len(ms) != 0 {
			t.Fatalf("baton members %v after tooz left, want none", ms)
		}
	})
}

func TestToozCapabilities(t *testing.T) {
	bu, tu := toozURLs(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t)
	g := toozName("g")
	if err := b.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	t.Run("ToozSeesBaton", func(t *testing.T) {
		caps, err := membership.EncodeCapabilities(map[string]any{"role": "api", "weight": 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Join(ctx, g, caps); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		p.Must("capabilities", map[string]any{"group": g, "member": "baton-1"}, &got)
		if got["role"] != "api" || got["weight"] != float64(3) {
			t.Fatalf("tooz reads baton's capabilities as %v", got)
		}
		caps, _ = membership.EncodeCapabilities(map[string]any{"role": "worker"})
		if err := b.UpdateCapabilities(ctx, g, caps); err != nil {
			t.Fatal(err)
		}
		p.Must("capabilities", map[string]any{"group": g, "member": "baton-1"}, &got)
		if got["role"] != "worker" {
			t.Fatalf("tooz reads baton's updated capabilities as %v", got)
		}
		if err := b.UpdateCapabilities(ctx, g, nil); err != nil {
			t.Fatal(err)
		}
		var empty string
		p.Must("capabilities", map[string]any{"group": g, "member": "baton-1"}, &empty)
		if empty != "" {
			t.Fatalf("tooz reads baton's empty capabilities as %q, want b\"\"", empty)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("join", map[string]any{"group": g, "caps": map[string]any{"zone": "b", "weight": 2}}, nil)
		var got struct {
			Zone   string `msgpack:"zone"`
			Weight int    `msgpack:"weight"`
		}
		m, err := b.Member(ctx, g, "tooz-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := membership.DecodeCapabilities(m.Capabilities, &got); err != nil || got.Zone != "b" || got.Weight != 2 {
			t.Fatalf("baton reads tooz's capabilities as %+v (%v)", got, err)
		}
		p.Must("update_capabilities", map[string]any{"group": g, "caps": map[string]any{"zone": "c", "weight": 2}}, nil)
		if m, err = b.Member(ctx, g, "tooz-1"); err != nil {
			t.Fatal(err)
		}
		if err := membership.DecodeCapabilities(m.Capabilities, &got); err != nil || got.Zone != "c" {
			t.Fatalf("baton reads tooz's updated capabilities as %+v (%v)", got, err)
		}
	})
}

func TestToozLock(t *testing.T) {
	bu, tu := toozURLs(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t)
	t.Run("ToozSeesBaton", func(t *testing.T) {
		name := toozName("lock")
		g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton try lock: %v, %v", ok, err)
		}
		if p.Acquire(name) {
			t.Fatal("tooz took the lock baton holds")
		}
		got := make(chan bool, 1)
		go func() { got <- p.AcquireWithin(name, toozWait) }()
		time.Sleep(200 * time.Millisecond) // let tooz poll
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !<-got {
			t.Fatal("tooz did not get the lock baton released")
		}
		// tooz's value is random bytes: a holder with no member ID.
		if h, ok, err := b.LockHolder(ctx, name); err != nil || !ok || h.Member != "" || h.Token == 0 {
			t.Fatalf("baton sees holder %+v (%v, %v), want tooz's", h, ok, err)
		}
		if !p.Release(name) {
			t.Fatal("tooz release failed")
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		name := toozName("lock")
		if !p.Acquire(name) {
			t.Fatal("tooz could not take a free lock")
		}
		if _, ok, err := b.TryLock(ctx, name, backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton try lock held by tooz: %v, %v; want refused", ok, err)
		}
		got := make(chan error, 1)
		go func() {
			g, err := b.Lock(ctx, name, backend.LockOptions{})
			if err == nil {
				if p.Acquire(name) {
					t.Error("tooz took the lock baton got")
				}
				err = g.Release(ctx)
			}
			got <- err
		}()
		time.Sleep(200 * time.Millisecond) // let baton watch
		if !p.Release(name) {
			t.Fatal("tooz release failed")
		}
		if err := <-got; err != nil {
			t.Fatalf("baton lock after tooz released: %v", err)
		}
	})
}

func TestToozKill(t *testing.T) {
	bu, tu := toozURLs(t)
	ctx := testCtx(t)
	t.Run("BatonSeesTooz", func(t *testing.T) {
		b := openBackend(t, bu, "baton-1")
		p := tooztest.Start(t, tu, "tooz-dies")
		g, name := toozName("g"), toozName("lock")
		p.Must("create_group", map[string]any{"group": g}, nil)
		p.Must("join", map[string]any{"group": g}, nil)
		if !p.Acquire(name) {
			t.Fatal("tooz could not take a free lock")
		}
		if ms := batonMembers(t, b, g); !slices.Equal(ms, []string{"tooz-dies"}) {
			t.Fatalf("baton members %v, want [tooz-dies]", ms)
		}
		start := time.Now()
		p.Kill()
		testutil.Within(t, toozWait, "the killed tooz member gone", func() bool { return len(batonMembers(t, b, g)) == 0 })
		t.Logf("killed tooz member gone for baton after %v (membership_timeout 5 s)", time.Since(start).Round(time.Millisecond))
		lk, err := b.Lock(ctx, name, backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton lock after tooz was killed: %v", err)
		}
		t.Logf("killed tooz holder's lock taken by baton after %v (lock_timeout 5 s)", time.Since(start).Round(time.Millisecond))
		_ = lk.Release(ctx)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		direct := singleURL(t)
		host := strings.TrimPrefix(direct, "etcd3+http://")
		px := testutil.StartProxy(t, host)
		dying := openBackend(t, strings.Replace(bu, host, px.Addr(), 1), "baton-dies")
		p := tooztest.Start(t, tu, "tooz-1")
		g, name := toozName("g"), toozName("lock")
		p.Must("create_group", map[string]any{"group": g}, nil)
		if err := dying.Join(ctx, g, nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := dying.TryLock(ctx, name, backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("baton try lock: %v, %v", ok, err)
		}
		if ms := p.Members(g); !slices.Equal(ms, []string{"baton-dies"}) {
			t.Fatalf("tooz members %v, want [baton-dies]", ms)
		}
		// Cut off as a crash would: no keep-alive, no leave, no release.
		start := time.Now()
		px.Blackhole(true)
		testutil.Within(t, toozWait, "the cut-off baton member gone for tooz", func() bool { return len(p.Members(g)) == 0 })
		if !p.AcquireWithin(name, toozWait) {
			t.Fatal("tooz could not take the cut-off baton member's lock")
		}
		t.Logf("cut-off baton member and lock gone for tooz after %v (lease 5 s)", time.Since(start).Round(time.Millisecond))
		p.Release(name)
		px.Close()
		cctx, cancel := context.WithTimeout(ctx, toozWait)
		defer cancel()
		_ = dying.Close(cctx)
	})
}

// TestConformanceTooz runs the suite in compat=tooz mode, each subtest's
// tooz keys below a prefix of its own (tooz_prefix).
func TestConformanceTooz(t *testing.T) {
	h := harness(singleURL)
	h.NewURL = func(t testing.TB) string {
		return nsURL(singleURL(t), "compat=tooz", "tooz_prefix="+url.QueryEscape("t-"+testutil.Unique()+"/"))
	}
	drivertest.Run(t, h)
}

// BenchmarkToozLock measures an uncontended acquire and release through a
// Backend with baton's lock layout (a txn writing an entry, a delete) and
// with tooz's (a txn creating the key, a txn deleting it by value).
func BenchmarkToozLock(b *testing.B) {
	for _, compat := range []string{"baton", "tooz"} {
		b.Run("compat="+compat, func(b *testing.B) {
			ctx := context.Background()
			be := openBackend(b, nsURL(singleURL(b), "compat="+compat), "bench")
			name := toozName("bench")
			for b.Loop() {
				g, ok, err := be.TryLock(ctx, name, backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("TryLock = %v, %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

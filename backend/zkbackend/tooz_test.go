package zkbackend

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/tooztest"
	"github.com/baton-go/baton/membership"
)

// Mixed fleets: baton (compat=tooz) and a real tooz member (python3-tooz
// with kazoo) on one ZooKeeper server and one namespace.

// toozWait bounds every wait on the other side (a busy machine).
const toozWait = 30 * time.Second

// toozPair returns a compat=tooz baton URL and the tooz URL of the same
// server and namespace, both with a 5 s session timeout.
func toozPair(t *testing.T) (batonURL, toozURL string) {
	t.Helper()
	batonURL = isolate(t, standaloneURL(t), "timeout", "5", "compat", "tooz")
	u, err := url.Parse(batonURL)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{}
	q.Set("namespace", u.Query().Get("namespace"))
	q.Set("timeout", "5")
	return batonURL, "zookeeper://" + u.Host + "?" + q.Encode()
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func batonGroups(t *testing.T, b *backend.Backend) []string {
	t.Helper()
	gs, err := b.Groups(testCtx(t, toozWait))
	if err != nil {
		t.Fatal(err)
	}
	return sorted(gs)
}

func batonMembers(t *testing.T, b *backend.Backend, group string) []string {
	t.Helper()
	ms, err := b.Members(testCtx(t, toozWait), group)
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
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t, toozWait)
	t.Run("ToozSeesBaton", func(t *testing.T) {
		if err := b.CreateGroup(ctx, "made-by-baton"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); !slices.Contains(gs, "made-by-baton") {
			t.Fatalf("tooz groups %v lack made-by-baton", gs)
		}
		p.Must("join", map[string]any{"group": "made-by-baton"}, nil)
		p.Must("leave", map[string]any{"group": "made-by-baton"}, nil)
		if err := b.DeleteGroup(ctx, "made-by-baton"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(p); slices.Contains(gs, "made-by-baton") {
			t.Fatalf("tooz groups %v still list made-by-baton", gs)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("create_group", map[string]any{"group": "made-by-tooz"}, nil)
		if gs := batonGroups(t, b); !slices.Contains(gs, "made-by-tooz") {
			t.Fatalf("baton groups %v lack made-by-tooz", gs)
		}
		if err := b.CreateGroup(ctx, "made-by-tooz"); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("create a group tooz made: %v, want ErrGroupExists", err)
		}
		// A lock makes tooz list its locks directory as a group (tooz's
		// bug); baton does not.
		p.Acquire("some-lock")
		p.Release("some-lock")
		if gs := batonGroups(t, b); slices.Contains(gs, "locks") {
			t.Fatalf("baton groups %v list tooz's locks directory", gs)
		}
		p.Must("delete_group", map[string]any{"group": "made-by-tooz"}, nil)
		if gs := batonGroups(t, b); slices.Contains(gs, "made-by-tooz") {
			t.Fatalf("baton groups %v still list made-by-tooz", gs)
		}
	})
}

func TestToozMembers(t *testing.T) {
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t, toozWait)
	if err := b.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	t.Run("ToozSeesBaton", func(t *testing.T) {
		if err := b.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); !slices.Equal(ms, []string{"baton-1"}) {
			t.Fatalf("tooz members %v, want [baton-1]", ms)
		}
		if err := b.Leave(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); len(ms) != 0 {
			t.Fatalf("tooz members %v after baton left, want none", ms)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("join", map[string]any{"group": "g"}, nil)
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz-1"}) {
			t.Fatalf("baton members %v, want [tooz-1]", ms)
		}
		// tooz's default capabilities (msgpack b"") read as none.
		m, err := b.Member(ctx, "g", "tooz-1")
		if err != nil || len(m.Capabilities) != 0 {
			t.Fatalf("tooz member with default capabilities: %+v, %v; want none", m, err)
		}
		// A leader query makes kazoo create <group>/leader: not a member
		// for baton (tooz lists it, its bug).
		var leader *string
		p.Must("leader", map[string]any{"group": "g"}, &leader)
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz-1"}) {
			t.Fatalf("baton members %v after a leader query, want [tooz-1]", ms)
		}
		p.Must("leave", map[string]any{"group": "g"}, nil)
		if ms := batonMembers(t, b, "g"); len(ms) != 0 {
			t.Fatalf("baton members %v after tooz left, want none", ms)
		}
		// The idle leader directory does not keep baton from deleting it.
		if err := b.DeleteGroup(ctx, "g"); err != nil {
			t.Fatalf("delete a group with kazoo's idle leader directory: %v", err)
		}
	})
}

func TestToozCapabilities(t *testing.T) {
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t, toozWait)
	if err := b.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	t.Run("ToozSeesBaton", func(t *testing.T) {
		caps, err := membership.EncodeCapabilities(map[string]any{"role": "api", "weight": 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Join(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &got)
		if got["role"] != "api" || got["weight"] != float64(3) {
			t.Fatalf("tooz reads baton's capabilities as %v", got)
		}
		caps, _ = membership.EncodeCapabilities(map[string]any{"role": "worker"})
		if err := b.UpdateCapabilities(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &got)
		if got["role"] != "worker" {
			t.Fatalf("tooz reads baton's updated capabilities as %v", got)
		}
		if err := b.UpdateCapabilities(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		var empty string
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &empty)
		if empty != "" {
			t.Fatalf("tooz reads baton's empty capabilities as %q, want b\"\"", empty)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("join", map[string]any{"group": "g", "caps": map[string]any{"zone": "b", "weight": 2}}, nil)
		m, err := b.Member(ctx, "g", "tooz-1")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Zone   string `msgpack:"zone"`
			Weight int    `msgpack:"weight"`
		}
		if err := membership.DecodeCapabilities(m.Capabilities, &got); err != nil || got.Zone != "b" || got.Weight != 2 {
			t.Fatalf("baton reads tooz's capabilities as %+v (%v)", got, err)
		}
		p.Must("update_capabilities", map[string]any{"group": "g", "caps": map[string]any{"zone": "c", "weight": 2}}, nil)
		m, err = b.Member(ctx, "g", "tooz-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := membership.DecodeCapabilities(m.Capabilities, &got); err != nil || got.Zone != "c" {
			t.Fatalf("baton reads tooz's updated capabilities as %+v (%v)", got, err)
		}
	})
}

func TestToozLeader(t *testing.T) {
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t, 2*toozWait)
	isLeader := func(group string) bool {
		var ok bool
		p.Must("is_leader", map[string]any{"group": group}, &ok)
		return ok
	}
	toozLeader := func(group string) string {
		var l *string
		p.Must("leader", map[string]any{"group": group}, &l)
		if l == nil {
			return ""
		}
		return *l
	}
	t.Run("ToozSeesBaton", func(t *testing.T) {
		if err := b.CreateGroup(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		g, ok, err := b.TryCampaign(ctx, "g1", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton campaign: %v, %v", ok, err)
		}
		if l := toozLeader("g1"); l != "baton-1" {
			t.Fatalf("tooz sees leader %q, want baton-1", l)
		}
		p.Must("elect", map[string]any{"group": "g1"}, nil)
		time.Sleep(300 * time.Millisecond) // several rounds of tooz's watcher loop (50 ms)
		if isLeader("g1") {
			t.Fatal("tooz was elected while baton leads")
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, toozWait, "tooz elected after baton stood down", func() bool { return isLeader("g1") })
		if l := toozLeader("g1"); l != "tooz-1" {
			t.Fatalf("tooz sees leader %q, want tooz-1", l)
		}
		p.Must("stand_down", map[string]any{"group": "g1"}, nil)
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p.Must("create_group", map[string]any{"group": "g2"}, nil)
		p.Must("elect", map[string]any{"group": "g2"}, nil)
		eventually(t, toozWait, "tooz elected", func() bool { return isLeader("g2") })
		h, ok, err := b.Leader(ctx, "g2")
		if err != nil || !ok || h.Member != "tooz-1" {
			t.Fatalf("baton sees leader %+v (%v, %v), want tooz-1", h, ok, err)
		}
		if _, ok, err := b.TryCampaign(ctx, "g2", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton campaign while tooz leads: %v, %v; want refused", ok, err)
		}
		won := make(chan error, 1)
		go func() {
			g, err := b.Campaign(ctx, "g2", backend.LockOptions{})
			if err == nil {
				defer func() { _ = g.Release(context.Background()) }()
				if l := toozLeader("g2"); l != "baton-1" {
					t.Errorf("tooz sees leader %q after baton won, want baton-1", l)
				}
			}
			won <- err
		}()
		p.Must("stand_down", map[string]any{"group": "g2"}, nil)
		if err := <-won; err != nil {
			t.Fatalf("baton campaign after tooz stood down: %v", err)
		}
	})
}

func TestToozLock(t *testing.T) {
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	p := tooztest.Start(t, tu, "tooz-1")
	ctx := testCtx(t, 2*toozWait)
	for _, name := range []string{"plain", "nested/lock"} {
		t.Run("ToozSeesBaton/"+name, func(t *testing.T) {
			g, ok, err := b.TryLock(ctx, name, backend.LockOptions{})
			if err != nil || !ok {
				t.Fatalf("baton try lock: %v, %v", ok, err)
			}
			if p.Acquire(name) {
				t.Fatal("tooz took the lock baton holds")
			}
			got := make(chan bool, 1)
			go func() { got <- p.AcquireWithin(name, toozWait) }()
			time.Sleep(200 * time.Millisecond) // let tooz queue
			if err := g.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if !<-got {
				t.Fatal("tooz did not get the lock baton released")
			}
			if h, ok, err := b.LockHolder(ctx, name); err != nil || !ok || h.Member != "tooz-1" {
				t.Fatalf("baton sees holder %+v (%v, %v), want tooz-1", h, ok, err)
			}
			p.Release(name)
		})
		t.Run("BatonSeesTooz/"+name, func(t *testing.T) {
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
			time.Sleep(200 * time.Millisecond) // let baton queue
			if !p.Release(name) {
				t.Fatal("tooz release failed")
			}
			if err := <-got; err != nil {
				t.Fatalf("baton lock after tooz released: %v", err)
			}
		})
	}
}

func TestToozKill(t *testing.T) {
	bu, tu := toozPair(t)
	b := openBackend(t, bu, "baton-1")
	ctx := testCtx(t, 2*toozWait)
	if err := b.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	t.Run("BatonSeesTooz", func(t *testing.T) {
		p := tooztest.Start(t, tu, "tooz-dies")
		p.Must("join", map[string]any{"group": "g"}, nil)
		if !p.Acquire("l") {
			t.Fatal("tooz could not take a free lock")
		}
		if ms := batonMembers(t, b, "g"); !slices.Equal(ms, []string{"tooz-dies"}) {
			t.Fatalf("baton members %v, want [tooz-dies]", ms)
		}
		start := time.Now()
		p.Kill()
		eventually(t, toozWait, "the killed tooz member gone", func() bool { return len(batonMembers(t, b, "g")) == 0 })
		t.Logf("killed tooz member gone for baton after %v (session timeout 5 s)", time.Since(start).Round(time.Millisecond))
		g, err := b.Lock(ctx, "l", backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton lock after tooz was killed: %v", err)
		}
		t.Logf("killed tooz holder's lock taken by baton after %v", time.Since(start).Round(time.Millisecond))
		_ = g.Release(ctx)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		p := tooztest.Start(t, tu, "tooz-1")
		dying := openBackend(t, bu, "baton-dies")
		if err := dying.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := dying.TryLock(ctx, "l2", backend.LockOptions{}); err != nil || !ok {
			t.Fatalf("baton try lock: %v, %v", ok, err)
		}
		if ms := p.Members("g"); !slices.Equal(ms, []string{"baton-dies"}) {
			t.Fatalf("tooz members %v, want [baton-dies]", ms)
		}
		// Closed without leaving or releasing: its session ends.
		start := time.Now()
		crash(t, dying)
		eventually(t, toozWait, "the crashed baton member gone for tooz", func() bool { return len(p.Members("g")) == 0 })
		if !p.AcquireWithin("l2", toozWait) {
			t.Fatal("tooz could not take the crashed baton member's lock")
		}
		t.Logf("crashed baton member and lock gone for tooz after %v", time.Since(start).Round(time.Millisecond))
	})
}

// crash ends b's ZooKeeper session as a crash would (the server expires
// it), without leaving or releasing anything.
func crash(t *testing.T, b *backend.Backend) {
	t.Helper()
	expireSession(t, b)
	select {
	case <-b.Done():
	case <-time.After(toozWait):
		t.Fatal("the backend did not notice its session expired")
	}
	if err := b.Err(); !errors.Is(err, backend.ErrLost) {
		t.Fatalf("backend error after its session expired: %v, want ErrLost", err)
	}
}

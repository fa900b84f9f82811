package memcachedbackend

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/backend/drivertest"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
)

// toozTimeouts are the options both sides use in the mixed-fleet tests:
// tooz's syntax, so the same query serves tooz and baton. A member or a
// lock whose owner stopped beating is gone after 3 s.
const toozTimeouts = "timeout=5&membership_timeout=3&lock_timeout=3&leader_timeout=3"

// mixedFleet is baton (compat=tooz) and tooz on one server. tooz's
// memcached keys have no namespace: the tests use names of their own
// (sfx) so that they never meet.
type mixedFleet struct {
	sfx   string
	baton string // baton's connection string
	tooz  string // tooz's connection string for the same server
}

func newMixedFleet(t testing.TB, base string) mixedFleet {
	t.Helper()
	return mixedFleet{sfx: unique(), baton: withOptions(base, toozTimeouts, "compat=tooz"), tooz: withOptions(base, toozTimeouts)}
}

// g names a group, a lock or a member of this fleet.
func (f mixedFleet) g(name string) string { return name + "-" + f.sfx }

func mustPack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpack(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := msgpack.Unmarshal(b, &v); err != nil {
		t.Fatalf("capabilities %x are not msgpack: %v", b, err)
	}
	return v
}

func memberIDs(t testing.TB, b *backend.Backend, group string) []string {
	t.Helper()
	ms, err := b.Members(testCtx(t), group)
	if err != nil {
		t.Fatalf("members of %s: %v", group, err)
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func toozGroups(t testing.TB, p *tooztest.Peer) []string {
	t.Helper()
	var gs []string
	p.Must("get_groups", nil, &gs)
	return gs
}

func TestToozGroups(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, f.g("made-by-baton")); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(t, p); !slices.Contains(gs, f.g("made-by-baton")) {
			t.Fatalf("tooz's groups %v lack baton's group", gs)
		}
		_, err := p.Do("create_group", map[string]any{"group": f.g("made-by-baton")})
		if te := new(tooztest.Error); !errors.As(err, &te) || te.Type != "GroupAlreadyExist" {
			t.Fatalf("tooz created baton's group again: %v", err)
		}
		p.Must("delete_group", map[string]any{"group": f.g("made-by-baton")}, nil)
		gs, err := b.Groups(ctx)
		if err != nil || slices.Contains(gs, f.g("made-by-baton")) {
			t.Fatalf("baton's groups after tooz deleted it: %v %v", gs, err)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": f.g("made-by-tooz")}, nil)
		gs, err := b.Groups(ctx)
		if err != nil || !slices.Contains(gs, f.g("made-by-tooz")) {
			t.Fatalf("baton's groups %v lack tooz's group (%v)", gs, err)
		}
		if err := b.CreateGroup(ctx, f.g("made-by-tooz")); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("baton created tooz's group again: %v", err)
		}
		if err := b.DeleteGroup(ctx, f.g("made-by-tooz")); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(t, p); slices.Contains(gs, f.g("made-by-tooz")) {
			t.Fatalf("tooz still lists the group baton deleted: %v", gs)
		}
	})
}

func TestToozMembers(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": f.g("g")}, nil)
		if err := b.Join(ctx, f.g("g"), nil); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members(f.g("g")); !reflect.DeepEqual(ms, []string{f.g("baton-1")}) {
			t.Fatalf("tooz sees members %v, want [baton-1]", ms)
		}
		_, err := p.Do("delete_group", map[string]any{"group": f.g("g")})
		if te := new(tooztest.Error); !errors.As(err, &te) || te.Type != "GroupNotEmpty" {
			t.Fatalf("tooz deleted a group baton is a member of: %v", err)
		}
		if err := b.Leave(ctx, f.g("g")); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members(f.g("g")); len(ms) != 0 {
			t.Fatalf("tooz sees members %v after baton left", ms)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, f.g("g")); err != nil {
			t.Fatal(err)
		}
		p.Must("join", map[string]any{"group": f.g("g")}, nil)
		if err := b.Join(ctx, f.g("g"), nil); err != nil {
			t.Fatal(err)
		}
		if ids := memberIDs(t, b, f.g("g")); !reflect.DeepEqual(ids, []string{f.g("baton-1"), f.g("tooz-1")}) {
			t.Fatalf("baton sees members %v", ids)
		}
		if err := b.DeleteGroup(ctx, f.g("g")); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("baton deleted a group with a live tooz member: %v", err)
		}
		p.Must("leave", map[string]any{"group": f.g("g")}, nil)
		if ids := memberIDs(t, b, f.g("g")); !reflect.DeepEqual(ids, []string{f.g("baton-1")}) {
			t.Fatalf("baton sees members %v after tooz left", ids)
		}
	})
}

func TestToozCapabilities(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, f.g("g")); err != nil {
			t.Fatal(err)
		}
		if err := b.Join(ctx, f.g("g"), mustPack(t, map[string]any{"weight": 3, "zone": "a"})); err != nil {
			t.Fatal(err)
		}
		var caps map[string]any
		p.Must("capabilities", map[string]any{"group": f.g("g"), "member": f.g("baton-1")}, &caps)
		if want := map[string]any{"weight": 3.0, "zone": "a"}; !reflect.DeepEqual(caps, want) {
			t.Fatalf("tooz reads baton's capabilities as %v, want %v", caps, want)
		}
		if err := b.UpdateCapabilities(ctx, f.g("g"), mustPack(t, "v2")); err != nil {
			t.Fatal(err)
		}
		var str string
		p.Must("capabilities", map[string]any{"group": f.g("g"), "member": f.g("baton-1")}, &str)
		if str != "v2" {
			t.Fatalf("tooz reads baton's updated capabilities as %q", str)
		}
		if err := b.UpdateCapabilities(ctx, f.g("g"), nil); err != nil {
			t.Fatal(err)
		}
		var empty string
		p.Must("capabilities", map[string]any{"group": f.g("g"), "member": f.g("baton-1")}, &empty)
		if empty != "" {
			t.Fatalf("tooz reads baton's empty capabilities as %q, want b\"\"", empty)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": f.g("g")}, nil)
		p.Must("join", map[string]any{"group": f.g("g"), "caps": map[string]any{"weight": 5}}, nil)
		m, err := b.Member(ctx, f.g("g"), f.g("tooz-1"))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(unpack(t, m.Capabilities)); string(got) != `{"weight":5}` {
			t.Fatalf("baton reads tooz's capabilities as %s", got)
		}
		p.Must("update_capabilities", map[string]any{"group": f.g("g"), "caps_bytes": "raw"}, nil)
		m, err = b.Member(ctx, f.g("g"), f.g("tooz-1"))
		if err != nil {
			t.Fatal(err)
		}
		if got := unpack(t, m.Capabilities); !reflect.DeepEqual(got, []byte("raw")) {
			t.Fatalf("baton reads tooz's updated capabilities as %#v", got)
		}
	})
}

func TestToozLeader(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		ctx := testCtx(t)
		g, ok, err := b.TryCampaign(ctx, f.g("g"), backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton's campaign: %v %v", ok, err)
		}
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		var name string
		p.Must("leader", map[string]any{"group": f.g("g")}, &name)
		if name != f.g("baton-1") {
			t.Fatalf("tooz's get_leader names %q, want baton's member", name)
		}
		p.Must("elect", map[string]any{"group": f.g("g")}, nil)
		// tooz's candidate tries every 50 ms; it must not win while
		// baton leads, over a window of many of its rounds.
		var leader bool
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			p.Must("is_leader", map[string]any{"group": f.g("g")}, &leader)
			if leader {
				t.Fatal("tooz was elected while baton leads")
			}
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, "tooz elected after baton resigned", func() bool {
			p.Must("is_leader", map[string]any{"group": f.g("g")}, &leader)
			return leader
		})
		h, held, err := b.Leader(ctx, f.g("g"))
		if err != nil || !held || h.Member != f.g("tooz-1") {
			t.Fatalf("baton sees leader %v %v (%v) while tooz leads", h, held, err)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		p.Must("elect", map[string]any{"group": f.g("g")}, nil)
		var leader bool
		eventually(t, wait, "tooz elected", func() bool {
			p.Must("is_leader", map[string]any{"group": f.g("g")}, &leader)
			return leader
		})
		if h, held, err := b.Leader(ctx, f.g("g")); err != nil || !held || h.Member != f.g("tooz-1") {
			t.Fatalf("baton sees leader %v %v (%v) while tooz leads", h, held, err)
		}
		if _, ok, err := b.TryCampaign(ctx, f.g("g"), backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton elected while tooz leads: %v %v", ok, err)
		}
		// tooz's stop releases its leader lock; a waiting campaign wins.
		won := make(chan error, 1)
		go func() {
			g, err := b.Campaign(ctx, f.g("g"), backend.LockOptions{})
			if err == nil {
				defer g.Release(context.Background())
			}
			won <- err
		}()
		p.Stop()
		if err := <-won; err != nil {
			t.Fatalf("baton's campaign after tooz stopped: %v", err)
		}
	})
}

func TestToozLock(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		g, ok, err := b.TryLock(ctx, f.g("res"), backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton's lock: %v %v", ok, err)
		}
		if p.Acquire(f.g("res")) {
			t.Fatal("tooz acquired a lock baton holds")
		}
		got := make(chan bool, 1)
		go func() {
			var ok bool
			res, err := p.Do("lock_acquire", map[string]any{"name": f.g("res"), "timeout": wait.Seconds()})
			if err == nil {
				err = json.Unmarshal(res, &ok)
			}
			got <- err == nil && ok
		}()
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !<-got {
			t.Fatal("tooz did not get the lock baton released")
		}
		if !p.Release(f.g("res")) {
			t.Fatal("tooz's release failed")
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		if !p.Acquire(f.g("res")) {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, f.g("res"), backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton acquired a lock tooz holds: %v %v", ok, err)
		}
		if h, held, err := b.LockHolder(ctx, f.g("res")); err != nil || !held {
			t.Fatalf("baton sees lock free while tooz holds it: %v %v %v", h, held, err)
		}
		won := make(chan error, 1)
		go func() {
			g, err := b.Lock(ctx, f.g("res"), backend.LockOptions{})
			if err == nil {
				err = g.Release(context.Background())
			}
			won <- err
		}()
		if !p.Release(f.g("res")) {
			t.Fatal("tooz's release failed")
		}
		if err := <-won; err != nil {
			t.Fatalf("baton did not get the lock tooz released: %v", err)
		}
	})
}

func TestToozKill(t *testing.T) {
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		b := openBackend(t, f.baton, f.g("baton-1"))
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": f.g("g")}, nil)
		p.Must("join", map[string]any{"group": f.g("g")}, nil)
		if !p.Acquire(f.g("res")) {
			t.Fatal("tooz did not get a free lock")
		}
		if ids := memberIDs(t, b, f.g("g")); !slices.Contains(ids, f.g("tooz-1")) {
			t.Fatalf("baton does not see tooz: %v", ids)
		}
		p.Kill()
		start := time.Now()
		eventually(t, wait, "the killed tooz member gone for baton", func() bool {
			return !slices.Contains(memberIDs(t, b, f.g("g")), f.g("tooz-1"))
		})
		t.Logf("killed tooz member gone after %v (membership_timeout 3s)", time.Since(start).Round(time.Millisecond))
		g, err := b.Lock(ctx, f.g("res"), backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton did not get the killed tooz member's lock: %v", err)
		}
		t.Logf("killed tooz member's lock taken after %v (lock_timeout 3s)", time.Since(start).Round(time.Millisecond))
		_ = g.Release(ctx)
		if err := b.DeleteGroup(ctx, f.g("g")); err != nil {
			t.Fatalf("delete the group the killed member was in: %v", err)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, serverURL(t))
		// A connection that stops renewing without leaving or releasing,
		// as a crashed process: the driver alone, no Backend renewing it.
		p := tooztest.Start(t, f.tooz, f.g("tooz-1"))
		c := openToozConn(t, f.baton, f.g("baton-crashed"))
		ctx := testCtx(t)
		if err := c.CreateGroup(ctx, f.g("g")); err != nil {
			t.Fatal(err)
		}
		if err := c.Join(ctx, f.g("g"), nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "l/" + f.g("res"), Member: f.g("baton-crashed"), TTL: 3 * time.Second}); err != nil || !ok {
			t.Fatalf("lock: %v %v", ok, err)
		}
		if ms := p.Members(f.g("g")); !slices.Contains(ms, f.g("baton-crashed")) {
			t.Fatalf("tooz does not see baton: %v", ms)
		}
		start := time.Now()
		eventually(t, wait, "the crashed baton member gone for tooz", func() bool {
			return !slices.Contains(p.Members(f.g("g")), f.g("baton-crashed"))
		})
		t.Logf("crashed baton member gone for tooz after %v", time.Since(start).Round(time.Millisecond))
		if !p.AcquireWithin(f.g("res"), wait) {
			t.Fatal("tooz did not get the crashed baton member's lock")
		}
		t.Logf("crashed baton member's lock taken by tooz after %v", time.Since(start).Round(time.Millisecond))
		p.Release(f.g("res"))
	})
}

// openToozConn opens a driver connection (no Backend: nothing renews it).
func openToozConn(t testing.TB, u, member string) driver.Conn {
	t.Helper()
	c, _ := testutil.OpenConn(t, u, member, wait, open)
	return c
}

// TestConformanceTooz runs the conformance suite in compat=tooz mode. An
// explicit namespace prefixes tooz's keys, which isolates each subtest.
func TestConformanceTooz(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		NewURL: func(t testing.TB) string {
			return withOptions(freshURL(t, serverURL(t), conformanceOptions...), "compat=tooz")
		},
		ExpireSession: expireToozSession,
	})
}

// expireToozSession makes b's session lost as if its liveness key had
// expired: it deletes tooz's member key of b and the lock keys b holds.
func expireToozSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	s := settingsOf(t, b.Config())
	mc := rawClient(s)
	defer mc.Close()
	prefix := s.namespace + ":"
	_ = mc.Delete(prefix + toozMemberPrefix + b.MemberID())
	for _, k := range dumpKeys(t, s, prefix+toozLockPrefix) {
		if it, err := mc.Get(k); err == nil && string(it.Value) == b.MemberID() {
			_ = mc.Delete(k)
		}
	}
}

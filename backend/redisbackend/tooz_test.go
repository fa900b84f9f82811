package redisbackend

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
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
const toozTimeouts = "timeout=5&membership_timeout=3&lock_timeout=3"

// mixedFleet is one namespace shared by baton (compat=tooz) and tooz.
type mixedFleet struct {
	ns    string
	baton string // baton's connection string
	tooz  string // tooz's connection string for the same server and namespace
}

// newMixedFleet returns URLs of a fresh tooz namespace on base (a baton
// test URL, plain or sentinel: tooz's syntax is the same), and deletes
// every key of the namespace when the test ends.
func newMixedFleet(t testing.TB, base string) mixedFleet {
	t.Helper()
	ns := "tz" + unique()
	q := "namespace=" + ns + "&" + toozTimeouts
	f := mixedFleet{ns: ns, baton: withOptions(base, q, "compat=tooz"), tooz: withOptions(base, q)}
	cfg, err := backend.ParseURL(f.baton)
	if err != nil {
		t.Fatalf("parse %s: %v", f.baton, err)
	}
	t.Cleanup(func() {
		rdb, _ := rawClient(t, cfg)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for _, p := range []string{globEscape(ns) + "_*", globEscape("b'"+ns+"'") + "_*"} {
			iter := rdb.Scan(ctx, 0, p, 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
	})
	return f
}

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
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, "made-by-baton"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(t, p); !slices.Contains(gs, "made-by-baton") {
			t.Fatalf("tooz's groups %v lack baton's group", gs)
		}
		_, err := p.Do("create_group", map[string]any{"group": "made-by-baton"})
		if te := new(tooztest.Error); !errors.As(err, &te) || te.Type != "GroupAlreadyExist" {
			t.Fatalf("tooz created baton's group again: %v", err)
		}
		p.Must("delete_group", map[string]any{"group": "made-by-baton"}, nil)
		gs, err := b.Groups(ctx)
		if err != nil || slices.Contains(gs, "made-by-baton") {
			t.Fatalf("baton's groups after tooz deleted it: %v %v", gs, err)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": "made-by-tooz"}, nil)
		gs, err := b.Groups(ctx)
		if err != nil || !slices.Contains(gs, "made-by-tooz") {
			t.Fatalf("baton's groups %v lack tooz's group (%v)", gs, err)
		}
		if err := b.CreateGroup(ctx, "made-by-tooz"); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("baton created tooz's group again: %v", err)
		}
		if err := b.DeleteGroup(ctx, "made-by-tooz"); err != nil {
			t.Fatal(err)
		}
		if gs := toozGroups(t, p); slices.Contains(gs, "made-by-tooz") {
			t.Fatalf("tooz still lists the group baton deleted: %v", gs)
		}
	})
}

func TestToozMembers(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		if err := b.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); !reflect.DeepEqual(ms, []string{"baton-1"}) {
			t.Fatalf("tooz sees members %v, want [baton-1]", ms)
		}
		_, err := p.Do("delete_group", map[string]any{"group": "g"})
		if te := new(tooztest.Error); !errors.As(err, &te) || te.Type != "GroupNotEmpty" {
			t.Fatalf("tooz deleted a group baton is a member of: %v", err)
		}
		if err := b.Leave(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if ms := p.Members("g"); len(ms) != 0 {
			t.Fatalf("tooz sees members %v after baton left", ms)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		p.Must("join", map[string]any{"group": "g"}, nil)
		if err := b.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if ids := memberIDs(t, b, "g"); !reflect.DeepEqual(ids, []string{"baton-1", "tooz-1"}) {
			t.Fatalf("baton sees members %v", ids)
		}
		if err := b.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("baton deleted a group with a live tooz member: %v", err)
		}
		p.Must("leave", map[string]any{"group": "g"}, nil)
		if ids := memberIDs(t, b, "g"); !reflect.DeepEqual(ids, []string{"baton-1"}) {
			t.Fatalf("baton sees members %v after tooz left", ids)
		}
	})
}

func TestToozCapabilities(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		if err := b.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if err := b.Join(ctx, "g", mustPack(t, map[string]any{"weight": 3, "zone": "a"})); err != nil {
			t.Fatal(err)
		}
		var caps map[string]any
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &caps)
		if want := map[string]any{"weight": 3.0, "zone": "a"}; !reflect.DeepEqual(caps, want) {
			t.Fatalf("tooz reads baton's capabilities as %v, want %v", caps, want)
		}
		if err := b.UpdateCapabilities(ctx, "g", mustPack(t, "v2")); err != nil {
			t.Fatal(err)
		}
		var str string
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &str)
		if str != "v2" {
			t.Fatalf("tooz reads baton's updated capabilities as %q", str)
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
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		p.Must("join", map[string]any{"group": "g", "caps": map[string]any{"weight": 5}}, nil)
		m, err := b.Member(ctx, "g", "tooz-1")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(unpack(t, m.Capabilities)); string(got) != `{"weight":5}` {
			t.Fatalf("baton reads tooz's capabilities as %s", got)
		}
		p.Must("update_capabilities", map[string]any{"group": "g", "caps_bytes": "raw"}, nil)
		m, err = b.Member(ctx, "g", "tooz-1")
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
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		ctx := testCtx(t)
		g, ok, err := b.TryCampaign(ctx, "g", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton's campaign: %v %v", ok, err)
		}
		p := tooztest.Start(t, f.tooz, "tooz-1")
		p.Must("elect", map[string]any{"group": "g"}, nil)
		// tooz's candidate tries every 50 ms; it must not win while
		// baton leads, over a window of many of its rounds.
		var leader bool
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			p.Must("is_leader", map[string]any{"group": "g"}, &leader)
			if leader {
				t.Fatal("tooz was elected while baton leads")
			}
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, "tooz elected after baton resigned", func() bool {
			p.Must("is_leader", map[string]any{"group": "g"}, &leader)
			return leader
		})
		h, held, err := b.Leader(ctx, "g")
		if err != nil || !held {
			t.Fatalf("baton sees no leader while tooz leads: %v %v", held, err)
		}
		if h.Member != "" {
			t.Fatalf("tooz's leader reported as %q (tooz's redis value names nobody)", h.Member)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		p.Must("elect", map[string]any{"group": "g"}, nil)
		var leader bool
		eventually(t, wait, "tooz elected", func() bool {
			p.Must("is_leader", map[string]any{"group": "g"}, &leader)
			return leader
		})
		if _, held, err := b.Leader(ctx, "g"); err != nil || !held {
			t.Fatalf("baton sees no leader while tooz leads: %v %v", held, err)
		}
		if _, ok, err := b.TryCampaign(ctx, "g", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton elected while tooz leads: %v %v", ok, err)
		}
		// tooz's stop releases its leader lock; a waiting campaign wins.
		won := make(chan error, 1)
		go func() {
			g, err := b.Campaign(ctx, "g", backend.LockOptions{})
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
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		g, ok, err := b.TryLock(ctx, "res", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton's lock: %v %v", ok, err)
		}
		if p.Acquire("res") {
			t.Fatal("tooz acquired a lock baton holds")
		}
		got := make(chan bool, 1)
		go func() {
			var ok bool
			res, err := p.Do("lock_acquire", map[string]any{"name": "res", "timeout": wait.Seconds()})
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
		if !p.Release("res") {
			t.Fatal("tooz's release failed")
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		if !p.Acquire("res") {
			t.Fatal("tooz did not get a free lock")
		}
		if _, ok, err := b.TryLock(ctx, "res", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton acquired a lock tooz holds: %v %v", ok, err)
		}
		if h, held, err := b.LockHolder(ctx, "res"); err != nil || !held {
			t.Fatalf("baton sees lock free while tooz holds it: %v %v %v", h, held, err)
		}
		won := make(chan error, 1)
		go func() {
			g, err := b.Lock(ctx, "res", backend.LockOptions{})
			if err == nil {
				err = g.Release(context.Background())
			}
			won <- err
		}()
		if !p.Release("res") {
			t.Fatal("tooz's release failed")
		}
		if err := <-won; err != nil {
			t.Fatalf("baton did not get the lock tooz released: %v", err)
		}
	})
}

func TestToozKill(t *testing.T) {
	t.Run("BatonSeesTooz", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		b := openBackend(t, f.baton, "baton-1")
		p := tooztest.Start(t, f.tooz, "tooz-1")
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": "g"}, nil)
		p.Must("join", map[string]any{"group": "g"}, nil)
		if !p.Acquire("res") {
			t.Fatal("tooz did not get a free lock")
		}
		if ids := memberIDs(t, b, "g"); !slices.Contains(ids, "tooz-1") {
			t.Fatalf("baton does not see tooz: %v", ids)
		}
		p.Kill()
		start := time.Now()
		eventually(t, wait, "the killed tooz member gone for baton", func() bool {
			return !slices.Contains(memberIDs(t, b, "g"), "tooz-1")
		})
		t.Logf("killed tooz member gone after %v (membership_timeout 3s)", time.Since(start).Round(time.Millisecond))
		g, err := b.Lock(ctx, "res", backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton did not get the killed tooz member's lock: %v", err)
		}
		t.Logf("killed tooz member's lock taken after %v (lock_timeout 3s)", time.Since(start).Round(time.Millisecond))
		_ = g.Release(ctx)
		if err := b.DeleteGroup(ctx, "g"); err != nil {
			t.Fatalf("delete the group the killed member was in: %v", err)
		}
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		f := newMixedFleet(t, plainURL(t))
		// A connection that stops renewing without leaving or releasing,
		// as a crashed process: the driver alone, no Backend renewing it.
		p := tooztest.Start(t, f.tooz, "tooz-1")
		c := openToozConn(t, f.baton, "baton-crashed")
		ctx := testCtx(t)
		if err := c.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if err := c.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := c.TryLock(ctx, driver.LockRequest{Key: "l/res", Member: "baton-crashed", TTL: 3 * time.Second}); err != nil || !ok {
			t.Fatalf("lock: %v %v", ok, err)
		}
		if ms := p.Members("g"); !slices.Contains(ms, "baton-crashed") {
			t.Fatalf("tooz does not see baton: %v", ms)
		}
		start := time.Now()
		eventually(t, wait, "the crashed baton member gone for tooz", func() bool {
			return !slices.Contains(p.Members("g"), "baton-crashed")
		})
		t.Logf("crashed baton member gone for tooz after %v", time.Since(start).Round(time.Millisecond))
		if !p.AcquireWithin("res", wait) {
			t.Fatal("tooz did not get the crashed baton member's lock")
		}
		t.Logf("crashed baton member's lock taken by tooz after %v", time.Since(start).Round(time.Millisecond))
		p.Release("res")
	})
}

// openToozConn opens a driver connection (no Backend: nothing renews it).
func openToozConn(t testing.TB, u, member string) driver.Conn {
	t.Helper()
	c, _ := testutil.OpenConn(t, u, member, wait, open)
	return c
}

// TestConformanceTooz runs the conformance suite in compat=tooz mode,
// plain and through the sentinels.
func TestConformanceTooz(t *testing.T) {
	for name, base := range map[string]string{"plain": plainURL(t), "sentinel": sentinelHostList(t)} {
		t.Run(name, func(t *testing.T) {
			drivertest.Run(t, drivertest.Harness{
				NewURL:        func(t testing.TB) string { return newMixedFleet(t, base).baton },
				ExpireSession: expireToozSession,
			})
		})
	}
}

// expireToozSession makes b's session lost as if its liveness key had
// expired: it deletes tooz's beat key of b's member and the lock keys
// whose value names b's member.
func expireToozSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	rdb, _ := rawClient(t, b.Config())
	defer rdb.Close()
	ctx := testCtx(t)
	ns := b.Config().Options.String("namespace")
	if err := rdb.Del(ctx, toozKeys{ns: ns}.beat(b.MemberID())).Err(); err != nil {
		t.Fatalf("delete beat key: %v", err)
	}
	for _, p := range []string{globEscape(ns) + "_*_lock", globEscape("b'"+ns+"'") + "_*_lock"} {
		iter := rdb.Scan(ctx, 0, p, 1000).Iterator()
		for iter.Next(ctx) {
			v, err := rdb.Get(ctx, iter.Val()).Result()
			if lv, perr := parseLockValue(v); err == nil && perr == nil && lv.member == b.MemberID() {
				rdb.Del(ctx, iter.Val())
			}
		}
	}
}

// TestToozSentinel runs a mixed fleet through the sentinels: the same
// URL (tooz's sentinel=MASTER and sentinel_fallback syntax) serves both.
func TestToozSentinel(t *testing.T) {
	f := newMixedFleet(t, sentinelURL(t))
	b := openBackend(t, f.baton, "baton-1")
	p := tooztest.Start(t, f.tooz, "tooz-1")
	ctx := testCtx(t)
	p.Must("create_group", map[string]any{"group": "g"}, nil)
	p.Must("join", map[string]any{"group": "g"}, nil)
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if ids := memberIDs(t, b, "g"); !reflect.DeepEqual(ids, []string{"baton-1", "tooz-1"}) {
		t.Fatalf("baton sees members %v", ids)
	}
	if ms := p.Members("g"); !reflect.DeepEqual(ms, []string{"baton-1", "tooz-1"}) {
		t.Fatalf("tooz sees members %v", ms)
	}
	g, ok, err := b.TryLock(ctx, "res", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("baton's lock: %v %v", ok, err)
	}
	if p.Acquire("res") {
		t.Fatal("tooz acquired a lock baton holds")
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !p.Acquire("res") {
		t.Fatal("tooz did not get the lock baton released")
	}
	if _, ok, err := b.TryLock(ctx, "res", backend.LockOptions{}); err != nil || ok {
		t.Fatalf("baton acquired a lock tooz holds: %v %v", ok, err)
	}
}

// TestToozLockKeys checks the lock keys against the ones Python builds as
// tooz does ("%s_%s_lock" % (namespace, str(name)) before tooz 9.0).
func TestToozLockKeys(t *testing.T) {
	names := []string{"res", "it's", `both'"`, "back\\slash", "tab\there", "naïve", "leader_of_g"}
	script := `import json,sys
out=[]
for n in json.loads(sys.argv[1]):
    b=n.encode('utf-8')
    out.append(["%s_%s_lock" % (b'_tooz', str(b)), "%s_%s_lock" % (b'_tooz', str(n)), (b'_tooz' + b'_' + b + b'_lock').decode('utf-8')])
print(json.dumps(out))`
	arg, _ := json.Marshal(names)
	out, err := exec.Command(tooztest.Python, "-c", script, string(arg)).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want [][3]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		for j, form := range []string{lockKeyBytes, lockKeyStr, lockKeyPlain} {
			if got := (toozKeys{ns: toozNamespace, lockFmt: form}).lock(n, false); got != want[i][j] {
				t.Errorf("%s key of %q: got %q, want %q", form, n, got, want[i][j])
			}
		}
	}
}

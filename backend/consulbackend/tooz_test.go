package consulbackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
	"github.com/baton-go/baton/membership"
)

// Mixed fleets: a real tooz member (tooz's consul driver, driven through
// internal/tooztest) and baton Backends with compat=tooz on one agent and
// one namespace. Each test names the primitive; its subtests say who
// acts and who observes.

// Session TTLs in these tests, in seconds: python-consul2 refuses a TTL
// below 10 s (an assertion in Session.create), so tooz's is 10; baton's
// is 2 (the test agent accepts TTLs from 1 s), so a crashed baton member
// goes quickly.
const (
	toozTTL  = 10
	batonTTL = 2
)

// requireToozConsul fails the test, saying why, when the system Python's
// consul module is not the client tooz's consul driver is written for:
// tooz 3.1 requires python-consul2, whose Session.create takes a token;
// Debian's python3-consul (python-consul 0.7.1) has none, and tooz's
// start() then fails with "TypeError: Consul.Session.create() got an
// unexpected keyword argument 'token'". Debian's python3-consul2 is the
// one that works.
func requireToozConsul(t *testing.T) {
	t.Helper()
	const probe = "import inspect, consul\n" +
		"print('token' in inspect.signature(consul.Consul.Session.create).parameters)"
	out, err := exec.Command(tooztest.Python, "-c", probe).CombinedOutput()
	if err != nil {
		t.Fatalf("tooz's consul driver needs a Python consul client (Debian's python3-consul2): %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "True" {
		t.Fatal("the system Python's consul module is python-consul (Debian's python3-consul), whose Session.create takes no token: " +
			"tooz 3.1's consul driver (which requires python-consul2) fails at start with TypeError; install Debian's python3-consul2")
	}
}

// mixed is one namespace shared by baton (compat=tooz) and tooz.
type mixed struct {
	url  string // baton's URL
	tooz string // tooz's URL for the same agent and namespace
	ns   string
}

func newMixed(t *testing.T) mixed {
	t.Helper()
	requireToozConsul(t)
	base := singleURL(t)
	ns := "t-" + testutil.Unique()
	hostport := strings.TrimPrefix(base, "consul://")
	return mixed{
		url:  fmt.Sprintf("%s?compat=tooz&namespace=%s&ttl=%d", base, ns, batonTTL),
		tooz: fmt.Sprintf("consul://%s?namespace=%s&ttl=%d", hostport, ns, toozTTL),
		ns:   ns,
	}
}

func (m mixed) peer(t *testing.T, member string) *tooztest.Peer {
	t.Helper()
	return tooztest.Start(t, m.tooz, member)
}

func (m mixed) backend(t *testing.T, member string) *backend.Backend {
	t.Helper()
	return openBackend(t, m.url, member)
}

// toozGroups returns the groups tooz lists, sorted.
func toozGroups(t *testing.T, p *tooztest.Peer) []string {
	t.Helper()
	var gs []string
	p.Must("get_groups", nil, &gs)
	sort.Strings(gs)
	return gs
}

func batonGroups(t *testing.T, b *backend.Backend) []string {
	t.Helper()
	gs, err := b.Groups(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(gs)
	return gs
}

func batonMembers(t *testing.T, b *backend.Backend, g string) []string {
	t.Helper()
	ms, err := b.Members(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

func toozMembers(t *testing.T, p *tooztest.Peer, g string) []string {
	t.Helper()
	ms := p.Members(g)
	sort.Strings(ms)
	return ms
}

func want(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// toozErr returns tooz's exception class of err ("" for nil).
func toozErr(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var te *tooztest.Error
	if !errors.As(err, &te) {
		t.Fatalf("not a tooz error: %v", err)
	}
	return te.Type
}

// Groups created, listed and deleted by one side are seen by the other.
func TestToozGroups(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		for _, g := range []string{"g1", "g2"} {
			if err := b.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		want(t, "tooz's groups", toozGroups(t, p), "g1", "g2")
		_, err := p.Do("create_group", map[string]any{"group": "g1"})
		if toozErr(t, err) != "GroupAlreadyExist" {
			t.Fatalf("tooz create_group of baton's group: %v, want GroupAlreadyExist", err)
		}
		if err := b.DeleteGroup(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		want(t, "tooz's groups after baton's delete", toozGroups(t, p), "g2")
		p.Must("delete_group", map[string]any{"group": "g2"}, nil)
		want(t, "baton's groups after tooz deleted baton's group", batonGroups(t, b))
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		p.Must("create_group", map[string]any{"group": "t1"}, nil)
		p.Must("create_group", map[string]any{"group": "t2"}, nil)
		want(t, "baton's groups", batonGroups(t, b), "t1", "t2")
		if err := b.CreateGroup(ctx, "t1"); !errors.Is(err, backend.ErrGroupExists) {
			t.Fatalf("baton's CreateGroup of tooz's group: %v, want ErrGroupExists", err)
		}
		p.Must("delete_group", map[string]any{"group": "t1"}, nil)
		want(t, "baton's groups after tooz's delete", batonGroups(t, b), "t2")
		if err := b.DeleteGroup(ctx, "t2"); err != nil {
			t.Fatal(err)
		}
		want(t, "tooz's groups after baton deleted tooz's group", toozGroups(t, p))
	})
}

// Members joined by one side are listed by the other; a group with a
// member of either side cannot be deleted by the other; leaves are seen.
func TestToozMembers(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		if err := b.JoinCreate(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		want(t, "tooz's members", toozMembers(t, p, "g"), "baton-1")
		_, err := p.Do("delete_group", map[string]any{"group": "g"})
		if toozErr(t, err) != "GroupNotEmpty" {
			t.Fatalf("tooz delete_group with a baton member: %v, want GroupNotEmpty", err)
		}
		p.Must("join", map[string]any{"group": "g"}, nil)
		want(t, "tooz's members", toozMembers(t, p, "g"), "baton-1", "tooz-1")
		if err := b.Leave(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		want(t, "tooz's members after baton's leave", toozMembers(t, p, "g"), "tooz-1")
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		p.Must("join_create", map[string]any{"group": "g"}, nil)
		want(t, "baton's members", batonMembers(t, b, "g"), "tooz-1")
		if err := b.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
			t.Fatalf("baton's DeleteGroup with a tooz member: %v, want ErrGroupNotEmpty", err)
		}
		w, err := b.WatchGroup(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := b.Join(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		want(t, "baton's members", batonMembers(t, b, "g"), "baton-1", "tooz-1")
		p.Must("leave", map[string]any{"group": "g"}, nil)
		want(t, "baton's members after tooz's leave", batonMembers(t, b, "g"), "baton-1")
		// The watch (blocking queries) reports tooz's leave.
		for {
			ev := testutil.NextEvent(t, w, wait)
			if ev.Type == backend.EventLeft && ev.Member.ID == "tooz-1" {
				break
			}
		}
		p.Must("join", map[string]any{"group": "g"}, nil)
		for {
			ev := testutil.NextEvent(t, w, wait)
			if ev.Type == backend.EventJoined && ev.Member.ID == "tooz-1" {
				break
			}
		}
	})
}

// Capabilities written by one side (msgpack, as tooz's utils.dumps) are
// read by the other, at join and after an update.
func TestToozCapabilities(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		caps, err := membership.EncodeCapabilities(map[string]any{"host": "a", "weight": 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.JoinCreate(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &got)
		if got["host"] != "a" || got["weight"] != float64(3) {
			t.Fatalf("tooz reads baton's capabilities as %v", got)
		}
		caps, _ = membership.EncodeCapabilities(map[string]any{"host": "b"})
		if err := b.UpdateCapabilities(ctx, "g", caps); err != nil {
			t.Fatal(err)
		}
		got = nil
		p.Must("capabilities", map[string]any{"group": "g", "member": "baton-1"}, &got)
		if got["host"] != "b" || len(got) != 1 {
			t.Fatalf("tooz reads baton's updated capabilities as %v", got)
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		p.Must("join_create", map[string]any{"group": "g", "caps": map[string]any{"host": "t", "zone": []string{"x", "y"}}}, nil)
		read := func() map[string]any {
			t.Helper()
			ms, err := b.Members(ctx, "g")
			if err != nil || len(ms) != 1 {
				t.Fatalf("members = %v, %v", ms, err)
			}
			var v map[string]any
			if err := membership.DecodeCapabilities(ms[0].Capabilities, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := read(); v["host"] != "t" || fmt.Sprint(v["zone"]) != "[x y]" {
			t.Fatalf("baton reads tooz's capabilities as %v", v)
		}
		p.Must("update_capabilities", map[string]any{"group": "g", "caps": map[string]any{"host": "u"}}, nil)
		if v := read(); v["host"] != "u" || len(v) != 1 {
			t.Fatalf("baton reads tooz's updated capabilities as %v", v)
		}
		// tooz's default capabilities (b"") read as msgpack's empty bin.
		p2 := m.peer(t, "tooz-2")
		p2.Must("join", map[string]any{"group": "g"}, nil)
		ms, err := b.Member(ctx, "g", "tooz-2")
		if err != nil {
			t.Fatal(err)
		}
		var v []byte
		if err := membership.DecodeCapabilities(ms.Capabilities, &v); err != nil || len(v) != 0 {
			t.Fatalf("tooz's default capabilities %x read as %v, %v", ms.Capabilities, v, err)
		}
	})
}

// tooz's consul driver has no leader election (watch_elected_as_leader
// raises NotImplemented); baton's leaderships live in baton's own
// subtree, which tooz never lists.
func TestToozLeader(t *testing.T) {
	t.Run("ToozHasNone", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		_, err := p.Do("elect", map[string]any{"group": "g"})
		if toozErr(t, err) != "NotImplemented" {
			t.Fatalf("tooz elect: %v, want NotImplemented", err)
		}
		if err := b.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		g, ok, err := b.TryCampaign(ctx, "g", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("TryCampaign = %v, %v", ok, err)
		}
		defer g.Release(ctx)
		want(t, "tooz's groups with a baton leader", toozGroups(t, p), "g")
		want(t, "tooz's members with a baton leader", toozMembers(t, p, "g"))
	})
}

// acquireAsync runs b.Lock(name) and sends its outcome.
func acquireAsync(ctx context.Context, b *backend.Backend, name string) <-chan *backend.Grant {
	ch := make(chan *backend.Grant, 1)
	go func() {
		g, err := b.Lock(ctx, name, backend.LockOptions{})
		if err != nil {
			g = nil
		}
		ch <- g
	}()
	return ch
}

// A lock held by one side is refused to the other and handed over on
// release, both ways.
func TestToozLock(t *testing.T) {
	t.Run("ToozSeesBaton", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		g, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
		if err != nil || !ok {
			t.Fatalf("baton TryLock = %v, %v", ok, err)
		}
		if p.Acquire("x") {
			t.Fatal("tooz acquired a lock baton holds")
		}
		// A waiting tooz holder (tooz's retry loop) gets it once baton
		// releases.
		got := make(chan error, 1)
		go func() {
			res, err := p.Do("lock_acquire", map[string]any{"name": "x", "timeout": wait.Seconds()})
			if err == nil && string(res) != "true" {
				err = fmt.Errorf("tooz's acquire answered %s", res)
			}
			got <- err
		}()
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("tooz waiting for the lock baton released: %v", err)
			}
		case <-time.After(2 * wait):
			t.Fatal("tooz was not handed the lock baton released")
		}
		h, held, err := b.LockHolder(ctx, "x")
		if err != nil || !held || h.Member != "tooz-1" {
			t.Fatalf("LockHolder = %v, %v, %v; want tooz-1", h, held, err)
		}
		if _, ok, _ := b.TryLock(ctx, "x", backend.LockOptions{}); ok {
			t.Fatal("baton took the lock tooz holds")
		}
		if !p.Release("x") {
			t.Fatal("tooz's release of its lock answered false")
		}
	})
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz-1")
		ctx := testCtx(t)
		if !p.Acquire("x") {
			t.Fatal("tooz could not take a free lock")
		}
		if _, ok, err := b.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
			t.Fatalf("baton TryLock of tooz's lock = %v, %v", ok, err)
		}
		h, held, err := b.LockHolder(ctx, "x")
		if err != nil || !held || h.Member != "tooz-1" {
			t.Fatalf("LockHolder = %v, %v, %v; want tooz-1", h, held, err)
		}
		ch := acquireAsync(ctx, b, "x")
		select {
		case <-ch:
			t.Fatal("baton's Lock returned while tooz held the lock")
		case <-time.After(200 * time.Millisecond):
		}
		if !p.Release("x") {
			t.Fatal("tooz's release answered false")
		}
		var g *backend.Grant
		select {
		case g = <-ch:
		case <-time.After(wait):
			t.Fatal("baton's Lock was not handed tooz's released lock")
		}
		if g == nil || g.Token() <= h.Token {
			t.Fatalf("baton's grant %v: token not above tooz's acquisition index %d", g, h.Token)
		}
		if p.Acquire("x") {
			t.Fatal("tooz acquired the lock baton now holds")
		}
		if err := g.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !p.AcquireWithin("x", wait) {
			t.Fatal("tooz could not take the lock baton released")
		}
	})
}

// A crashed member of either side, as the other sees it.
//
// ToozKilled: a tooz process killed -9 keeps its membership for good, on
// both sides, because tooz never binds its member keys to its session
// (tooz's own view, checked with a second tooz member); its lock is freed
// when Consul invalidates its session (TTL to twice the TTL after its
// last renewal) and then only after the session's lock-delay (15 s,
// python-consul2's default), which baton honours by acquiring through
// Consul's acquire endpoint as tooz does.
//
// BatonKilled: a baton process killed -9 leaves for tooz, and frees its
// lock to tooz, once its session is invalidated: baton binds its member
// key and its locks to its session (Behavior=delete).
func TestToozKill(t *testing.T) {
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		victim, observer := m.peer(t, "tooz-1"), m.peer(t, "tooz-2")
		b := m.backend(t, "baton-1")
		ctx := testCtx(t)
		victim.Must("join_create", map[string]any{"group": "g"}, nil)
		if !victim.Acquire("x") {
			t.Fatal("tooz could not take a free lock")
		}
		h, held, err := b.LockHolder(ctx, "x")
		if err != nil || !held || h.Member != "tooz-1" {
			t.Fatalf("LockHolder = %v, %v, %v; want tooz-1", h, held, err)
		}
		victim.Kill()
		killedAt := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 3*wait)
		defer cancel()
		g, err := b.Lock(lctx, "x", backend.LockOptions{})
		if err != nil {
			t.Fatalf("baton's Lock of the killed tooz member's lock: %v", err)
		}
		after := time.Since(killedAt)
		if after < toozTTL*time.Second {
			t.Fatalf("lock handed over %v after the kill: before tooz's session TTL could run out", after)
		}
		if g.Token() <= h.Token {
			t.Fatalf("baton's token %d is not above tooz's acquisition index %d", g.Token(), h.Token)
		}
		if observer.Acquire("x") {
			t.Fatal("a tooz member acquired the lock baton took over")
		}
		want(t, "tooz's members after the kill (tooz never expires them)", toozMembers(t, observer, "g"), "tooz-1")
		want(t, "baton's members after the kill (as tooz sees them)", batonMembers(t, b, "g"), "tooz-1")
		t.Logf("kill -9 of a tooz holder: baton took its lock %v later (tooz's TTL %ds; Consul invalidates between TTL and 2×TTL, then tooz's lock-delay of 15 s); its membership stays on both sides",
			after.Round(time.Millisecond), toozTTL)
	})
	t.Run("ToozSeesBaton", func(t *testing.T) {
		if os.Getenv(testutil.HelperEnv) != "" {
			return
		}
		m := newMixed(t)
		events := make(chan testutil.Event, 4)
		child := testutil.StartChild(t, "holder", "TestHelperHolder", []string{"BATON_TEST_URL=" + m.url}, events)
		select {
		case <-events:
		case <-time.After(wait):
			t.Fatal("the baton holder process did not take the lock")
		}
		p := m.peer(t, "tooz-1")
		want(t, "tooz's members", toozMembers(t, p, "g"), "holder")
		if p.Acquire("x") {
			t.Fatal("tooz acquired the lock the baton process holds")
		}
		killedAt := child.Kill()
		deadline := time.Now().Add(3 * wait)
		for len(toozMembers(t, p, "g")) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("tooz still lists the killed baton member %v after the kill", 3*wait)
			}
			time.Sleep(50 * time.Millisecond)
		}
		left := time.Since(killedAt)
		if !p.AcquireWithin("x", 3*wait) {
			t.Fatal("tooz could not take the killed baton holder's lock")
		}
		took := time.Since(killedAt)
		if left < batonTTL*time.Second {
			t.Fatalf("the baton member left tooz's view %v after the kill: before its session TTL could run out", left)
		}
		t.Logf("kill -9 of a baton holder: tooz saw it leave %v and took its lock %v after the kill (baton's TTL %ds; Consul invalidates between TTL and 2×TTL)",
			left.Round(time.Millisecond), took.Round(time.Millisecond), batonTTL)
	})
}

// The keys a compat=tooz Backend writes are tooz's, byte for byte where
// tooz defines them: the group record (value ""), the member key (the
// capabilities as given, bound to a session named by the member ID), the
// lock key (tooz's value while held; released, not deleted, with the
// session ID as value, as tooz's release leaves it), the group lock; and
// names tooz's layout cannot hold go to baton's own subtree.
func TestToozLayout(t *testing.T) {
	m := newMixed(t)
	b := m.backend(t, "baton-1")
	ctx := testCtx(t)
	cli, done := newAdminClient(t, m.url)
	defer done()
	get := func(key string) *api.KVPair {
		t.Helper()
		p, _, err := cli.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	caps := []byte{0x81, 0xa1, 'a', 0x01} // msgpack {"a": 1}
	if err := b.JoinCreate(ctx, "g", caps); err != nil {
		t.Fatal(err)
	}
	if p := get(m.ns + "/groups/g/"); p == nil || len(p.Value) != 0 {
		t.Fatalf("group record = %+v, want an empty value", p)
	}
	mk := get(m.ns + "/groups/g/baton-1")
	if mk == nil || string(mk.Value) != string(caps) || mk.Session == "" {
		t.Fatalf("member key = %+v, want the capabilities, bound to a session", mk)
	}
	se, _, err := cli.Session().Info(mk.Session, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || se == nil || se.Name != "baton-1" {
		t.Fatalf("session of the member key = %+v, %v; want one named baton-1", se, err)
	}
	if p := get(m.ns + "/group_locks/g"); p == nil || p.Session != "" {
		t.Fatalf("group lock after the join = %+v, want a released key", p)
	}
	g, ok, err := b.TryLock(ctx, "x", backend.LockOptions{})
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	lk := get(m.ns + "/locks/x")
	if lk == nil || string(lk.Value) != toozLockValue || lk.Session != mk.Session || lk.ModifyIndex != g.Token() {
		t.Fatalf("lock key = %+v, want tooz's value held by the session at the token %d", lk, g.Token())
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if lk = get(m.ns + "/locks/x"); lk == nil || lk.Session != "" || string(lk.Value) != mk.Session {
		t.Fatalf("lock key after release = %+v, want it released with the session ID as value", lk)
	}
	// A group name tooz's layout cannot hold lives in baton's subtree.
	if err := b.CreateGroup(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if p := get(m.ns + "/baton/groups/a%2Fb/"); p == nil {
		t.Fatal("group a/b is not in baton's subtree")
	}
	want(t, "baton's groups", batonGroups(t, b), "a/b", "g")
	p := m.peer(t, "tooz-1")
	want(t, "tooz's groups", toozGroups(t, p), "g")
}

// Names with spaces, escapes, separators and non-ASCII mean the same key
// on both sides (tooz writes names as they are; both HTTP clients
// percent-encode the path): a tooz lock refuses baton, tooz's groups and
// member IDs read back exactly.
func TestToozNames(t *testing.T) {
	t.Run("BatonSeesTooz", func(t *testing.T) {
		m := newMixed(t)
		b, p := m.backend(t, "baton-1"), m.peer(t, "tooz/ü 1")
		ctx := testCtx(t)
		names := []string{"with space", "ünïcödé/日本", "a%2Fb", "q?x#y&z=1", "a/b/c"}
		for _, n := range names {
			if !p.Acquire(n) {
				t.Fatalf("tooz could not take lock %q", n)
			}
			if _, ok, err := b.TryLock(ctx, n, backend.LockOptions{}); err != nil || ok {
				t.Fatalf("baton TryLock of tooz's lock %q = %v, %v", n, ok, err)
			}
			if h, held, err := b.LockHolder(ctx, n); err != nil || !held || h.Member != "tooz/ü 1" {
				t.Fatalf("LockHolder(%q) = %v, %v, %v", n, h, held, err)
			}
		}
		p.Must("join_create", map[string]any{"group": "grp ü%20"}, nil)
		want(t, "baton's groups", batonGroups(t, b), "grp ü%20")
		want(t, "baton's members", batonMembers(t, b, "grp ü%20"), "tooz/ü 1")
	})
}

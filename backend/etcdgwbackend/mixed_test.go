package etcdgwbackend

import (
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/etcdbackend" // the gRPC driver, for the mixed tests only
	"github.com/baton-go/baton/internal/etcdtest"
	"github.com/baton-go/baton/internal/testutil"
)

// mixedTarget is a server the mixed tests run on, by its etcd3:// URL.
type mixedTarget struct {
	name string
	grpc func(testing.TB) string
}

var mixedTargets = []mixedTarget{{"single", grpcSingleURL}, {"cluster", grpcClusterURL}}

// mixed is a gRPC member "grpc" and a gateway member "http" on one
// namespace of one cluster.
type mixed struct {
	url     string // etcd3:// URL of the namespace
	ks      keyspace
	g, h    *backend.Backend
	members []*backend.Backend
}

func newMixed(t *testing.T, grpcBase string) *mixed {
	t.Helper()
	ns := "t-" + testutil.Unique()
	opts := "?namespace=" + ns + "&" + testTimeout
	m := &mixed{url: grpcBase + opts, ks: newKeyspace(ns)}
	m.g = openBackend(t, grpcBase+opts, "grpc")
	m.h = openBackend(t, gatewayURL(grpcBase)+opts, "http")
	return m
}

// entries counts the entries of lock on the server.
func (m *mixed) entries(t *testing.T, lock string) int64 {
	t.Helper()
	resp, err := etcdtest.AdminClient(t, m.url).Get(testCtx(t), m.ks.LockPrefix(lock), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// A gRPC member and a gateway member exclude each other on one lock, see
// one holder with one token, queue behind each other, and the tokens of
// successive holders increase whichever driver took the lock.
func TestMixedLocks(t *testing.T) {
	for _, tt := range mixedTargets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			m := newMixed(t, tt.grpc(t))
			for _, p := range []struct {
				name          string
				holder, other *backend.Backend
			}{{"grpc holds", m.g, m.h}, {"http holds", m.h, m.g}} {
				gr, ok, err := p.holder.TryLock(ctx, "x", backend.LockOptions{})
				if err != nil || !ok {
					t.Fatalf("%s: TryLock = %v, %v", p.name, ok, err)
				}
				if _, ok, err := p.other.TryLock(ctx, "x", backend.LockOptions{}); err != nil || ok {
					t.Fatalf("%s: the other's TryLock = %v, %v; want busy", p.name, ok, err)
				}
				for _, b := range []*backend.Backend{m.g, m.h} {
					hd, ok, err := b.LockHolder(ctx, "x")
					if err != nil || !ok || hd.Member != p.holder.MemberID() || hd.Token != gr.Token() {
						t.Fatalf("%s: %s sees holder %+v, %v, %v; want %s with token %d", p.name, b.MemberID(), hd, ok, err, p.holder.MemberID(), gr.Token())
					}
				}
				got := make(chan *backend.Grant, 1)
				go func() {
					w, err := p.other.Lock(ctx, "x", backend.LockOptions{})
					if err != nil {
						t.Errorf("%s: the other's Lock: %v", p.name, err)
					}
					got <- w
				}()
				testutil.Within(t, wait, "the waiter queues", func() bool { return m.entries(t, "l/x") == 2 })
				select {
				case w := <-got:
					t.Fatalf("%s: the other was granted %v while the lock was held", p.name, w)
				default:
				}
				if err := gr.Release(ctx); err != nil {
					t.Fatalf("%s: Release = %v", p.name, err)
				}
				select {
				case w := <-got:
					if w == nil {
						t.FailNow()
					}
					if w.Token() <= gr.Token() {
						t.Fatalf("%s: the waiter's token %d is not above %d", p.name, w.Token(), gr.Token())
					}
					if err := w.Release(ctx); err != nil {
						t.Fatal(err)
					}
				case <-time.After(wait):
					t.Fatalf("%s: the waiter was not granted the lock after Release", p.name)
				}
			}
		})
	}
}

// Members of both drivers hammer one lock: never two inside at once, and
// the tokens in the order of entry strictly increase.
func TestMixedLockContention(t *testing.T) {
	for _, tt := range mixedTargets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			m := newMixed(t, tt.grpc(t))
			g2 := openBackend(t, m.url, "grpc2")
			h2 := openBackend(t, gatewayURL(m.url), "http2")
			var (
				mu     sync.Mutex
				inside string
				tokens []uint64
				wg     sync.WaitGroup
			)
			const rounds = 15
			for _, b := range []*backend.Backend{m.g, m.h, g2, h2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds {
						gr, err := b.Lock(ctx, "hot", backend.LockOptions{})
						if err != nil {
							t.Errorf("%s: Lock: %v", b.MemberID(), err)
							return
						}
						mu.Lock()
						if inside != "" {
							t.Errorf("%s entered while %s was inside", b.MemberID(), inside)
						}
						inside = b.MemberID()
						tokens = append(tokens, gr.Token())
						mu.Unlock()
						time.Sleep(time.Millisecond)
						mu.Lock()
						inside = ""
						mu.Unlock()
						if err := gr.Release(ctx); err != nil {
							t.Errorf("%s: Release: %v", b.MemberID(), err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if len(tokens) != 4*rounds {
				t.Fatalf("%d grants, want %d", len(tokens), 4*rounds)
			}
			for i := 1; i < len(tokens); i++ {
				if tokens[i] <= tokens[i-1] {
					t.Fatalf("token %d after %d: not increasing", tokens[i], tokens[i-1])
				}
			}
		})
	}
}

// Groups, members, capabilities and watches are shared: each driver sees
// the other's group, joins, capability updates and leaves, in order.
func TestMixedGroups(t *testing.T) {
	for _, tt := range mixedTargets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			m := newMixed(t, tt.grpc(t))
			if err := m.h.CreateGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := m.g.CreateGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupExists) {
				t.Fatalf("gRPC CreateGroup of the gateway's group = %v, want ErrGroupExists", err)
			}
			for _, b := range []*backend.Backend{m.g, m.h} {
				gs, err := b.Groups(ctx)
				if err != nil || len(gs) != 1 || gs[0] != "g" {
					t.Fatalf("%s: Groups = %v, %v", b.MemberID(), gs, err)
				}
			}
			hw, err := m.h.WatchGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer hw.Close()
			gw, err := m.g.WatchGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			defer gw.Close()

			if err := m.g.Join(ctx, "g", []byte("grpc caps")); err != nil {
				t.Fatal(err)
			}
			if ev := testutil.NextEvent(t, hw, wait); ev.Type != backend.EventJoined || ev.Member.ID != "grpc" || string(ev.Member.Capabilities) != "grpc caps" {
				t.Fatalf("gateway watch: %v, want grpc joined with its capabilities", ev)
			}
			if err := m.h.Join(ctx, "g", []byte("http caps")); err != nil {
				t.Fatal(err)
			}
			for _, w := range []*backend.GroupWatch{gw} {
				if ev := testutil.NextEvent(t, w, wait); ev.Type != backend.EventJoined || ev.Member.ID != "grpc" {
					t.Fatalf("gRPC watch: %v, want grpc joined", ev)
				}
				if ev := testutil.NextEvent(t, w, wait); ev.Type != backend.EventJoined || ev.Member.ID != "http" || string(ev.Member.Capabilities) != "http caps" {
					t.Fatalf("gRPC watch: %v, want http joined with its capabilities", ev)
				}
			}
			if ev := testutil.NextEvent(t, hw, wait); ev.Type != backend.EventJoined || ev.Member.ID != "http" {
				t.Fatalf("gateway watch: %v, want http joined", ev)
			}
			for _, b := range []*backend.Backend{m.g, m.h} {
				for _, id := range []string{"grpc", "http"} {
					mb, err := b.Member(ctx, "g", id)
					if err != nil || string(mb.Capabilities) != id+" caps" || mb.JoinedAt.IsZero() {
						t.Fatalf("%s reads member %s: %+v, %v", b.MemberID(), id, mb, err)
					}
				}
			}
			if err := m.g.UpdateCapabilities(ctx, "g", []byte("new")); err != nil {
				t.Fatal(err)
			}
			if ev := testutil.NextEvent(t, hw, wait); ev.Type != backend.EventCapabilitiesChanged || ev.Member.ID != "grpc" || string(ev.Member.Capabilities) != "new" {
				t.Fatalf("gateway watch: %v, want grpc's capabilities updated", ev)
			}
			if err := m.h.Leave(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if err := m.h.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
				t.Fatalf("DeleteGroup with the gRPC member in it = %v, want ErrGroupNotEmpty", err)
			}
			if ev := testutil.NextEvent(t, gw, wait); ev.Type != backend.EventCapabilitiesChanged {
				t.Fatalf("gRPC watch: %v, want grpc updated", ev)
			}
			if ev := testutil.NextEvent(t, gw, wait); ev.Type != backend.EventLeft || ev.Member.ID != "http" {
				t.Fatalf("gRPC watch: %v, want http left", ev)
			}
			if err := m.g.Leave(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if ev := testutil.NextEvent(t, hw, wait); ev.Type != backend.EventLeft || ev.Member.ID != "http" {
				t.Fatalf("gateway watch: %v, want http left", ev)
			}
			if ev := testutil.NextEvent(t, hw, wait); ev.Type != backend.EventLeft || ev.Member.ID != "grpc" {
				t.Fatalf("gateway watch: %v, want grpc left", ev)
			}
			if err := m.h.DeleteGroup(ctx, "g"); err != nil {
				t.Fatalf("DeleteGroup = %v", err)
			}
			if ev := testutil.NextEvent(t, gw, wait); ev.Type != backend.EventLeft || ev.Member.ID != "grpc" {
				t.Fatalf("gRPC watch: %v, want grpc left", ev)
			}
			if ev := testutil.NextEvent(t, gw, wait); ev.Type != backend.EventGroupDeleted {
				t.Fatalf("gRPC watch: %v, want the group deleted", ev)
			}
		})
	}
}

// Both drivers agree on the leader of a group: one leader at a time
// whichever driver campaigns, observed by both, handed over on
// resignation with a larger token.
func TestMixedLeaders(t *testing.T) {
	for _, tt := range mixedTargets {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			m := newMixed(t, tt.grpc(t))
			obs, err := m.g.ObserveLeader(ctx, "e")
			if err != nil {
				t.Fatal(err)
			}
			defer obs.Close()
			next := func() backend.LeaderChange {
				t.Helper()
				select {
				case c, ok := <-obs.Changes():
					if !ok {
						t.Fatalf("observation ended: %v", obs.Err())
					}
					return c
				case <-time.After(wait):
					t.Fatal("no leader change")
				}
				return backend.LeaderChange{}
			}
			if c := next(); c.Held {
				t.Fatalf("first observation %+v, want no leader", c)
			}
			hl, err := m.h.Campaign(ctx, "e", backend.LockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c := next(); !c.Held || c.Leader.Member != "http" || c.Leader.Token != hl.Token() {
				t.Fatalf("gRPC observes %+v, want http with token %d", c, hl.Token())
			}
			if _, ok, err := m.g.TryCampaign(ctx, "e", backend.LockOptions{}); err != nil || ok {
				t.Fatalf("gRPC TryCampaign while http leads = %v, %v", ok, err)
			}
			elected := make(chan *backend.Grant, 1)
			go func() {
				gl, err := m.g.Campaign(ctx, "e", backend.LockOptions{})
				if err != nil {
					t.Errorf("gRPC Campaign: %v", err)
				}
				elected <- gl
			}()
			if err := hl.Release(ctx); err != nil {
				t.Fatal(err)
			}
			var gl *backend.Grant
			select {
			case gl = <-elected:
			case <-time.After(wait):
				t.Fatal("gRPC member not elected after http resigned")
			}
			if gl == nil {
				t.FailNow()
			}
			if gl.Token() <= hl.Token() {
				t.Fatalf("new term's token %d not above %d", gl.Token(), hl.Token())
			}
			for {
				c := next()
				if c.Held && c.Leader.Member == "grpc" {
					break
				}
				if c.Held {
					t.Fatalf("observed %+v after http resigned", c)
				}
			}
			ld, ok, err := m.h.Leader(ctx, "e")
			if err != nil || !ok || ld.Member != "grpc" || ld.Token != gl.Token() {
				t.Fatalf("gateway sees leader %+v, %v, %v; want grpc with token %d", ld, ok, err, gl.Token())
			}
		})
	}
}

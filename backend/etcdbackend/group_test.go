package etcdbackend

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/testutil"
)

// Names that escape, nest or look like bookkeeping stay distinct.
func TestNamesDoNotCollide(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	groups := []string{"a", "a/b", "a%2Fb", "a/members/x", "members", "..", "sessions", "locks", "ü /%"}
	members := []string{"m", "m/x", "m%2Fx", "/", "%"}
	bs := make([]*backend.Backend, len(members))
	for i, m := range members {
		bs[i] = openBackend(t, url, m)
	}
	for _, g := range groups {
		if err := bs[0].CreateGroup(ctx, g); err != nil {
			t.Fatalf("create %q: %v", g, err)
		}
	}
	// Join every group but the first with every member.
	for _, g := range groups[1:] {
		for _, b := range bs {
			if err := b.Join(ctx, g, []byte(g+"|"+b.MemberID())); err != nil {
				t.Fatalf("join %q as %q: %v", g, b.MemberID(), err)
			}
		}
	}
	got, err := bs[0].Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(groups)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Groups = %q, want %q", got, want)
	}
	if ms, err := bs[0].Members(ctx, "a"); err != nil || len(ms) != 0 {
		t.Fatalf("members of \"a\" = %v, %v; want none", ms, err)
	}
	for _, g := range groups[1:] {
		ms, err := bs[0].Members(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
			if string(m.Capabilities) != g+"|"+m.ID {
				t.Errorf("caps of %q in %q = %q", m.ID, g, m.Capabilities)
			}
		}
		wantIDs := slices.Clone(members)
		slices.Sort(wantIDs)
		if !slices.Equal(ids, wantIDs) {
			t.Errorf("members of %q = %q, want %q", g, ids, wantIDs)
		}
	}
	if err := bs[0].DeleteGroup(ctx, "a"); err != nil {
		t.Fatalf("delete the empty group \"a\" next to non-empty \"a/b\": %v", err)
	}
}

// DeleteGroup and Join race: either the join lands first and the delete
// is refused, or the delete lands first and the join finds no group.
// Never both, so no member is left in a deleted group.
func TestDeleteGroupRacesJoin(t *testing.T) {
	url := nsURL(singleURL(t))
	a, _ := openConn(t, url, "a")
	b, _ := openConn(t, url, "b")
	ctx := testCtx(t)
	for i := range 30 {
		g := fmt.Sprintf("g%d", i)
		if err := a.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var joinErr, delErr error
		wg.Add(2)
		go func() { defer wg.Done(); joinErr = b.Join(ctx, g, nil) }()
		go func() { defer wg.Done(); delErr = a.DeleteGroup(ctx, g) }()
		wg.Wait()
		switch {
		case joinErr == nil && testutil.CodeIs(delErr, driver.CodeGroupNotEmpty):
		case delErr == nil && testutil.CodeIs(joinErr, driver.CodeGroupNotFound):
		default:
			t.Fatalf("round %d: join = %v, delete = %v", i, joinErr, delErr)
		}
		resp, err := a.cli.Get(ctx, a.keys.MembersPrefix(g), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if delErr == nil && resp.Count != 0 {
			t.Fatalf("round %d: %d member keys left in the deleted group", i, resp.Count)
		}
	}
}

// A rejoin is a new incarnation; an update keeps the incarnation and the
// join time and moves the update time.
func TestMemberRecord(t *testing.T) {
	url := nsURL(singleURL(t))
	c, _ := openConn(t, url, "m")
	ctx := testCtx(t)
	if err := c.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := c.Join(ctx, "g", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	first := members(t, c, "g")[0]
	if first.JoinedAt.Before(before.Add(-time.Second)) || !first.UpdatedAt.Equal(first.JoinedAt) || string(first.Capabilities) != "v1" {
		t.Fatalf("after join: %+v", first)
	}
	if err := c.UpdateCapabilities(ctx, "g", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	upd := members(t, c, "g")[0]
	if upd.Incarnation != first.Incarnation || !upd.JoinedAt.Equal(first.JoinedAt) || upd.UpdatedAt.Before(first.UpdatedAt) || string(upd.Capabilities) != "v2" {
		t.Fatalf("after update: %+v, first %+v", upd, first)
	}
	// The update kept the member on the session lease.
	resp, err := c.cli.Get(ctx, c.keys.Member("g", "m"))
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != c.lease {
		t.Fatalf("member key after update: %v, %v; want it on lease %x", resp.Kvs, err, int64(c.lease))
	}
	if err := c.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if again := members(t, c, "g")[0]; again.Incarnation == first.Incarnation {
		t.Fatalf("rejoin kept incarnation %q", again.Incarnation)
	}
}

func members(t *testing.T, c *conn, g string) []driver.Member {
	t.Helper()
	ms, err := c.Members(testCtx(t), g)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Members(%q) = %v, %v; want one", g, ms, err)
	}
	return ms
}

// A member whose lease is gone no longer counts: its keys vanished with
// the lease, so the group can be deleted and watchers see it leave.
func TestExpiredMemberDoesNotBlockDelete(t *testing.T) {
	url := nsURL(singleURL(t))
	ctx := testCtx(t)
	a := openBackend(t, url, "a")
	gone := openBackend(t, url, "gone")
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := gone.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	w, err := a.WatchGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := a.DeleteGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotEmpty) {
		t.Fatalf("delete with a live member = %v, want ErrGroupNotEmpty", err)
	}
	if n := revokeMember(t, url, "gone"); n != 1 {
		t.Fatalf("revoked %d leases, want 1", n)
	}
	select {
	case ev := <-w.Events():
		if ev.Type != backend.EventLeft || ev.Member.ID != "gone" {
			t.Fatalf("event = %v, want gone left", ev)
		}
	case <-time.After(wait):
		t.Fatal("no left event")
	}
	if err := a.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete after the member expired: %v", err)
	}
	testutil.WaitClosed(t, gone.Done(), wait, "the revoked Backend ends")
	if !errors.Is(gone.Err(), backend.ErrLost) {
		t.Fatalf("revoked Backend's Err = %v, want ErrLost", gone.Err())
	}
}

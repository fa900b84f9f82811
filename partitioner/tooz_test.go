package partitioner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/internal/tooztest"
	"github.com/baton-go/baton/partitioner"
)

// toozObjects are the objects the mixed-fleet test places: ASCII, UTF-8
// and the shapes of real object names.
func toozObjects() []string {
	objs := []string{"", "a", "эхо", "instance/5f0c2c1e-3b8e-4c55-9a6f-0d8c3a1b2e44", "tenant:42/volume:7"}
	for i := range 1500 {
		objs = append(objs, fmt.Sprintf("obj-%d", i))
	}
	return objs
}

// TestToozAssignmentMatchesToozPartitioner runs tooz's own Partitioner
// (join_partitioned_group on tooz's file driver) with members of mixed
// weights, and checks that the Tooz assignment places every object on the
// members tooz's members_for_object names, for one replica and for three:
// NewToozRing, and Partitioners in the Tooz assignment joined with the
// same member IDs and weights.
func TestToozAssignmentMatchesToozPartitioner(t *testing.T) {
	members := []partitioner.Weighted{
		{ID: "alpha", Weight: 1},
		{ID: "bravo", Weight: 2},
		{ID: "charlie", Weight: 3},
		{ID: "delta", Weight: 0},
		{ID: "эхо", Weight: 1},
		{ID: "host-7.example.org:4242", Weight: 1},
	}
	objs := toozObjects()
	url := "file://" + t.TempDir()
	group := "fleet"
	var peers []*tooztest.Peer
	for _, m := range members {
		p := tooztest.Start(t, url, m.ID)
		p.Must("partitioner_join", map[string]any{"group": group, "weight": m.Weight}, nil)
		peers = append(peers, p)
	}
	first := peers[0]
	for _, parts := range []int{32, 8} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			// The first member's Partitioner was built before the others
			// joined; rebuild it from the whole group.
			first.Must("partitioner_refresh", map[string]any{"group": group, "partitions": parts}, nil)
			var one, three map[string][]string
			first.Must("members_for", map[string]any{"group": group, "objects": objs}, &one)
			first.Must("members_for", map[string]any{"group": group, "objects": objs, "replicas": 3}, &three)

			ring, err := partitioner.NewToozRing(members, parts)
			if err != nil {
				t.Fatal(err)
			}
			ps := toozPartitioners(t, members, parts)
			mismatches := 0
			for _, obj := range objs {
				key := []byte(obj)
				want1, want3 := one[obj], three[obj]
				if len(want1) != 1 || len(want3) != 3 {
					t.Fatalf("tooz placed %q on %v and %v", obj, want1, want3)
				}
				got, _ := ring.Owner(key)
				got3 := sorted(ring.Owners(key, 3))
				if got != want1[0] || !slices.Equal(got3, want3) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("%q: ring owner %s replicas %v, tooz %v and %v", obj, got, got3, want1, want3)
					}
				}
				for _, p := range ps {
					if o, ok := p.Owner(key); !ok || o != want1[0] {
						t.Fatalf("%q: partitioner of %s says owner %q, tooz %v", obj, p.Members(), o, want1)
					}
					if o := sorted(p.Owners(key, 3)); !slices.Equal(o, want3) {
						t.Fatalf("%q: partitioner replicas %v, tooz %v", obj, o, want3)
					}
				}
			}
			if mismatches > 0 {
				t.Fatalf("%d of %d objects placed differently from tooz", mismatches, len(objs))
			}
			// belongs_to_self: every object is owned by exactly one of the
			// Go members, the one tooz names.
			for _, obj := range objs[:200] {
				var owners []string
				for i, p := range ps {
					if p.OwnedBySelf([]byte(obj)) {
						owners = append(owners, members[i].ID)
					}
				}
				if !slices.Equal(owners, one[obj]) {
					t.Fatalf("%q owned by self at %v, tooz %v", obj, owners, one[obj])
				}
			}
		})
	}
	// The peers are killed when the test ends (tooztest.Start).
}

// toozPartitioners joins one Partitioner in the Tooz assignment per
// member (mem://, the member IDs and weights given) and waits until each
// sees them all.
func toozPartitioners(t *testing.T, members []partitioner.Weighted, parts int) []*partitioner.Partitioner {
	t.Helper()
	ctx := context.Background()
	url := "mem://tooz-" + testutil.Unique()
	var ps []*partitioner.Partitioner
	for _, m := range members {
		b, err := backend.Open(ctx, url, backend.WithMemberID(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(ctx) })
		p, err := partitioner.New(ctx, b, "fleet", partitioner.WithWeight(m.Weight), partitioner.WithToozPartitions(parts))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(ctx) })
		ps = append(ps, p)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range ps {
		for len(p.Members()) != len(members) {
			if time.Now().After(deadline) {
				t.Fatalf("a partitioner sees %v, want %d members", p.Members(), len(members))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return ps
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestToozAssignmentOptions(t *testing.T) {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://tooz-opts-"+testutil.Unique(), backend.WithMemberID("m"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(ctx) }()
	for _, opts := range [][]partitioner.Option{
		{partitioner.WithToozPartitions(0)},
		{partitioner.WithToozPartitions(-1)},
		{partitioner.WithAssignment(partitioner.Tooz), partitioner.WithMode(partitioner.Exclusive)},
	} {
		p, err := partitioner.New(ctx, b, "g", opts...)
		if err == nil {
			_ = p.Close(ctx)
			t.Fatalf("options accepted")
		}
		if !errors.Is(err, backend.ErrInvalidArgument) {
			t.Fatalf("err = %v, want ErrInvalidArgument", err)
		}
	}
}

// TestRingAssignmentsFollowTheGroup checks that the Ring and Tooz
// assignments, which follow joins and leaves by changing their ring in
// place, agree with a ring built afresh from the members after each
// change.
func TestRingAssignmentsFollowTheGroup(t *testing.T) {
	const parts = 64
	for _, tc := range []struct {
		name string
		opt  partitioner.Option
		want func([]partitioner.Weighted) []string
	}{
		{"ring", partitioner.WithAssignment(partitioner.Ring), func(ms []partitioner.Weighted) []string {
			o, err := partitioner.AssignRing(ms, parts)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}},
		{"tooz", partitioner.WithToozPartitions(16), func(ms []partitioner.Weighted) []string {
			r, err := partitioner.NewToozRing(ms, 16)
			if err != nil {
				t.Fatal(err)
			}
			o := make([]string, parts)
			for part := range parts {
				o[part], _ = r.Owner([]byte(fmt.Sprintf("partition-%d", part)))
			}
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url := "mem://ring-follow-" + testutil.Unique()
			open := func(id string, w int) *partitioner.Partitioner {
				b, err := backend.Open(ctx, url, backend.WithMemberID(id))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close(ctx) })
				p, err := partitioner.New(ctx, b, "g", tc.opt, partitioner.WithMode(partitioner.Advisory),
					partitioner.WithPartitions(parts), partitioner.WithWeight(w))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close(ctx) })
				return p
			}
			ms := []partitioner.Weighted{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 1}}
			var ps []*partitioner.Partitioner
			for _, m := range ms {
				ps = append(ps, open(m.ID, m.Weight))
			}
			agree := func(ms []partitioner.Weighted, ps []*partitioner.Partitioner) {
				t.Helper()
				want := tc.want(ms)
				deadline := time.Now().Add(30 * time.Second)
				for _, p := range ps {
					for {
						got := make([]string, parts)
						for part := range parts {
							got[part], _ = p.PartitionOwner(part)
						}
						if slices.Equal(got, want) {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("members %v: owners %v, want %v", p.Members(), got, want)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
			}
			agree(ms, ps)
			d := open("d", 3)
			agree(append(slices.Clone(ms), partitioner.Weighted{ID: "d", Weight: 3}), append(slices.Clone(ps), d))
			if err := d.Close(ctx); err != nil {
				t.Fatal(err)
			}
			agree(ms, ps)
		})
	}
}

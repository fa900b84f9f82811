package hashring

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// modes are the two placement modes, for tests that run in both.
var modes = []struct {
	name string
	opts []Option
}{
	{name: "xxhash"},
	{name: "tooz", opts: []Option{ToozCompatible()}},
}

// weighted is a node and its weight.
type weighted struct {
	node   string
	weight int
}

// mustRing builds a ring from nodes added in order, failing the test on
// error.
func mustRing(tb testing.TB, nodes []weighted, opts ...Option) *Ring {
	tb.Helper()
	r, err := New(opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	for _, n := range nodes {
		if err := r.Add(n.node, n.weight); err != nil {
			tb.Fatalf("Add(%q, %d): %v", n.node, n.weight, err)
		}
	}
	return r
}

// ones gives every node weight 1.
func ones(nodes ...string) []weighted {
	out := make([]weighted, len(nodes))
	for i, n := range nodes {
		out[i] = weighted{node: n, weight: 1}
	}
	return out
}

// ownedBy returns the number of points node owns.
func (r *Ring) ownedBy(node string) int {
	id, ok := r.ids[node]
	if !ok {
		return 0
	}
	return r.members[id].owned
}

// checkInvariants verifies the internal consistency of r.
func checkInvariants(r *Ring) error {
	if len(r.owner) != len(r.hi) || (r.tooz != (r.lo != nil) && len(r.hi) > 0) || (r.lo != nil && len(r.lo) != len(r.hi)) {
		return fmt.Errorf("slice lengths hi=%d lo=%d owner=%d tooz=%v", len(r.hi), len(r.lo), len(r.owner), r.tooz)
	}
	free := 0
	for id, m := range r.members {
		if m.name == "" {
			free++
			if !slices.Contains(r.free, int32(id)) {
				return fmt.Errorf("empty slot %d not in free list", id)
			}
			continue
		}
		if r.ids[m.name] != int32(id) {
			return fmt.Errorf("member %q at %d, index says %d", m.name, id, r.ids[m.name])
		}
	}
	if free != len(r.free) || len(r.members)-free != len(r.ids) {
		return fmt.Errorf("%d members, %d free slots, free list %d, %d names", len(r.members), free, len(r.free), len(r.ids))
	}
	owned := make(map[int32]int)
	for i, id := range r.owner {
		if i > 0 && comparePoints(r.at(i-1), r.at(i)) >= 0 {
			return fmt.Errorf("points %d and %d out of order", i-1, i)
		}
		if id < 0 || int(id) >= len(r.members) || r.members[id].name == "" {
			return fmt.Errorf("point %d owned by non-member %d", i, id)
		}
		owned[id]++
	}
	live, claims := 0, 0
	for _, name := range r.Nodes() {
		id := r.ids[name]
		m := r.members[id]
		if m.owned != owned[id] {
			return fmt.Errorf("node %q owned=%d, counted %d", name, m.owned, owned[id])
		}
		if m.owned > 0 {
			live++
		}
		claims += m.weight * r.vnodes
	}
	if live != r.live {
		return fmt.Errorf("live=%d, counted %d", r.live, live)
	}
	extra := 0
	for p, cl := range r.shared {
		i, ok := r.find(p)
		if !ok {
			return fmt.Errorf("shared point %v not on ring", p)
		}
		if len(cl) < 2 {
			return fmt.Errorf("shared point %v has %d claimants", p, len(cl))
		}
		if w := r.winner(cl); r.owner[i] != w {
			return fmt.Errorf("shared point %v owned by %d, winner %d", p, r.owner[i], w)
		}
		extra += len(cl) - 1
	}
	if claims != len(r.hi)+extra {
		return fmt.Errorf("claims=%d, points=%d + shared extra=%d", claims, len(r.hi), extra)
	}
	return nil
}

// sameRing reports how got differs from want, or nil. Member ids may
// differ; names must not.
func sameRing(got, want *Ring) error {
	if !slices.Equal(got.hi, want.hi) || !slices.Equal(got.lo, want.lo) {
		return fmt.Errorf("points differ: %d vs %d", len(got.hi), len(want.hi))
	}
	for i := range got.owner {
		if g, w := got.members[got.owner[i]].name, want.members[want.owner[i]].name; g != w {
			return fmt.Errorf("point %d owned by %q, want %q", i, g, w)
		}
	}
	gw, ww := weights(got), weights(want)
	if !maps.Equal(gw, ww) {
		return fmt.Errorf("weights %v, want %v", gw, ww)
	}
	if len(got.shared) != len(want.shared) {
		return fmt.Errorf("%d shared points, want %d", len(got.shared), len(want.shared))
	}
	for p, cl := range got.shared {
		if g, w := claimNames(got, cl), claimNames(want, want.shared[p]); !slices.Equal(g, w) {
			return fmt.Errorf("shared point %v claimants %v, want %v", p, g, w)
		}
	}
	return nil
}

func claimNames(r *Ring, cl []int32) []string {
	out := make([]string, len(cl))
	for i, id := range cl {
		out[i] = r.members[id].name
	}
	slices.Sort(out)
	return out
}

func weights(r *Ring) map[string]int {
	out := make(map[string]int)
	for _, n := range r.Nodes() {
		out[n], _ = r.Weight(n)
	}
	return out
}

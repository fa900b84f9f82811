package hashring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// namePool mixes ordinary names with names whose tooz points collide
// ("a"×4 is "aa"×2, "ab"×2 is "abab").
var namePool = []string{"a", "aa", "aaa", "ab", "abab", "b", "node-1", "node-2", "node-3", "эхо"}

// weakHash keeps 4 bits of xxhash, so that points collide all the time.
func weakHash(b []byte) uint64 { return xxhash.Sum64(b) & 0xf }

// propertyModes are the configurations the property tests explore.
var propertyModes = []struct {
	name string
	opts []Option
}{
	{name: "xxhash", opts: []Option{WithVirtualNodes(16)}},
	{name: "xxhash default vnodes"},
	{name: "tooz", opts: []Option{ToozCompatible()}},
	{name: "tooz few partitions", opts: []Option{ToozCompatible(), WithVirtualNodes(3)}},
	{name: "weak hash", opts: []Option{WithHash(weakHash), WithVirtualNodes(4)}},
}

// model is the expected state of a ring: its members in insertion order,
// where SetWeight to a new weight counts as a re-insertion (tooz's
// remove+add). A fresh ring built from it must equal the mutated one.
type model []weighted

func (m model) index(node string) int {
	return slices.IndexFunc(m, func(w weighted) bool { return w.node == node })
}

// apply performs op on r and m and checks the error r returns against
// the one m predicts.
func (m *model) apply(r *Ring, op int, node string, weight int) error {
	k := m.index(node)
	var err, want error
	switch op {
	case 0:
		err = r.Add(node, weight)
		if k >= 0 {
			want = ErrDuplicateNode
		} else {
			*m = append(*m, weighted{node, weight})
		}
	case 1:
		err = r.Remove(node)
		if k < 0 {
			want = ErrUnknownNode
		} else {
			*m = slices.Delete(*m, k, k+1)
		}
	default:
		err = r.SetWeight(node, weight)
		switch {
		case k < 0:
			want = ErrUnknownNode
		case (*m)[k].weight != weight:
			*m = append(slices.Delete(*m, k, k+1), weighted{node, weight})
		}
	}
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		return fmt.Errorf("op %d on %q weight %d: error %v, want %v", op, node, weight, err, want)
	}
	return nil
}

// verify checks r against a ring built afresh from m.
func (m model) verify(tb testing.TB, r *Ring, opts []Option, keys int) error {
	if err := checkInvariants(r); err != nil {
		return err
	}
	fresh := mustRing(tb, m, opts...)
	if err := sameRing(r, fresh); err != nil {
		return fmt.Errorf("incremental ring differs from fresh build: %w", err)
	}
	for i := range keys {
		key := fmt.Appendf(nil, "key-%d", i)
		if got, want := r.Owners(key, 3), fresh.Owners(key, 3); !slices.Equal(got, want) {
			return fmt.Errorf("Owners(%q) = %v, fresh build %v", key, got, want)
		}
	}
	return nil
}

// TestIncrementalEqualsFresh applies random Add/Remove/SetWeight sequences
// and compares the ring after each step with one built from scratch.
func TestIncrementalEqualsFresh(t *testing.T) {
	for _, mode := range propertyModes {
		t.Run(mode.name, func(t *testing.T) {
			seeds := uint64(20)
			if mode.opts == nil {
				seeds = 5 // 1024 points a node: the fresh rings cost the most
			}
			for seed := range seeds {
				rng := rand.New(rand.NewPCG(seed, 0x6861736872696e67))
				r, err := New(mode.opts...)
				if err != nil {
					t.Fatal(err)
				}
				var m model
				for step := range 60 {
					op, node, weight := rng.IntN(3), namePool[rng.IntN(len(namePool))], rng.IntN(4)
					if err := m.apply(r, op, node, weight); err != nil {
						t.Fatalf("seed %d step %d: %v", seed, step, err)
					}
					if err := m.verify(t, r, mode.opts, 20); err != nil {
						t.Fatalf("seed %d step %d (op %d %q w%d): %v", seed, step, op, node, weight, err)
					}
				}
			}
		})
	}
}

// TestMovementIsMinimal checks the consistent-hashing promise: when a node
// joins, grows, shrinks or leaves, the only keys that move are those it
// gains or loses, and every replica list changes only by that node.
func TestMovementIsMinimal(t *testing.T) {
	tests := []struct {
		name   string
		give   func(*Ring) error
		giveN  string // the node that changes
		gained bool   // keys may only move to giveN (else only away from it)
	}{
		{name: "join", give: func(r *Ring) error { return r.Add("joiner", 1) }, giveN: "joiner", gained: true},
		{name: "join heavy", give: func(r *Ring) error { return r.Add("joiner", 3) }, giveN: "joiner", gained: true},
		{name: "leave", give: func(r *Ring) error { return r.Remove("node-3") }, giveN: "node-3"},
		{name: "grow", give: func(r *Ring) error { return r.SetWeight("node-3", 2) }, giveN: "node-3", gained: true},
		{name: "shrink to 0", give: func(r *Ring) error { return r.SetWeight("node-3", 0) }, giveN: "node-3"},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				before := mustRing(t, ones(manyNames("node-", 10)...), mode.opts...)
				after := before.Clone()
				if err := tt.give(after); err != nil {
					t.Fatal(err)
				}
				moved := 0
				for i := range 20000 {
					key := fmt.Appendf(nil, "key-%d", i)
					a, _ := before.Owner(key)
					b, _ := after.Owner(key)
					if a != b {
						moved++
						if (tt.gained && b != tt.giveN) || (!tt.gained && a != tt.giveN) {
							t.Fatalf("key %q moved from %q to %q", key, a, b)
						}
					}
					// Without the changed node, replica lists are unchanged.
					ra, rb := before.Owners(key, 3, tt.giveN), after.Owners(key, 3, tt.giveN)
					if !slices.Equal(ra, rb) {
						t.Fatalf("Owners(%q) ignoring %q: %v before, %v after", key, tt.giveN, ra, rb)
					}
				}
				if moved == 0 {
					t.Errorf("no key moved")
				}
			})
		}
	}
}

// TestOrderIndependence checks that, in the default mode, placement does
// not depend on the order in which nodes were added, even when points
// collide (weak hash).
func TestOrderIndependence(t *testing.T) {
	opts := []Option{WithHash(weakHash), WithVirtualNodes(4)}
	nodes := []weighted{{"a", 1}, {"b", 2}, {"c", 1}, {"d", 3}, {"e", 1}}
	want := mustRing(t, nodes, opts...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if err := sameRing(mustRing(t, shuffled, opts...), want); err != nil {
			t.Fatalf("order %v: %v", shuffled, err)
		}
	}
}

// TestAddAllEqualsAdds checks that AddAll builds the ring the same Add
// calls build, shared points and insertion order included, onto an empty
// ring and onto one that already has members, and that it adds nothing
// when a node is invalid.
func TestAddAllEqualsAdds(t *testing.T) {
	for _, mode := range propertyModes {
		t.Run(mode.name, func(t *testing.T) {
			for seed := range uint64(10) {
				rng := rand.New(rand.NewPCG(seed, 0x616c6c))
				var nodes []Node
				for _, name := range namePool {
					if rng.IntN(3) > 0 {
						nodes = append(nodes, Node{Name: name, Weight: rng.IntN(4)})
					}
				}
				rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
				split := rng.IntN(len(nodes) + 1)
				want, err := New(mode.opts...)
				if err != nil {
					t.Fatal(err)
				}
				got := want.Clone()
				for _, n := range nodes {
					if err := want.Add(n.Name, n.Weight); err != nil {
						t.Fatal(err)
					}
				}
				for _, n := range nodes[:split] {
					if err := got.Add(n.Name, n.Weight); err != nil {
						t.Fatal(err)
					}
				}
				if err := got.AddAll(nodes[split:]...); err != nil {
					t.Fatal(err)
				}
				if err := checkInvariants(got); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if err := sameRing(got, want); err != nil {
					t.Fatalf("seed %d, %v after %v: %v", seed, nodes[split:], nodes[:split], err)
				}
				for i := range 200 {
					key := fmt.Appendf(nil, "k%d", i)
					if a, b := got.Owners(key, 3), want.Owners(key, 3); !slices.Equal(a, b) {
						t.Fatalf("seed %d: Owners(%q) = %v, want %v", seed, key, a, b)
					}
				}
			}
			r, _ := New(mode.opts...)
			for _, bad := range [][]Node{{{"x", 1}, {"", 1}}, {{"x", 1}, {"x", 2}}, {{"x", 1}, {"y", -1}}} {
				if err := r.AddAll(bad...); err == nil || r.Len() != 0 {
					t.Fatalf("AddAll(%v) = %v, %d nodes added", bad, err, r.Len())
				}
			}
		})
	}
}

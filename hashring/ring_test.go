package hashring

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name       string
		giveOpts   []Option
		wantErr    error
		wantVnodes int
		wantTooz   bool
	}{
		{name: "defaults", wantVnodes: DefaultVirtualNodes},
		{name: "tooz default partitions", giveOpts: []Option{ToozCompatible()}, wantVnodes: 32, wantTooz: true},
		{name: "tooz partitions before", giveOpts: []Option{WithVirtualNodes(8), ToozCompatible()}, wantVnodes: 8, wantTooz: true},
		{name: "tooz partitions after", giveOpts: []Option{ToozCompatible(), WithVirtualNodes(8)}, wantVnodes: 8, wantTooz: true},
		{name: "custom vnodes", giveOpts: []Option{WithVirtualNodes(1)}, wantVnodes: 1},
		{name: "custom hash", giveOpts: []Option{WithHash(func([]byte) uint64 { return 0 })}, wantVnodes: DefaultVirtualNodes},
		{name: "zero vnodes", giveOpts: []Option{WithVirtualNodes(0)}, wantErr: ErrInvalidOption},
		{name: "negative vnodes", giveOpts: []Option{WithVirtualNodes(-3)}, wantErr: ErrInvalidOption},
		{name: "huge vnodes", giveOpts: []Option{WithVirtualNodes(MaxPointsPerNode + 1)}, wantErr: ErrInvalidOption},
		{name: "nil hash", giveOpts: []Option{WithHash(nil)}, wantErr: ErrInvalidOption},
		{name: "hash with tooz", giveOpts: []Option{ToozCompatible(), WithHash(func([]byte) uint64 { return 0 })}, wantErr: ErrInvalidOption},
		{name: "nil option", giveOpts: []Option{nil}, wantErr: ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.giveOpts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.vnodes != tt.wantVnodes || r.tooz != tt.wantTooz {
				t.Errorf("vnodes=%d tooz=%v, want %d %v", r.vnodes, r.tooz, tt.wantVnodes, tt.wantTooz)
			}
		})
	}
}

func TestMutationErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    func(r *Ring) error
		wantErr error
	}{
		{name: "add", give: func(r *Ring) error { return r.Add("c", 1) }},
		{name: "add weight 0", give: func(r *Ring) error { return r.Add("c", 0) }},
		{name: "add duplicate", give: func(r *Ring) error { return r.Add("a", 1) }, wantErr: ErrDuplicateNode},
		{name: "add duplicate weight 0", give: func(r *Ring) error { return r.Add("zero", 2) }, wantErr: ErrDuplicateNode},
		{name: "add empty name", give: func(r *Ring) error { return r.Add("", 1) }, wantErr: ErrInvalidNode},
		{name: "add negative weight", give: func(r *Ring) error { return r.Add("c", -1) }, wantErr: ErrInvalidWeight},
		{name: "add huge weight", give: func(r *Ring) error { return r.Add("c", MaxPointsPerNode) }, wantErr: ErrInvalidWeight},
		{name: "remove", give: func(r *Ring) error { return r.Remove("a") }},
		{name: "remove weight 0", give: func(r *Ring) error { return r.Remove("zero") }},
		{name: "remove unknown", give: func(r *Ring) error { return r.Remove("biz") }, wantErr: ErrUnknownNode},
		{name: "set weight", give: func(r *Ring) error { return r.SetWeight("a", 3) }},
		{name: "set same weight", give: func(r *Ring) error { return r.SetWeight("a", 1) }},
		{name: "set weight unknown", give: func(r *Ring) error { return r.SetWeight("biz", 1) }, wantErr: ErrUnknownNode},
		{name: "set negative weight", give: func(r *Ring) error { return r.SetWeight("a", -1) }, wantErr: ErrInvalidWeight},
		{name: "set huge weight", give: func(r *Ring) error { return r.SetWeight("a", MaxPointsPerNode) }, wantErr: ErrInvalidWeight},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				r := mustRing(t, []weighted{{"a", 1}, {"b", 2}, {"zero", 0}}, mode.opts...)
				before := r.Clone()
				err := tt.give(r)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if err != nil {
					if diff := sameRing(r, before); diff != nil {
						t.Errorf("failed call changed the ring: %v", diff)
					}
				}
				if err := checkInvariants(r); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func TestAccessors(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			r := mustRing(t, []weighted{{"b", 2}, {"a", 1}, {"zero", 0}}, mode.opts...)
			if got, want := r.Nodes(), []string{"a", "b", "zero"}; !slices.Equal(got, want) {
				t.Errorf("Nodes() = %v, want %v", got, want)
			}
			if got := r.Len(); got != 3 {
				t.Errorf("Len() = %d, want 3", got)
			}
			if got, want := r.Points(), 3*r.vnodes; got != want {
				t.Errorf("Points() = %d, want %d", got, want)
			}
			tests := []struct {
				give       string
				wantWeight int
				wantOK     bool
			}{
				{give: "a", wantWeight: 1, wantOK: true},
				{give: "b", wantWeight: 2, wantOK: true},
				{give: "zero", wantWeight: 0, wantOK: true},
				{give: "c"},
			}
			for _, tt := range tests {
				w, ok := r.Weight(tt.give)
				if w != tt.wantWeight || ok != tt.wantOK {
					t.Errorf("Weight(%q) = %d, %v, want %d, %v", tt.give, w, ok, tt.wantWeight, tt.wantOK)
				}
			}
		})
	}
}

func TestOwnersEdgeCases(t *testing.T) {
	abc := []weighted{{"a", 1}, {"b", 1}, {"c", 1}}
	tests := []struct {
		name       string
		giveNodes  []weighted
		giveN      int
		giveIgnore []string
		wantLen    int
		wantOwner  bool
	}{
		{name: "empty ring", giveN: 3},
		{name: "only weight 0", giveNodes: []weighted{{"z", 0}, {"y", 0}}, giveN: 3},
		{name: "weight 0 counted as member", giveNodes: []weighted{{"a", 1}, {"z", 0}}, giveN: 2, wantLen: 1, wantOwner: true},
		{name: "n larger than nodes with points", giveNodes: []weighted{{"a", 1}, {"b", 1}, {"z", 0}, {"y", 0}}, giveN: 10, wantLen: 2, wantOwner: true},
		{name: "n zero", giveNodes: abc, giveN: 0, wantOwner: true},
		{name: "n negative", giveNodes: abc, giveN: -1, wantOwner: true},
		{name: "n one", giveNodes: abc, giveN: 1, wantLen: 1, wantOwner: true},
		{name: "n equals nodes", giveNodes: abc, giveN: 3, wantLen: 3, wantOwner: true},
		{name: "replicas beyond nodes", giveNodes: abc, giveN: 5, wantLen: 3, wantOwner: true},
		{name: "ignore one", giveNodes: abc, giveN: 3, giveIgnore: []string{"b"}, wantLen: 2, wantOwner: true},
		{name: "ignore duplicates", giveNodes: abc, giveN: 3, giveIgnore: []string{"b", "b", "b"}, wantLen: 2, wantOwner: true},
		{name: "ignore unknown", giveNodes: abc, giveN: 3, giveIgnore: []string{"x"}, wantLen: 3, wantOwner: true},
		{name: "ignore weight 0", giveNodes: append(ones("a", "b"), weighted{"z", 0}), giveN: 3, giveIgnore: []string{"z"}, wantLen: 2, wantOwner: true},
		{name: "ignore all", giveNodes: abc, giveN: 3, giveIgnore: []string{"a", "b", "c"}, wantOwner: true},
		{name: "ignore all but weight 0", giveNodes: append(ones("a", "b"), weighted{"z", 0}), giveN: 3, giveIgnore: []string{"a", "b"}, wantOwner: true},
		{name: "ignore many", giveNodes: abc, giveN: 3, giveIgnore: append(manyNames("x", 40), "a"), wantLen: 2, wantOwner: true},
		{name: "many replicas", giveNodes: ones(manyNames("n", 40)...), giveN: 30, giveIgnore: manyNames("n", 5), wantLen: 30, wantOwner: true},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				r := mustRing(t, tt.giveNodes, mode.opts...)
				for i := range 50 {
					key := fmt.Appendf(nil, "key-%d", i)
					got := r.Owners(key, tt.giveN, tt.giveIgnore...)
					if len(got) != tt.wantLen {
						t.Fatalf("Owners(%q, %d, %v) = %v, want %d nodes", key, tt.giveN, tt.giveIgnore, got, tt.wantLen)
					}
					if err := checkOwners(r, key, tt.giveN, tt.giveIgnore, got); err != nil {
						t.Fatal(err)
					}
					if _, ok := r.Owner(key); ok != tt.wantOwner {
						t.Fatalf("Owner(%q) ok = %v, want %v", key, ok, tt.wantOwner)
					}
				}
			})
		}
	}
}

func manyNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// checkOwners verifies the invariants of an Owners result.
func checkOwners(r *Ring, key []byte, n int, ignore, got []string) error {
	if len(got) > max(n, 0) {
		return fmt.Errorf("Owners returned %d > n=%d nodes", len(got), n)
	}
	seen := make(map[string]bool)
	for _, g := range got {
		if seen[g] {
			return fmt.Errorf("Owners returned %q twice: %v", g, got)
		}
		seen[g] = true
		if slices.Contains(ignore, g) {
			return fmt.Errorf("Owners returned ignored %q", g)
		}
		if w, ok := r.Weight(g); !ok || w == 0 {
			return fmt.Errorf("Owners returned %q with weight %d, member %v", g, w, ok)
		}
	}
	owner, ok := r.Owner(key)
	first := r.Owners(key, 1)
	if ok != (len(first) == 1) || (ok && owner != first[0]) {
		return fmt.Errorf("Owner = %q, %v; Owners(1) = %v", owner, ok, first)
	}
	// Fewer than n only when no other node owns points.
	if len(got) < n {
		live := 0
		for _, name := range r.Nodes() {
			if r.ownedBy(name) > 0 && !slices.Contains(ignore, name) {
				live++
			}
		}
		if len(got) != live {
			return fmt.Errorf("Owners returned %d of %d available nodes", len(got), live)
		}
	}
	return nil
}

func TestOwnersOrderIsClockwise(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			r := mustRing(t, ones(manyNames("n", 8)...), mode.opts...)
			for i := range 200 {
				key := fmt.Appendf(nil, "k%d", i)
				all := r.Owners(key, 8)
				// Ignoring the first owner promotes the second, and so on.
				for j := range all {
					got := r.Owners(key, 8-j, all[:j]...)
					if !slices.Equal(got, all[j:]) {
						t.Fatalf("Owners(%q, ignore %v) = %v, want %v", key, all[:j], got, all[j:])
					}
				}
				// A prefix of the replica list is the shorter replica list.
				for n := 1; n <= 8; n++ {
					if got := r.Owners(key, n); !slices.Equal(got, all[:n]) {
						t.Fatalf("Owners(%q, %d) = %v, want %v", key, n, got, all[:n])
					}
				}
			}
		})
	}
}

func TestClone(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			r := mustRing(t, []weighted{{"a", 1}, {"aa", 1}, {"b", 2}}, mode.opts...)
			c := r.Clone()
			if err := sameRing(c, r); err != nil {
				t.Fatal(err)
			}
			before := r.Clone()
			if err := c.Add("d", 3); err != nil {
				t.Fatal(err)
			}
			if err := c.Remove("aa"); err != nil {
				t.Fatal(err)
			}
			if err := c.SetWeight("a", 4); err != nil {
				t.Fatal(err)
			}
			if err := sameRing(r, before); err != nil {
				t.Errorf("mutating the clone changed the original: %v", err)
			}
			for _, x := range []*Ring{r, c} {
				if err := checkInvariants(x); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestSetWeightMatchesAdd(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			for _, w := range []int{0, 1, 2, 5} {
				r := mustRing(t, []weighted{{"a", 2}, {"b", 1}, {"c", 3}}, mode.opts...)
				if err := r.SetWeight("a", w); err != nil {
					t.Fatal(err)
				}
				// In tooz mode SetWeight is a re-insertion: "a" goes last.
				want := mustRing(t, []weighted{{"b", 1}, {"c", 3}, {"a", w}}, mode.opts...)
				if err := sameRing(r, want); err != nil {
					t.Errorf("weight %d: %v", w, err)
				}
				if err := checkInvariants(r); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestCustomHash(t *testing.T) {
	// A constant hash puts every point at one position: the ring must
	// stay consistent and give the smallest name, whatever the order.
	constant := func([]byte) uint64 { return 42 }
	for _, order := range [][]string{{"b", "a", "c"}, {"c", "b", "a"}} {
		r := mustRing(t, ones(order...), WithHash(constant), WithVirtualNodes(4))
		if got := r.Points(); got != 1 {
			t.Errorf("Points() = %d, want 1", got)
		}
		if got, _ := r.Owner([]byte("x")); got != "a" {
			t.Errorf("order %v: Owner = %q, want a", order, got)
		}
		if got := r.Owners([]byte("x"), 3); !slices.Equal(got, []string{"a"}) {
			t.Errorf("order %v: Owners = %v, want [a]", order, got)
		}
		if err := r.Remove("a"); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.Owner([]byte("x")); got != "b" {
			t.Errorf("order %v: after removing a, Owner = %q, want b", order, got)
		}
		if err := checkInvariants(r); err != nil {
			t.Error(err)
		}
	}
}

// TestConcurrentReads runs reads in parallel on a shared ring; run with
// -race.
func TestConcurrentReads(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			r := mustRing(t, ones(manyNames("n", 10)...), mode.opts...)
			// The answers of one goroutine, computed before any other
			// reads: concurrent readers must get exactly the same.
			want := map[string]string{}
			for g := range 8 {
				for i := range 500 {
					key := fmt.Sprintf("%d-%d", g, i)
					want[key], _ = r.Owner([]byte(key))
				}
			}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 500 {
						key := fmt.Sprintf("%d-%d", g, i)
						if got, _ := r.Owner([]byte(key)); got != want[key] {
							errs <- fmt.Sprintf("Owner(%q) = %q concurrently; %q alone", key, got, want[key])
							return
						}
						if owners := r.Owners([]byte(key), 3, "n1"); len(owners) != 3 {
							errs <- fmt.Sprintf("Owners(%q, 3) = %v", key, owners)
							return
						}
						if n := len(r.Nodes()); n != 10 {
							errs <- fmt.Sprintf("Nodes() has %d nodes; want 10", n)
							return
						}
						if w, _ := r.Weight("n2"); w != 1 {
							errs <- fmt.Sprintf("Weight(n2) = %v; want 1", w)
							return
						}
						if i%100 == 0 {
							if got, _ := r.Clone().Owner([]byte(key)); got != want[key] {
								errs <- fmt.Sprintf("a clone disagrees on %q", key)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

// TestStrictlyGreater checks that a key whose hash equals a point belongs
// to the next point, and that positions past the last point wrap.
func TestStrictlyGreater(t *testing.T) {
	positions := map[string]uint64{
		"a\x000": 100, "b\x000": 200, "c\x000": 300,
		"k99": 99, "k100": 100, "k150": 150, "k200": 200, "k300": 300, "k400": 400, "k0": 0,
	}
	h := func(b []byte) uint64 { return positions[string(b)] }
	r := mustRing(t, ones("a", "b", "c"), WithHash(h), WithVirtualNodes(1))
	tests := []struct {
		giveKey string
		want    []string
	}{
		{giveKey: "k0", want: []string{"a", "b", "c"}},
		{giveKey: "k99", want: []string{"a", "b", "c"}},
		{giveKey: "k100", want: []string{"b", "c", "a"}},
		{giveKey: "k150", want: []string{"b", "c", "a"}},
		{giveKey: "k200", want: []string{"c", "a", "b"}},
		{giveKey: "k300", want: []string{"a", "b", "c"}},
		{giveKey: "k400", want: []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		if got := r.Owners([]byte(tt.giveKey), 3); !slices.Equal(got, tt.want) {
			t.Errorf("Owners(%q) = %v, want %v", tt.giveKey, got, tt.want)
		}
	}
}

func TestZeroRing(t *testing.T) {
	var r Ring
	if _, ok := r.Owner([]byte("k")); ok {
		t.Error("Owner on the zero Ring reported an owner")
	}
	if got := r.Owners([]byte("k"), 2); got != nil {
		t.Errorf("Owners on the zero Ring = %v", got)
	}
	if err := r.Remove("a"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Remove on the zero Ring: %v, want ErrUnknownNode", err)
	}
	if err := r.SetWeight("a", 1); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("SetWeight on the zero Ring: %v, want ErrUnknownNode", err)
	}
	if c := r.Clone(); c.Len() != 0 {
		t.Errorf("Clone of the zero Ring has %d nodes", c.Len())
	}
	for _, n := range []string{"a", "b"} {
		if err := r.Add(n, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := sameRing(&r, mustRing(t, ones("a", "b"))); err != nil {
		t.Errorf("zero Ring differs from New(): %v", err)
	}
}

package partitioner

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAssignBalancedUnchanged checks that the radix-sorted assignment is
// the comparison-sorted one it replaced, pair for pair, including
// weights, weight 0 and duplicate IDs.
func TestAssignBalancedUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 10))
	for range 300 {
		n := 1 + rng.IntN(40)
		ms := make([]Weighted, n)
		for i := range ms {
			ms[i] = Weighted{ID: fmt.Sprintf("m-%x", rng.Uint32()%64), Weight: rng.IntN(4)}
		}
		parts := 1 + rng.IntN(300)
		if got, want := AssignBalanced(ms, parts), assignBalancedBefore(ms, parts); !slices.Equal(got, want) {
			t.Fatalf("%v over %d partitions:\n got %v\nwant %v", ms, parts, got, want)
		}
	}
}

// BenchmarkAssignBalanced compares the assignment with the one it
// replaced (a comparison sort of the pairs), in the same run.
func BenchmarkAssignBalanced(b *testing.B) {
	for _, c := range []struct{ parts, n int }{{64, 16}, {256, 16}, {256, 100}} {
		ms := make([]Weighted, c.n)
		for i := range ms {
			ms[i] = Weighted{ID: fmt.Sprintf("member-%d", i), Weight: 1}
		}
		b.Run(fmt.Sprintf("P=%d/N=%d/radix", c.parts, c.n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				AssignBalanced(ms, c.parts)
			}
		})
		b.Run(fmt.Sprintf("P=%d/N=%d/before", c.parts, c.n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				assignBalancedBefore(ms, c.parts)
			}
		})
	}
}

func assignBalancedBefore(members []Weighted, parts int) []string {
	owners := make([]string, parts)
	ms := dedupe(members)
	var total int64
	for _, m := range ms {
		total += int64(m.Weight)
	}
	if total == 0 || parts == 0 {
		return owners
	}
	type pair struct {
		s    uint64
		part int32
		m    int32
	}
	floor := make([]int, len(ms))
	frac := make([]bool, len(ms))
	assigned := 0
	pairs := make([]pair, 0, parts*len(ms))
	for i, m := range ms {
		if m.Weight == 0 {
			continue
		}
		share := int64(parts) * int64(m.Weight)
		floor[i] = int(share / total)
		frac[i] = share%total != 0
		assigned += floor[i]
		for part := range parts {
			pairs = append(pairs, pair{score(m.ID, part), int32(part), int32(i)})
		}
	}
	extra := parts - assigned
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		if c := cmp.Compare(a.part, b.part); c != 0 {
			return c
		}
		return cmp.Compare(ms[a.m].ID, ms[b.m].ID)
	})
	count := make([]int, len(ms))
	left := parts
	for _, pr := range pairs {
		if owners[pr.part] != "" {
			continue
		}
		switch c := count[pr.m]; {
		case c < floor[pr.m]:
		case c == floor[pr.m] && frac[pr.m] && extra > 0:
			extra--
		default:
			continue
		}
		count[pr.m]++
		owners[pr.part] = ms[pr.m].ID
		if left--; left == 0 {
			break
		}
	}
	return owners
}

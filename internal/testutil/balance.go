package testutil

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// AssignFunc maps parts partitions to members (equal weights): the owner
// of each partition, "" for none.
type AssignFunc func(members []string, parts int) []string

// Balance sums up an assignment's balance and movement over random member
// name sets.
type Balance struct {
	Sets        int     // name sets measured
	MaxOverMean float64 // worst max/mean load over the sets
	IdleSets    int     // sets leaving a member idle (counted only where parts ≥ members)
	OutOfBounds int     // members outside ⌊P/N⌋..⌈P/N⌉
	Moved       int     // partitions that changed owner on one join and one leave per set
	Optimum     int     // the least that must move: the newcomer's share plus the leaver's
}

// MovedOverOptimum is the movement ratio, 1 at best.
func (b Balance) MovedOverOptimum() float64 {
	if b.Optimum == 0 {
		return 1
	}
	return float64(b.Moved) / float64(b.Optimum)
}

// MemberNames returns n random member IDs, as hosts and processes name
// themselves.
func MemberNames(rng *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("host-%x-%d", rng.Uint32(), rng.IntN(1<<16))
	}
	return out
}

// MeasureBalance assigns parts partitions over n members for sets random
// name sets (seeded by parts and n, so every run measures the same sets),
// then a join and a leave in each, and sums up balance and movement.
func MeasureBalance(assign AssignFunc, parts, n, sets int) Balance {
	rng := rand.New(rand.NewPCG(uint64(parts), uint64(n)))
	bal := Balance{Sets: sets}
	for range sets {
		ms := MemberNames(rng, n)
		before := assign(ms, parts)
		count := map[string]int{}
		for _, o := range before {
			count[o]++
		}
		lo, hi := parts/n, (parts+n-1)/n
		mx := 0
		for _, m := range ms {
			c := count[m]
			mx = max(mx, c)
			if c < lo || c > hi {
				bal.OutOfBounds++
			}
		}
		if parts >= n && len(count) < n {
			bal.IdleSets++
		}
		bal.MaxOverMean = max(bal.MaxOverMean, float64(mx)*float64(n)/float64(parts))
		// A join: the newcomer's share is the least that must move.
		joined := append(slices.Clone(ms), MemberNames(rng, 1)...)
		after := assign(joined, parts)
		for i := range after {
			if after[i] != before[i] {
				bal.Moved++
			}
			if after[i] == joined[n] {
				bal.Optimum++
			}
		}
		// A leave: the leaver's partitions must move.
		gone := ms[rng.IntN(n)]
		after = assign(slices.DeleteFunc(slices.Clone(ms), func(m string) bool { return m == gone }), parts)
		for i := range after {
			if after[i] != before[i] {
				bal.Moved++
			}
		}
		bal.Optimum += count[gone]
	}
	return bal
}

package hashring

import (
	"fmt"
	"slices"
	"testing"
)

// Run with: go test -bench . -run '^$' ./hashring/
//
// BenchmarkOwner and BenchmarkOwners measure lookups. BenchmarkMovement
// and BenchmarkLoad measure placement quality and report it as metrics;
// their ns/op is the cost of one whole measurement, not of a lookup.

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	return keys
}

func BenchmarkOwner(b *testing.B) {
	keys := benchKeys(1 << 12)
	cases := []struct {
		name   string
		opts   []Option
		search func(r *Ring, key []byte) string
	}{
		{name: "xxhash"},
		// The former default (128 points, binary search over the points),
		// measured in the same run as the baseline of the default.
		{name: "xxhash-128-binary-search", opts: []Option{WithVirtualNodes(128)}, search: ownerBinarySearch},
		{name: "xxhash-128", opts: []Option{WithVirtualNodes(128)}},
		{name: "tooz", opts: []Option{ToozCompatible()}},
	}
	for _, c := range cases {
		for _, nodes := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s/nodes=%d", c.name, nodes), func(b *testing.B) {
				r := mustRing(b, ones(manyNames("node-", nodes)...), c.opts...)
				i := 0
				if c.search != nil {
					for b.Loop() {
						c.search(r, keys[i&(len(keys)-1)])
						i++
					}
					return
				}
				for b.Loop() {
					r.Owner(keys[i&(len(keys)-1)])
					i++
				}
			})
		}
	}
}

// ownerBinarySearch is Owner as it was before the lookup index: a binary
// search over all the points of a default-mode ring.
func ownerBinarySearch(r *Ring, key []byte) string {
	kh := r.hash(key)
	lo, hi := 0, len(r.hi)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hi[m] > kh {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == len(r.hi) {
		lo = 0
	}
	return r.members[r.owner[lo]].name
}

func BenchmarkOwners(b *testing.B) {
	keys := benchKeys(1 << 12)
	for _, mode := range modes {
		b.Run(mode.name+"/nodes=10/n=3", func(b *testing.B) {
			r := mustRing(b, ones(manyNames("node-", 10)...), mode.opts...)
			i := 0
			for b.Loop() {
				r.Owners(keys[i&(len(keys)-1)], 3)
				i++
			}
		})
	}
}

// BenchmarkAddRemove measures one incremental join and leave on a ring of
// 100 nodes.
func BenchmarkAddRemove(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.name+"/nodes=100", func(b *testing.B) {
			r := mustRing(b, ones(manyNames("node-", 100)...), mode.opts...)
			for b.Loop() {
				if err := r.Add("joiner", 1); err != nil {
					b.Fatal(err)
				}
				if err := r.Remove("joiner"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMovement reports the keys that move when one node joins a ring
// of 10 (optimum K/11) or one of the 10 leaves (optimum K/10), as
// moved/optimum: the mean and the worst over 10 different joiners and
// over each of the 10 leavers, with 100,000 keys. A ring only ever moves
// keys to the joiner or from the leaver (TestMovementIsMinimal), so the
// ratio measures balance: how far the joiner's or leaver's share is from
// 1/n.
func BenchmarkMovement(b *testing.B) {
	const nodes, trials = 10, 10
	keys := benchKeys(100_000)
	movementModes := append(slices.Clone(modes), struct {
		name string
		opts []Option
	}{name: "xxhash-128", opts: []Option{WithVirtualNodes(128)}})
	for _, mode := range movementModes {
		b.Run(fmt.Sprintf("%s/nodes=%d", mode.name, nodes), func(b *testing.B) {
			var join, leave ratioStats
			for b.Loop() {
				join, leave = ratioStats{}, ratioStats{}
				base := mustRing(b, ones(manyNames("node-", nodes)...), mode.opts...)
				before := owners(base, keys)
				opt := float64(len(keys)) / (nodes + 1)
				for j := range trials {
					r := base.Clone()
					if err := r.Add(fmt.Sprintf("joiner-%d", j), 1); err != nil {
						b.Fatal(err)
					}
					join.add(float64(moved(before, owners(r, keys))) / opt)
				}
				opt = float64(len(keys)) / nodes
				for _, leaver := range base.Nodes() {
					r := base.Clone()
					if err := r.Remove(leaver); err != nil {
						b.Fatal(err)
					}
					leave.add(float64(moved(before, owners(r, keys))) / opt)
				}
			}
			b.ReportMetric(join.mean(), "join-moved/opt")
			b.ReportMetric(join.max, "worst-join-moved/opt")
			b.ReportMetric(leave.mean(), "leave-moved/opt")
			b.ReportMetric(leave.max, "worst-leave-moved/opt")
		})
	}
}

// BenchmarkLoad reports max/mean load of 10 equal nodes over 100,000
// keys: the mean over 20 sets of node names, and the worst set.
func BenchmarkLoad(b *testing.B) {
	const nodes, sets = 10, 20
	keys := benchKeys(100_000)
	cases := []struct {
		mode   string
		opts   []Option
		vnodes int
	}{
		{mode: "xxhash", vnodes: 32},
		{mode: "xxhash", vnodes: 64},
		{mode: "xxhash", vnodes: 128},
		{mode: "xxhash", vnodes: 256},
		{mode: "xxhash", vnodes: 512},
		{mode: "xxhash", vnodes: DefaultVirtualNodes},
		{mode: "tooz", opts: []Option{ToozCompatible()}, vnodes: DefaultToozVirtualNodes},
		{mode: "tooz", opts: []Option{ToozCompatible()}, vnodes: 128},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/nodes=%d/vnodes=%d", c.mode, nodes, c.vnodes), func(b *testing.B) {
			var load ratioStats
			for b.Loop() {
				load = ratioStats{}
				for s := range sets {
					opts := append([]Option{WithVirtualNodes(c.vnodes)}, c.opts...)
					r := mustRing(b, ones(manyNames(fmt.Sprintf("set%d-node-", s), nodes)...), opts...)
					load.add(maxOverMean(r, keys))
				}
			}
			b.ReportMetric(load.mean(), "max/mean")
			b.ReportMetric(load.max, "worst-max/mean")
		})
	}
}

type ratioStats struct {
	sum, max float64
	n        int
}

func (s *ratioStats) add(x float64) {
	s.sum += x
	s.n++
	s.max = max(s.max, x)
}

func (s *ratioStats) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}

func owners(r *Ring, keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i], _ = r.Owner(k)
	}
	return out
}

func moved(before, after []string) int {
	n := 0
	for i := range before {
		if before[i] != after[i] {
			n++
		}
	}
	return n
}

// maxOverMean returns the load of the busiest node over the mean load.
func maxOverMean(r *Ring, keys [][]byte) float64 {
	counts := make(map[string]int)
	for _, k := range keys {
		o, _ := r.Owner(k)
		counts[o]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	return float64(most) * float64(r.Len()) / float64(len(keys))
}

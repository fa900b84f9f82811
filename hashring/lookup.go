package hashring

import "slices"

// smallSet is the size up to which Owners scans slices instead of
// building maps for its ignore-list and its result.
const smallSet = 16

// Owner returns the node that owns key: the owner of the first point
// clockwise from the key's position. It returns false if no node owns a
// point (the ring is empty or every member has weight 0). It does not
// allocate and is safe for concurrent use with other reads.
func (r *Ring) Owner(key []byte) (string, bool) {
	if len(r.hi) == 0 {
		return "", false
	}
	return r.owner[r.search(key)], true
}

// Owners returns up to n distinct nodes for key, in the order met walking
// the ring clockwise from the key's position, skipping the nodes in
// ignore: the first is [Ring.Owner] unless ignored, the others are its
// replicas. Fewer than n come back when fewer nodes own points outside
// the ignore-list; none when n <= 0. Ignored names need not be members.
// Owners always terminates: it stops after one turn of the ring. It is
// safe for concurrent use with other reads.
func (r *Ring) Owners(key []byte, n int, ignore ...string) []string {
	if n <= 0 || len(r.hi) == 0 {
		return nil
	}
	skip := newNameSet(ignore)
	want := min(n, r.live-r.liveIn(skip))
	if want <= 0 {
		return nil
	}
	out := make([]string, 0, want)
	var seen map[string]struct{}
	if want > smallSet {
		seen = make(map[string]struct{}, want)
	}
	i := r.search(key)
	for range len(r.hi) {
		node := r.owner[i]
		if !skip.contains(node) {
			var dup bool
			if seen != nil {
				_, dup = seen[node]
				seen[node] = struct{}{}
			} else {
				dup = slices.Contains(out, node)
			}
			if !dup {
				if out = append(out, node); len(out) == want {
					break
				}
			}
		}
		if i++; i == len(r.hi) {
			i = 0
		}
	}
	return out
}

// liveIn counts the distinct names in s that own at least one point.
func (r *Ring) liveIn(s nameSet) int {
	k := 0
	s.each(func(name string) {
		if r.nodes[name].owned > 0 {
			k++
		}
	})
	return k
}

// nameSet is a set of names: a slice while small, a map beyond.
type nameSet struct {
	list []string
	m    map[string]struct{}
}

func newNameSet(names []string) nameSet {
	if len(names) <= smallSet {
		return nameSet{list: names}
	}
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return nameSet{m: m}
}

func (s nameSet) contains(name string) bool {
	if s.m != nil {
		_, ok := s.m[name]
		return ok
	}
	return slices.Contains(s.list, name)
}

// each calls f once per distinct name.
func (s nameSet) each(f func(string)) {
	if s.m != nil {
		for n := range s.m {
			f(n)
		}
		return
	}
	for k, n := range s.list {
		if !slices.Contains(s.list[:k], n) {
			f(n)
		}
	}
}

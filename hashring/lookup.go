package hashring

import "slices"

// smallSet is the size up to which Owners scans slices instead of
// using bitmaps for its ignore-list and its result.
const smallSet = 16

// Owner returns the node that owns key: the owner of the first point
// clockwise from the key's position. It returns false if no node owns a
// point (the ring is empty or every member has weight 0). It does not
// allocate and is safe for concurrent use with other reads.
func (r *Ring) Owner(key []byte) (string, bool) {
	if len(r.hi) == 0 {
		return "", false
	}
	return r.members[r.owner[r.search(key)]].name, true
}

// Owners returns up to n distinct nodes for key, in the order met walking
// the ring clockwise from the key's position, skipping the nodes in
// ignore: the first is [Ring.Owner] unless ignored, the others are its
// replicas. Fewer than n come back when fewer nodes own points outside
// the ignore-list; none (nil) when n <= 0. Ignored names need not be
// members. Owners always terminates: it stops after one turn of the ring.
// It is safe for concurrent use with other reads.
func (r *Ring) Owners(key []byte, n int, ignore ...string) []string {
	if n <= 0 || len(r.hi) == 0 {
		return nil
	}
	// Small sets of ids are scanned slices on the stack; large ones are
	// bitmaps indexed by id.
	var skipBuf, gotBuf [smallSet]int32
	skip, got := skipBuf[:0], gotBuf[:0]
	var skipBits, gotBits []bool
	if len(ignore) > smallSet {
		skipBits = make([]bool, len(r.members))
	}
	avail := r.live
	for _, name := range ignore {
		id, ok := r.ids[name]
		if !ok || contains(skip, skipBits, id) {
			continue
		}
		if skipBits != nil {
			skipBits[id] = true
		} else {
			skip = append(skip, id)
		}
		if r.members[id].owned > 0 {
			avail--
		}
	}
	want := min(n, avail)
	if want <= 0 {
		return nil
	}
	if want > smallSet {
		gotBits = make([]bool, len(r.members))
	}
	out := make([]string, 0, want)
	i := r.search(key)
	for range len(r.hi) {
		id := r.owner[i]
		if !contains(skip, skipBits, id) && !contains(got, gotBits, id) {
			if gotBits != nil {
				gotBits[id] = true
			} else {
				got = append(got, id)
			}
			if out = append(out, r.members[id].name); len(out) == want {
				break
			}
		}
		if i++; i == len(r.hi) {
			i = 0
		}
	}
	return out
}

// contains reports whether id is in the set held by list, or by bits if
// bits is not nil.
func contains(list []int32, bits []bool, id int32) bool {
	if bits != nil {
		return bits[id]
	}
	return slices.Contains(list, id)
}

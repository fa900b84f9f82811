package hashring

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"slices"
	"strconv"
)

// point is a ring position. In the default mode only hi is used (lo is
// zero); in tooz mode (hi, lo) is the 128-bit md5 digest read big-endian,
// so comparing (hi, lo) lexicographically compares the integers tooz
// compares.
type point struct {
	hi, lo uint64
}

func comparePoints(a, b point) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// pointsOf returns points [from, to) of node, in index order.
func (r *Ring) pointsOf(node string, from, to int) []point {
	if to <= from {
		return nil
	}
	pts := make([]point, 0, to-from)
	if r.tooz {
		// tooz: h = md5(id); for each point: h.update(id); point = h.
		key := []byte(node)
		h := md5.New()
		h.Write(key)
		var sum [md5.Size]byte
		for i := range to {
			h.Write(key)
			if i < from {
				continue
			}
			s := h.Sum(sum[:0])
			pts = append(pts, point{hi: binary.BigEndian.Uint64(s[:8]), lo: binary.BigEndian.Uint64(s[8:])})
		}
		return pts
	}
	buf := make([]byte, 0, len(node)+1+20)
	for i := from; i < to; i++ {
		buf = append(buf[:0], node...)
		buf = append(buf, 0)
		buf = strconv.AppendInt(buf, int64(i), 10)
		pts = append(pts, point{hi: r.hash(buf)})
	}
	return pts
}

// search returns the index of the first point strictly greater than the
// key's position, wrapping to 0. The ring must not be empty.
func (r *Ring) search(key []byte) int {
	n := len(r.hi)
	var i int
	if r.tooz {
		s := md5.Sum(key)
		khi, klo := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
		lo, hi := 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if r.hi[m] > khi || (r.hi[m] == khi && r.lo[m] > klo) {
				hi = m
			} else {
				lo = m + 1
			}
		}
		i = lo
	} else {
		kh := r.hash(key)
		lo, hi := 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if r.hi[m] > kh {
				hi = m
			} else {
				lo = m + 1
			}
		}
		i = lo
	}
	if i == n {
		return 0
	}
	return i
}

// at returns the point stored at index i.
func (r *Ring) at(i int) point {
	if r.lo == nil {
		return point{hi: r.hi[i]}
	}
	return point{hi: r.hi[i], lo: r.lo[i]}
}

// find returns the index of p on the ring and whether it is present.
func (r *Ring) find(p point) (int, bool) {
	n := len(r.hi)
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if comparePoints(r.at(m), p) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && r.at(lo) == p
}

// claim records one more claim by node on point p, already on the ring at
// index i, and re-elects the point's owner.
func (r *Ring) claim(i int, p point, node string) {
	cl, ok := r.shared[p]
	if !ok {
		cl = []string{r.owner[i]}
	}
	cl = append(cl, node)
	r.shared[p] = cl
	r.setOwner(i, r.winner(cl))
}

// insertPoints adds node's points pts to the ring. Points not yet on the
// ring are merged into the sorted slices in one pass; the others (already
// claimed by another node, or twice by this one) become shared.
func (r *Ring) insertPoints(node string, pts []point) {
	slices.SortFunc(pts, comparePoints)
	fresh := pts[:0] // filtered in place: writes never overtake reads
	var claims []point
	var prev point
	for k, p := range pts {
		dup := k > 0 && p == prev
		prev = p
		if _, ok := r.find(p); ok || dup {
			claims = append(claims, p)
			continue
		}
		fresh = append(fresh, p)
	}
	r.merge(node, fresh)
	for _, p := range claims {
		if i, ok := r.find(p); ok {
			r.claim(i, p, node)
		}
	}
}

// merge inserts the sorted points fresh, none of which is on the ring,
// all owned by node.
func (r *Ring) merge(node string, fresh []point) {
	if len(fresh) == 0 {
		return
	}
	n := len(r.hi) + len(fresh)
	hi := make([]uint64, 0, n)
	owner := make([]string, 0, n)
	var lo []uint64
	if r.tooz {
		lo = make([]uint64, 0, n)
	}
	i, j := 0, 0
	for i < len(r.hi) || j < len(fresh) {
		if j == len(fresh) || (i < len(r.hi) && comparePoints(r.at(i), fresh[j]) < 0) {
			hi = append(hi, r.hi[i])
			if lo != nil {
				lo = append(lo, r.lo[i])
			}
			owner = append(owner, r.owner[i])
			i++
			continue
		}
		hi = append(hi, fresh[j].hi)
		if lo != nil {
			lo = append(lo, fresh[j].lo)
		}
		owner = append(owner, node)
		r.own(node)
		j++
	}
	r.hi, r.lo, r.owner = hi, lo, owner
}

// removePoints withdraws node's claims on pts. A point nobody else claims
// leaves the ring; a shared point goes to the winner among the remaining
// claimants.
func (r *Ring) removePoints(node string, pts []point) {
	dead := 0
	for _, p := range pts {
		i, ok := r.find(p)
		if !ok {
			continue // unreachable while the ring is consistent
		}
		cl, shared := r.shared[p]
		if !shared {
			if r.owner[i] == node {
				r.disown(node)
				r.owner[i] = "" // tombstone; names are never empty
				dead++
			}
			continue
		}
		if k := slices.Index(cl, node); k >= 0 {
			cl = slices.Delete(cl, k, k+1)
		}
		if len(cl) == 1 {
			delete(r.shared, p)
		} else {
			r.shared[p] = cl
		}
		r.setOwner(i, r.winner(cl))
	}
	if dead == 0 {
		return
	}
	w := 0
	for i := range r.hi {
		if r.owner[i] == "" {
			continue
		}
		r.hi[w] = r.hi[i]
		if r.lo != nil {
			r.lo[w] = r.lo[i]
		}
		r.owner[w] = r.owner[i]
		w++
	}
	clear(r.owner[w:]) // release the strings
	r.hi, r.owner = r.hi[:w], r.owner[:w]
	if r.lo != nil {
		r.lo = r.lo[:w]
	}
}

// winner elects the owner of a shared point among its claimants: in tooz
// mode the most recent insertion, otherwise the smallest name, so that the
// default mode does not depend on the order of insertion.
func (r *Ring) winner(claimants []string) string {
	best := claimants[0]
	for _, c := range claimants[1:] {
		if r.tooz {
			if r.nodes[c].seq > r.nodes[best].seq {
				best = c
			}
		} else if c < best {
			best = c
		}
	}
	return best
}

// setOwner gives the point at index i to node, keeping the owned counts.
func (r *Ring) setOwner(i int, node string) {
	if r.owner[i] == node {
		return
	}
	r.disown(r.owner[i])
	r.own(node)
	r.owner[i] = node
}

func (r *Ring) own(node string) {
	m := r.nodes[node]
	if m.owned == 0 {
		r.live++
	}
	m.owned++
	r.nodes[node] = m
}

func (r *Ring) disown(node string) {
	m := r.nodes[node]
	m.owned--
	if m.owned == 0 {
		r.live--
	}
	r.nodes[node] = m
}

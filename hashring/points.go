package hashring

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"math/bits"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
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
		var kh uint64
		if r.xx {
			kh = xxhash.Sum64(key)
		} else {
			kh = r.hash(key)
		}
		// The bucket of kh bounds the answer: points of earlier buckets
		// are below kh, points of later buckets above it.
		k := kh >> r.shift
		lo, hi := int(r.index[k]), int(r.index[k+1])
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

// claim records one more claim by node id on point p, already on the ring
// at index i, and re-elects the point's owner.
func (r *Ring) claim(i int, p point, id int32) {
	cl, ok := r.shared[p]
	if !ok {
		cl = []int32{r.owner[i]}
	}
	cl = append(cl, id)
	r.shared[p] = cl
	r.setOwner(i, r.winner(cl))
}

// insertPoints adds the points pts of node id to the ring. Points not yet
// on the ring are merged into the sorted slices; the others (already
// claimed by another node, or twice by this one) become shared.
func (r *Ring) insertPoints(id int32, pts []point) {
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
	r.merge(id, fresh)
	for _, p := range claims {
		if i, ok := r.find(p); ok {
			r.claim(i, p, id)
		}
	}
}

// merge inserts the sorted points fresh, none of which is on the ring, as
// owned by node id. It grows the slices and merges from the back, in
// place, in O(points).
func (r *Ring) merge(id int32, fresh []point) {
	owners := make([]int32, len(fresh))
	for k := range owners {
		owners[k] = id
	}
	r.mergeOwned(fresh, owners)
}

// mergeOwned inserts the sorted points fresh, none of which is on the
// ring, fresh[k] owned by node owners[k], in O(points).
func (r *Ring) mergeOwned(fresh []point, owners []int32) {
	if len(fresh) == 0 {
		return
	}
	i := len(r.hi) - 1
	n := len(r.hi) + len(fresh)
	r.hi = slices.Grow(r.hi, len(fresh))[:n]
	r.owner = slices.Grow(r.owner, len(fresh))[:n]
	if r.tooz {
		r.lo = slices.Grow(r.lo, len(fresh))[:n]
	}
	for j, w := len(fresh)-1, n-1; j >= 0; w-- {
		if i >= 0 && comparePoints(r.at(i), fresh[j]) > 0 {
			r.hi[w], r.owner[w] = r.hi[i], r.owner[i]
			if r.tooz {
				r.lo[w] = r.lo[i]
			}
			i--
			continue
		}
		r.hi[w], r.owner[w] = fresh[j].hi, owners[j]
		if r.tooz {
			r.lo[w] = fresh[j].lo
		}
		j--
	}
	for _, id := range owners {
		r.own(id)
	}
	r.reindex()
}

// reindex rebuilds the lookup index after the points changed.
func (r *Ring) reindex() {
	if r.tooz {
		return
	}
	n := len(r.hi)
	b := uint(0)
	if n > 1 {
		b = uint(bits.Len64(uint64(n - 1))) // 2^b >= n buckets
	}
	r.shift = 64 - b
	buckets := 1 << b
	if cap(r.index) >= buckets+1 {
		r.index = r.index[:buckets+1]
	} else {
		r.index = make([]uint32, buckets+1)
	}
	i := 0
	for k := range buckets {
		for i < n && r.hi[i]>>r.shift < uint64(k) {
			i++
		}
		r.index[k] = uint32(i)
	}
	r.index[buckets] = uint32(n)
}

// removePoints withdraws the claims of node id on pts. A point nobody else
// claims leaves the ring; a shared point goes to the winner among the
// remaining claimants.
func (r *Ring) removePoints(id int32, pts []point) {
	dead := 0
	for _, p := range pts {
		i, ok := r.find(p)
		if !ok {
			continue // unreachable while the ring is consistent
		}
		cl, shared := r.shared[p]
		if !shared {
			if r.owner[i] == id {
				r.disown(id)
				r.owner[i] = tombstone
				dead++
			}
			continue
		}
		if k := slices.Index(cl, id); k >= 0 {
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
		if r.owner[i] == tombstone {
			continue
		}
		r.hi[w], r.owner[w] = r.hi[i], r.owner[i]
		if r.tooz {
			r.lo[w] = r.lo[i]
		}
		w++
	}
	r.hi, r.owner = r.hi[:w], r.owner[:w]
	if r.tooz {
		r.lo = r.lo[:w]
	}
	r.reindex()
}

// tombstone marks a point being removed; ids are never negative.
const tombstone int32 = -1

// winner elects the owner of a shared point among its claimants: in tooz
// mode the most recent insertion, otherwise the smallest name, so that the
// default mode does not depend on the order of insertion.
func (r *Ring) winner(claimants []int32) int32 {
	best := claimants[0]
	for _, c := range claimants[1:] {
		if r.tooz {
			if r.members[c].seq > r.members[best].seq {
				best = c
			}
		} else if r.members[c].name < r.members[best].name {
			best = c
		}
	}
	return best
}

// setOwner gives the point at index i to node id, keeping the counts.
func (r *Ring) setOwner(i int, id int32) {
	if r.owner[i] == id {
		return
	}
	r.disown(r.owner[i])
	r.own(id)
	r.owner[i] = id
}

func (r *Ring) own(id int32) {
	if r.members[id].owned == 0 {
		r.live++
	}
	r.members[id].owned++
}

func (r *Ring) disown(id int32) {
	r.members[id].owned--
	if r.members[id].owned == 0 {
		r.live--
	}
}

package partitioner

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/baton-go/baton/hashring"
)

// Assignment says how partitions are mapped to members.
type Assignment int

const (
	// Balanced (the default) is a bounded-load rendezvous assignment:
	// every member of weight w owns between ⌊P·w/W⌋ and ⌈P·w/W⌉ of the P
	// partitions (W the sum of the weights), so no member with a weight is
	// idle while P ≥ N. Each (partition, member) pair has a rendezvous
	// score, xxhash64 of the member ID and the partition number; the pairs
	// are taken best score first, and a pair is kept when its partition is
	// still free and its member below its bound. The result depends on
	// the member list and weights alone, so every member computes the same
	// one, and a join or leave moves close to the P/N partitions it must
	// (see docs/partitioning.md for the figures).
	Balanced Assignment = iota + 1
	// Ring is tooz's placement: each partition goes to the owner of
	// "partition-<n>" on a hashring.Ring of the members (configure it with
	// WithRingOptions, e.g. hashring.ToozCompatible() for a fleet mixed
	// with tooz). Movement on a join or leave is minimal, but the load is
	// not bounded: with 8 partitions over 4 members, about 4 in 10 member
	// name sets leave a member idle.
	Ring
	// Tooz is tooz's Partitioner (tooz.partitioner), for a group shared
	// with Python members: a key is placed directly on a tooz ring of the
	// members (hashring.ToozCompatible, md5, with tooz's partitions
	// argument as the points per unit of weight, see WithToozPartitions),
	// so Owner, Owners and OwnedBySelf of a key answer exactly what tooz's
	// members_for_object and belongs_to_self answer for an object whose
	// str() is the key. A member's weight is its capabilities' "weight"
	// (1 when absent, as tooz reads it). The numbered partitions (Owned,
	// OwnsPartition, Rebalance) go to the owners of "partition-<n>" on the
	// same ring, as in the Ring assignment. Ownership is advisory, as in
	// tooz: the Tooz assignment runs in Advisory mode only. The load is
	// tooz's: not bounded (see the Ring assignment).
	Tooz
)

// String returns "balanced", "ring" or "tooz".
func (a Assignment) String() string {
	switch a {
	case Balanced:
		return "balanced"
	case Ring:
		return "ring"
	case Tooz:
		return "tooz"
	}
	return "unknown"
}

// Weighted is a member and its weight, the input of an assignment.
type Weighted struct {
	ID     string
	Weight int
}

// score is the rendezvous score of member id for partition part.
func score(id string, part int) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(id)
	var b [5]byte
	binary.BigEndian.PutUint32(b[1:], uint32(part))
	_, _ = d.Write(b[:])
	return d.Sum64()
}

// AssignBalanced returns the owner of each of parts partitions under the
// Balanced assignment ("" for a partition nobody owns, when no member has
// a weight). Members with a duplicate ID count once (the last weight
// wins); the order of members does not matter.
func AssignBalanced(members []Weighted, parts int) []string {
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

// rank returns the members with a weight in decreasing rendezvous score
// for part (the replicas' order of the Balanced assignment).
func rank(members []Weighted, part int) []string {
	type sc struct {
		s  uint64
		id string
	}
	var l []sc
	for _, m := range members {
		if m.Weight > 0 {
			l = append(l, sc{score(m.ID, part), m.ID})
		}
	}
	slices.SortFunc(l, func(a, b sc) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = x.id
	}
	return out
}

func dedupe(members []Weighted) []Weighted {
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b Weighted) int { return cmp.Compare(a.ID, b.ID) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].ID == m.ID {
			continue
		}
		if m.Weight < 0 {
			m.Weight = 0
		}
		out = append(out, m)
	}
	return out
}

// AssignRing returns the owner of each of parts partitions under the Ring
// assignment with the given ring options.
func AssignRing(members []Weighted, parts int, opts ...hashring.Option) ([]string, error) {
	r, err := buildRing(dedupe(members), opts)
	if err != nil {
		return nil, err
	}
	return ringOwners(r, parts), nil
}

// NewToozRing returns the ring tooz's Partitioner builds for members
// with partitions points per unit of weight (tooz's default is
// hashring.DefaultToozVirtualNodes, 32): ring.Owner(key) is tooz's
// members_for_object(obj)[0] for an object whose str() is key, and
// ring.Owners(key, n) its members_for_object(obj, replicas=n) in walk
// order. A negative weight owns nothing, as in tooz. Points that two
// member names share (names such as "a" and "aa") go to the one that
// sorts last, where tooz keeps the one it happened to add last.
func NewToozRing(members []Weighted, partitions int) (*hashring.Ring, error) {
	return buildRing(dedupe(members), toozRingOptions(partitions))
}

func toozRingOptions(partitions int) []hashring.Option {
	return []hashring.Option{hashring.ToozCompatible(), hashring.WithVirtualNodes(partitions)}
}

func buildRing(ms []Weighted, opts []hashring.Option) (*hashring.Ring, error) {
	r, err := hashring.New(opts...)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		// A weight the ring refuses (too large) leaves that member out,
		// on every member alike.
		_ = r.Add(m.ID, m.Weight)
	}
	return r, nil
}

func ringOwners(r *hashring.Ring, parts int) []string {
	owners := make([]string, parts)
	for part := range parts {
		owners[part], _ = r.Owner(partitionKey(part))
	}
	return owners
}

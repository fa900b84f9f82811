package hashring

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// A Ring is a consistent-hash ring of weighted nodes.
//
// A Ring is not safe for concurrent mutation: [Ring.Add], [Ring.Remove]
// and [Ring.SetWeight] must not run concurrently with any other method.
// All other methods only read the ring and may run concurrently with each
// other. To share a ring with readers while it changes, guard it with a
// sync.RWMutex or publish copies made with [Ring.Clone].
//
// The zero Ring is an empty ring with the default options.
type Ring struct {
	tooz   bool
	vnodes int
	hash   Hash // nil in tooz mode
	xx     bool // hash is the default xxhash: called directly, not through hash

	// Members by name and by id. Points refer to members by id; the id
	// of a removed member is reused.
	ids     map[string]int32
	members []member // by id; a free slot has an empty name
	free    []int32  // free ids
	seq     uint64   // insertion counter, for tooz's "last insertion wins"
	live    int      // members that own at least one point

	// The ring, sorted by (hi, lo): point i is (hi[i], lo[i]) and belongs
	// to member owner[i]. lo is nil unless in tooz mode.
	hi    []uint64
	lo    []uint64
	owner []int32

	// Lookup index of the default mode: the points whose position's top
	// bits are k are hi[index[k]:index[k+1]], with bits = 64 - shift
	// chosen so that there are about as many buckets as points. A lookup
	// then reads one bucket instead of binary-searching the whole ring.
	// Rebuilt by every mutation; nil in tooz mode.
	index []uint32
	shift uint

	// Claimants of points claimed more than once (by distinct nodes whose
	// points collide, or by one node twice). Almost always empty.
	shared map[point][]int32
}

// member is the state of one node.
type member struct {
	name   string
	weight int
	seq    uint64 // insertion order, used to resolve shared points in tooz mode
	owned  int    // points this node owns (it may claim more that it lost)
}

// New returns an empty ring configured by opts. It returns an error
// wrapping [ErrInvalidOption] for an invalid or conflicting option.
func New(opts ...Option) (*Ring, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new ring: %w", err)
	}
	return &Ring{
		tooz:   c.tooz,
		vnodes: c.vnodes,
		hash:   c.hash,
		xx:     !c.tooz && !c.hashSet,
		ids:    make(map[string]int32),
		shared: make(map[point][]int32),
	}, nil
}

// lazyInit makes the zero Ring an empty ring with the default options.
func (r *Ring) lazyInit() {
	if r.ids != nil {
		return
	}
	r.ids = make(map[string]int32)
	r.shared = make(map[point][]int32)
	if r.vnodes == 0 {
		r.vnodes = DefaultVirtualNodes
	}
	if !r.tooz && r.hash == nil {
		r.hash = xxhash.Sum64
		r.xx = true
	}
}

// checkWeight validates a weight for node and returns its point count.
func (r *Ring) checkWeight(node string, weight int) (int, error) {
	if weight < 0 || weight > MaxPointsPerNode/r.vnodes {
		return 0, fmt.Errorf("node %q weight %d: %w", node, weight, ErrInvalidWeight)
	}
	return weight * r.vnodes, nil
}

// Add makes node a member with the given weight: it owns weight ×
// virtual nodes points. A node of weight 0 is a member that owns nothing.
// Add hashes only the new node's points and merges them into the ring in
// O(points). It returns an error wrapping [ErrInvalidNode] for an empty
// name, [ErrDuplicateNode] if node is already a member, and
// [ErrInvalidWeight] for a negative or too large weight. It must not run
// concurrently with other methods.
func (r *Ring) Add(node string, weight int) error {
	r.lazyInit()
	if node == "" {
		return fmt.Errorf("add node: %w", ErrInvalidNode)
	}
	if _, ok := r.ids[node]; ok {
		return fmt.Errorf("add node %q: %w", node, ErrDuplicateNode)
	}
	n, err := r.checkWeight(node, weight)
	if err != nil {
		return fmt.Errorf("add node: %w", err)
	}
	if len(r.free) == 0 && len(r.members) >= math.MaxInt32 {
		return fmt.Errorf("add node %q: ring is full: %w", node, ErrInvalidNode)
	}
	r.seq++
	m := member{name: node, weight: weight, seq: r.seq}
	var id int32
	if k := len(r.free); k > 0 {
		id, r.free = r.free[k-1], r.free[:k-1]
		r.members[id] = m
	} else {
		id = int32(len(r.members))
		r.members = append(r.members, m)
	}
	r.ids[node] = id
	r.insertPoints(id, r.pointsOf(node, 0, n))
	return nil
}

// Remove removes node and its points, in O(points); only the keys node
// owned move. It returns an error wrapping [ErrUnknownNode] if node is not
// a member. It must not run concurrently with other methods.
func (r *Ring) Remove(node string) error {
	id, ok := r.ids[node]
	if !ok {
		return fmt.Errorf("remove node %q: %w", node, ErrUnknownNode)
	}
	r.removePoints(id, r.pointsOf(node, 0, r.members[id].weight*r.vnodes))
	if r.members[id].owned > 0 {
		r.live-- // unreachable while the ring is consistent
	}
	r.members[id] = member{}
	r.free = append(r.free, id)
	delete(r.ids, node)
	return nil
}

// SetWeight changes the weight of member node. Points are added or removed
// at the end of the node's point sequence, so growing a node only takes
// keys from others and shrinking it only gives its own away. Setting the
// current weight does nothing. In [ToozCompatible] mode a new weight
// counts as a new insertion of node (see ToozCompatible). It returns an
// error wrapping [ErrUnknownNode] or [ErrInvalidWeight]. It must not run
// concurrently with other methods.
func (r *Ring) SetWeight(node string, weight int) error {
	id, ok := r.ids[node]
	if !ok {
		return fmt.Errorf("set weight of node %q: %w", node, ErrUnknownNode)
	}
	m := &r.members[id]
	n, err := r.checkWeight(node, weight)
	if err != nil {
		return fmt.Errorf("set weight: %w", err)
	}
	if weight == m.weight {
		return nil
	}
	old := m.weight * r.vnodes
	if r.tooz {
		r.seq++
		m.seq = r.seq
	}
	m.weight = weight
	if r.tooz {
		r.reelect(id)
	}
	if n > old {
		r.insertPoints(id, r.pointsOf(node, old, n))
	} else {
		r.removePoints(id, r.pointsOf(node, n, old))
	}
	return nil
}

// reelect re-elects the owner of every shared point node id claims.
func (r *Ring) reelect(id int32) {
	for p, cl := range r.shared {
		if !slices.Contains(cl, id) {
			continue
		}
		if i, ok := r.find(p); ok {
			r.setOwner(i, r.winner(cl))
		}
	}
}

// Nodes returns the members, weight-0 nodes included, sorted by name. It
// is safe for concurrent use with other reads.
func (r *Ring) Nodes() []string {
	return slices.Sorted(maps.Keys(r.ids))
}

// Weight returns the weight of node and whether it is a member. It is
// safe for concurrent use with other reads.
func (r *Ring) Weight(node string) (int, bool) {
	id, ok := r.ids[node]
	if !ok {
		return 0, false
	}
	return r.members[id].weight, true
}

// Len returns the number of members, weight-0 nodes included. It is safe
// for concurrent use with other reads.
func (r *Ring) Len() int {
	return len(r.ids)
}

// Points returns the number of distinct points on the ring (tooz's
// len(ring)). It is the sum of weight × virtual nodes over the members,
// less collisions. It is safe for concurrent use with other reads.
func (r *Ring) Points() int {
	return len(r.hi)
}

// Clone returns an independent deep copy of the ring. It is safe for
// concurrent use with other reads, which makes it the way to publish a
// snapshot of a ring that keeps changing.
func (r *Ring) Clone() *Ring {
	c := *r
	c.ids = maps.Clone(r.ids)
	c.members = slices.Clone(r.members)
	c.free = slices.Clone(r.free)
	c.hi = slices.Clone(r.hi)
	c.lo = slices.Clone(r.lo)
	c.owner = slices.Clone(r.owner)
	c.index = slices.Clone(r.index)
	c.shared = make(map[point][]int32, len(r.shared))
	for p, cl := range r.shared {
		c.shared[p] = slices.Clone(cl)
	}
	return &c
}

// Node is a node and its weight, for [Ring.AddAll].
type Node struct {
	Name   string
	Weight int
}

// AddAll adds nodes as that many calls of [Ring.Add] in the order given
// would (the order matters only in [ToozCompatible] mode, where the last
// insertion wins a shared point), but merges their points into the ring
// in one pass: O(points · log points) for the whole batch instead of
// O(points) per node. It validates every node first and adds none when
// one is invalid, returning the error Add would. It must not run
// concurrently with other methods.
func (r *Ring) AddAll(nodes ...Node) error {
	r.lazyInit()
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n.Name == "" {
			return fmt.Errorf("add node: %w", ErrInvalidNode)
		}
		if _, ok := r.ids[n.Name]; ok || seen[n.Name] {
			return fmt.Errorf("add node %q: %w", n.Name, ErrDuplicateNode)
		}
		seen[n.Name] = true
		if _, err := r.checkWeight(n.Name, n.Weight); err != nil {
			return fmt.Errorf("add node: %w", err)
		}
	}
	if len(r.members)-len(r.free)+len(nodes) > math.MaxInt32 {
		return fmt.Errorf("add %d nodes: ring is full: %w", len(nodes), ErrInvalidNode)
	}
	type claim struct {
		p   point
		ord int // insertion order: by node, then the node's points
		id  int32
	}
	total := 0
	for _, n := range nodes {
		total += n.Weight * r.vnodes
	}
	all := make([]claim, 0, total)
	for k, n := range nodes {
		r.seq++
		m := member{name: n.Name, weight: n.Weight, seq: r.seq}
		var id int32
		if f := len(r.free); f > 0 {
			id, r.free = r.free[f-1], r.free[:f-1]
			r.members[id] = m
		} else {
			id = int32(len(r.members))
			r.members = append(r.members, m)
		}
		r.ids[n.Name] = id
		for _, p := range r.pointsOf(n.Name, 0, n.Weight*r.vnodes) {
			all = append(all, claim{p: p, ord: k, id: id})
		}
	}
	// all is in insertion order: ord breaks ties between claims of one
	// point, for a total order without a stable sort.
	for k := range all {
		all[k].ord = k
	}
	slices.SortFunc(all, func(a, b claim) int {
		if c := comparePoints(a.p, b.p); c != 0 {
			return c
		}
		return cmp.Compare(a.ord, b.ord)
	})
	// The first claim of a point not on the ring makes it fresh; every
	// other claim (a later node, the same node twice, or a point already
	// on the ring) is replayed in insertion order once the fresh points
	// are merged, as the Add calls would have made it.
	var fresh []point
	var freshOwner []int32
	var later []claim
	for k, c := range all {
		if k > 0 && all[k-1].p == c.p {
			later = append(later, c)
			continue
		}
		if _, ok := r.find(c.p); ok {
			later = append(later, c)
			continue
		}
		fresh = append(fresh, c.p)
		freshOwner = append(freshOwner, c.id)
	}
	r.mergeOwned(fresh, freshOwner)
	slices.SortFunc(later, func(a, b claim) int { return cmp.Compare(a.ord, b.ord) })
	for _, c := range later {
		if i, ok := r.find(c.p); ok {
			r.claim(i, c.p, c.id)
		}
	}
	return nil
}

package hashring

import (
	"fmt"
	"maps"
	"slices"
)

// A Ring is a consistent-hash ring of weighted nodes.
//
// A Ring is not safe for concurrent mutation: [Ring.Add], [Ring.Remove]
// and [Ring.SetWeight] must not run concurrently with any other method.
// All other methods only read the ring and may run concurrently with each
// other. To share a ring with readers while it changes, guard it with a
// sync.RWMutex or publish copies made with [Ring.Clone].
//
// The zero Ring is not usable; build one with [New].
type Ring struct {
	tooz   bool
	vnodes int
	hash   Hash // nil in tooz mode

	nodes map[string]member
	seq   uint64 // insertion counter, for tooz's "last insertion wins"
	live  int    // members that own at least one point

	// The ring, sorted by (hi, lo): point i is (hi[i], lo[i]) and belongs
	// to owner[i]. lo is nil unless in tooz mode.
	hi    []uint64
	lo    []uint64
	owner []string

	// Claimants of points claimed more than once (by distinct nodes whose
	// points collide, or by one node twice). Almost always empty.
	shared map[point][]string
}

// member is the state of one node.
type member struct {
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
		nodes:  make(map[string]member),
		shared: make(map[point][]string),
	}, nil
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
	if node == "" {
		return fmt.Errorf("add node: %w", ErrInvalidNode)
	}
	if _, ok := r.nodes[node]; ok {
		return fmt.Errorf("add node %q: %w", node, ErrDuplicateNode)
	}
	n, err := r.checkWeight(node, weight)
	if err != nil {
		return fmt.Errorf("add node: %w", err)
	}
	r.seq++
	r.nodes[node] = member{weight: weight, seq: r.seq}
	r.insertPoints(node, r.pointsOf(node, 0, n))
	return nil
}

// Remove removes node and its points, in O(points); only the keys node
// owned move. It returns an error wrapping [ErrUnknownNode] if node is not
// a member. It must not run concurrently with other methods.
func (r *Ring) Remove(node string) error {
	m, ok := r.nodes[node]
	if !ok {
		return fmt.Errorf("remove node %q: %w", node, ErrUnknownNode)
	}
	r.removePoints(node, r.pointsOf(node, 0, m.weight*r.vnodes))
	if m = r.nodes[node]; m.owned > 0 {
		r.live-- // unreachable while the ring is consistent
	}
	delete(r.nodes, node)
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
	m, ok := r.nodes[node]
	if !ok {
		return fmt.Errorf("set weight of node %q: %w", node, ErrUnknownNode)
	}
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
	r.nodes[node] = m
	if r.tooz {
		r.reelect(node)
	}
	if n > old {
		r.insertPoints(node, r.pointsOf(node, old, n))
	} else {
		r.removePoints(node, r.pointsOf(node, n, old))
	}
	return nil
}

// reelect re-elects the owner of every shared point node claims.
func (r *Ring) reelect(node string) {
	for p, cl := range r.shared {
		if !slices.Contains(cl, node) {
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
	return slices.Sorted(maps.Keys(r.nodes))
}

// Weight returns the weight of node and whether it is a member. It is
// safe for concurrent use with other reads.
func (r *Ring) Weight(node string) (int, bool) {
	m, ok := r.nodes[node]
	return m.weight, ok
}

// Len returns the number of members, weight-0 nodes included. It is safe
// for concurrent use with other reads.
func (r *Ring) Len() int {
	return len(r.nodes)
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
	c.nodes = maps.Clone(r.nodes)
	c.hi = slices.Clone(r.hi)
	c.lo = slices.Clone(r.lo)
	c.owner = slices.Clone(r.owner)
	c.shared = make(map[point][]string, len(r.shared))
	for p, cl := range r.shared {
		c.shared[p] = slices.Clone(cl)
	}
	return &c
}

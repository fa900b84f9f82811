package hashring

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Default numbers of virtual nodes (points per unit of weight).
const (
	// DefaultVirtualNodes is the number of points per unit of weight in the
	// default (xxhash) mode.
	//
	// A node's share of the ring is the sum of the gaps before its points,
	// so its relative spread shrinks as 1/√points. With 10 equal nodes and
	// 100,000 keys, averaged over 20 sets of node names, the busiest node
	// carries 1.05× the mean load at 1024 points (worst set 1.07×),
	// against 1.14× at 128 (worst 1.21×), 1.10× at 256 and 1.08× at 512
	// (worst 1.14×); a join moves at worst 1.08× the optimum K/(n+1) keys
	// at 1024 (1.19× at 128). A lookup does not binary-search the points:
	// an index of the positions' top bits, about one bucket per point,
	// finds the key's point in one or two reads, so the cost of a lookup
	// does not grow with the points. The price is memory, about 20 bytes a
	// point (20 KiB per node of weight 1), and O(points) work on Add and
	// Remove. BenchmarkLoad and BenchmarkMovement reproduce the figures.
	//
	// The default used to be 128 points; a ring built with
	// WithVirtualNodes(128) keeps that placement exactly
	// (testdata/xxhash.golden pins it), so a fleet can upgrade without
	// reshuffling by setting it on every member.
	DefaultVirtualNodes = 1024

	// DefaultToozVirtualNodes is the number of points per unit of weight in
	// [ToozCompatible] mode; it is tooz's DEFAULT_PARTITION_NUMBER (2**5).
	DefaultToozVirtualNodes = 32

	// MaxPointsPerNode bounds weight × virtual nodes for a single node, so
	// that a mistaken weight cannot make [Ring.Add] allocate without limit:
	// weights up to 8192 at the default virtual nodes.
	MaxPointsPerNode = 1 << 23
)

// Hash maps bytes to a 64-bit ring position. It must be deterministic and
// safe for concurrent use; the ring calls it for keys and for node points.
// The default is [github.com/cespare/xxhash/v2.Sum64].
type Hash func(data []byte) uint64

// An Option configures a [Ring] built by [New].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is the validated construction state of a Ring.
type config struct {
	vnodes    int
	vnodesSet bool
	hash      Hash
	hashSet   bool
	tooz      bool
}

// WithVirtualNodes sets the number of points a node gets per unit of
// weight: a node of weight w owns w·n points. It must be at least 1. The
// default is [DefaultVirtualNodes], or [DefaultToozVirtualNodes] with
// [ToozCompatible], where n is tooz's "partitions" argument.
func WithVirtualNodes(n int) Option {
	return optionFunc(func(c *config) {
		c.vnodes = n
		c.vnodesSet = true
	})
}

// WithHash replaces the default hash (xxhash) for both keys and node
// points. Point i of node s is h(s + "\x00" + decimal(i)), as in the
// default mode. It cannot be combined with [ToozCompatible], and h must
// not be nil.
func WithHash(h Hash) Option {
	return optionFunc(func(c *config) {
		c.hash = h
		c.hashSet = true
	})
}

// ToozCompatible makes the ring reproduce the placements of tooz's
// HashRing (tooz.hashring, md5): a node of weight w owns the points
// md5(id×2), md5(id×3), …, md5(id×(P·w+1)), where id×k is the bytes of
// the node name repeated k times (a Python str node is its UTF-8
// encoding, a bytes node its raw bytes), P the virtual nodes (default 32,
// tooz's partitions) and points are 128-bit big-endian integers. A key
// maps to the first point strictly greater than md5(key), wrapping
// around, and Owners walks clockwise exactly as tooz's get_nodes does
// (tooz returns a set; Owners returns the same members in walk order).
// Where tooz's get_nodes loops forever (more replicas asked than nodes
// that own points, as with weight-0 members), Owners returns the nodes
// there are.
//
// Distinct names can share points in this layout ("a" and "aa" share
// md5("aaaa"), md5("aaaaaa"), …). tooz keeps one owner per point and the
// last insertion wins; so does this ring, where [Ring.Add] counts as an
// insertion and so does [Ring.SetWeight] with a new weight (tooz has no
// weight change; a tooz user removes and re-adds the node, which makes it
// the last insertion). When the winner of a shared point is removed, tooz
// deletes the point although the other node still claims it, and raises
// KeyError when that node is removed in turn; this ring instead hands the
// point back to the most recent remaining claimant, which is what a tooz
// ring built afresh from the remaining nodes in insertion order holds.
func ToozCompatible() Option {
	return optionFunc(func(c *config) { c.tooz = true })
}

// newConfig applies opts over the defaults and validates the result.
func newConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			return config{}, fmt.Errorf("nil option: %w", ErrInvalidOption)
		}
		o.apply(&c)
	}
	if c.vnodesSet && (c.vnodes < 1 || c.vnodes > MaxPointsPerNode) {
		return config{}, fmt.Errorf("virtual nodes %d not in [1, %d]: %w", c.vnodes, MaxPointsPerNode, ErrInvalidOption)
	}
	if c.hashSet && c.hash == nil {
		return config{}, fmt.Errorf("nil hash: %w", ErrInvalidOption)
	}
	if c.hashSet && c.tooz {
		return config{}, fmt.Errorf("WithHash and ToozCompatible are exclusive: %w", ErrInvalidOption)
	}
	if !c.vnodesSet {
		c.vnodes = DefaultVirtualNodes
		if c.tooz {
			c.vnodes = DefaultToozVirtualNodes
		}
	}
	if !c.tooz && c.hash == nil {
		c.hash = xxhash.Sum64
	}
	return c, nil
}

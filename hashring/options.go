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
	// 128 is where the balance curve flattens. With 10 equal nodes and
	// 100,000 keys, averaged over 20 sets of node names, the busiest node
	// carries 1.14× the mean load at 128 points (worst set 1.21×), against
	// 1.31× at 32, 1.20× at 64, 1.11× at 160 and 1.10× at 256. Past 128,
	// each doubling buys a few percent of balance for twice the memory
	// (12 bytes a point) and twice the work on Add and Remove, while 128
	// keeps the points of 10 nodes (1,280) within L1 cache for lookups.
	// BenchmarkLoad reproduces the figures.
	DefaultVirtualNodes = 128

	// DefaultToozVirtualNodes is the number of points per unit of weight in
	// [ToozCompatible] mode; it is tooz's DEFAULT_PARTITION_NUMBER (2**5).
	DefaultToozVirtualNodes = 32

	// MaxPointsPerNode bounds weight × virtual nodes for a single node, so
	// that a mistaken weight cannot make [Ring.Add] allocate without limit.
	MaxPointsPerNode = 1 << 20
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

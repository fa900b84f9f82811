// Package hashring is a consistent-hash ring with virtual nodes and
// weights: it maps a key to an owner node, or to an ordered list of
// distinct owners for replication, so that adding or removing one node
// moves only the keys that node gains or loses.
//
// The package is pure: no I/O, no goroutines, no clock. A [Ring] is not
// safe for concurrent mutation; methods that only read it may run
// concurrently with each other. Callers that mutate a ring shared with
// readers either guard it with a sync.RWMutex or publish immutable
// snapshots made with [Ring.Clone].
//
// # Placement
//
// By default a node of weight w owns w·[DefaultVirtualNodes] points.
// Point i of node s is xxhash64(s + "\x00" + decimal(i)), i = 0, 1, …, and
// a key k maps to the first point strictly greater than xxhash64(k),
// wrapping around. If two nodes hash a point to the same position, the
// point belongs to the node whose name sorts first, whatever the order of
// insertion. This layout is part of the package's compatibility promise:
// the golden files in testdata pin it, and a change to placement is a
// breaking change because it reshuffles every deployment on upgrade.
//
// [ToozCompatible] instead reproduces OpenStack tooz's HashRing (md5, its
// point layout and its lookup walk) so that Go and Python members of one
// group agree on who owns what.
//
// # Replicas
//
// [Ring.Owners] walks the ring clockwise from the key's position and
// collects distinct nodes, skipping an ignore-list, which gives the
// primary owner followed by its successors in a deterministic order. It
// never loops forever: it stops after one full turn of the ring.
package hashring

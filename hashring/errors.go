package hashring

import "errors"

// Sentinel errors. Methods wrap them with context; compare with
// [errors.Is].
var (
	// ErrUnknownNode is returned when a node is not a member of the ring.
	ErrUnknownNode = errors.New("hashring: unknown node")
	// ErrDuplicateNode is returned by [Ring.Add] for a node that is
	// already a member.
	ErrDuplicateNode = errors.New("hashring: duplicate node")
	// ErrInvalidNode is returned for an empty node name, or by [Ring.Add]
	// on a ring that already holds math.MaxInt32 nodes.
	ErrInvalidNode = errors.New("hashring: invalid node name")
	// ErrInvalidWeight is returned for a negative weight, or one whose
	// points would exceed [MaxPointsPerNode].
	ErrInvalidWeight = errors.New("hashring: invalid weight")
	// ErrInvalidOption is returned by [New] for an invalid or conflicting
	// option.
	ErrInvalidOption = errors.New("hashring: invalid option")
)

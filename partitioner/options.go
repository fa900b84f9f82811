package partitioner

import (
	"fmt"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/hashring"
)

// Mode says how ownership is enforced.
type Mode int

const (
	// Exclusive (the default): each owned partition is a held lock with
	// its own fencing token and loss context. A member releases what it
	// no longer owns before the new owner can take it, so no partition is
	// ever worked by two members at once, even while their views of the
	// membership differ. OwnedBySelf is true only while the lock is held.
	Exclusive Mode = iota + 1
	// Advisory: ownership is computed from each member's view of the
	// membership only (tooz's partitioner). Cheap, but two members can
	// both believe they own a partition while their views differ.
	Advisory
)

// String returns "exclusive" or "advisory".
func (m Mode) String() string {
	switch m {
	case Exclusive:
		return "exclusive"
	case Advisory:
		return "advisory"
	}
	return "unknown"
}

// Option configures a Partitioner.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	partitions  int
	mode        Mode
	assignment  Assignment
	weight      int
	ringOpts    []hashring.Option
	toozParts   int
	onRebalance func(Rebalance)
	retry       time.Duration
	lockTTL     time.Duration
	margin      time.Duration
	lockPrefix  string
}

// DefaultPartitions is the default number of partitions.
const DefaultPartitions = 64

// WithPartitions sets the fixed number of partitions keys are hashed
// into (default 64). Every member of a group must use the same count.
func WithPartitions(n int) Option { return optionFunc(func(o *options) { o.partitions = n }) }

// WithMode sets the ownership mode (default Exclusive).
func WithMode(m Mode) Option { return optionFunc(func(o *options) { o.mode = m }) }

// WithWeight sets this member's weight (default 1), published in its
// capabilities as the msgpack map {"weight": w}, as tooz does. Weight 0
// joins without owning anything.
func WithWeight(w int) Option { return optionFunc(func(o *options) { o.weight = w }) }

// WithAssignment chooses how partitions map to members (default
// Balanced). Every member of a group must use the same.
func WithAssignment(a Assignment) Option { return optionFunc(func(o *options) { o.assignment = a }) }

// WithRingOptions passes options to the hash ring of the Ring assignment
// (e.g. hashring.ToozCompatible()); it selects the Ring assignment. Every
// member must use the same.
func WithRingOptions(opts ...hashring.Option) Option {
	return optionFunc(func(o *options) {
		o.ringOpts = append(o.ringOpts, opts...)
		o.assignment = Ring
	})
}

// WithToozPartitions selects the Tooz assignment with n as tooz's
// Partitioner "partitions" argument: the ring's points per unit of
// weight (default hashring.DefaultToozVirtualNodes, 32, tooz's default).
// Every member of the group, Go or Python, must use the same n.
func WithToozPartitions(n int) Option {
	return optionFunc(func(o *options) {
		o.toozParts = n
		o.assignment = Tooz
	})
}

// OnRebalance registers a callback told of every change of this member's
// partitions, lost before gained. It runs on the partitioner's goroutine,
// never inside New: the first Rebalance comes after New has returned
// (New computes the first assignment; the partitions are taken, and
// reported, by the goroutine New starts). Each Rebalance carries the
// context of every gained partition, so the callback needs no reference
// to the *Partitioner. In Exclusive mode the lost partitions' locks are
// released only after it returns, so stop their work before returning (or
// run it under the partition's context, which is cancelled first).
func OnRebalance(fn func(Rebalance)) Option {
	return optionFunc(func(o *options) { o.onRebalance = fn })
}

// WithRetryInterval sets how often, in Exclusive mode, a member retries
// taking a partition it was assigned but whose previous owner still holds
// it (default 50ms).
func WithRetryInterval(d time.Duration) Option { return optionFunc(func(o *options) { o.retry = d }) }

// WithLockTTL and WithSafetyMargin tune the partition locks on TTL
// backends (see package lock).
func WithLockTTL(d time.Duration) Option { return optionFunc(func(o *options) { o.lockTTL = d }) }

// WithSafetyMargin sets the partition locks' safety margin.
func WithSafetyMargin(d time.Duration) Option { return optionFunc(func(o *options) { o.margin = d }) }

func (o *options) validate() error {
	if o.partitions == 0 {
		o.partitions = DefaultPartitions
	}
	if o.assignment == 0 {
		o.assignment = Balanced
	}
	if o.mode == 0 {
		o.mode = Exclusive
		if o.assignment == Tooz {
			o.mode = Advisory
		}
	}
	if o.retry == 0 {
		o.retry = 50 * time.Millisecond
	}
	switch {
	case o.partitions < 1 || o.partitions > 1<<16:
		return fmt.Errorf("partitions %d not in 1..65536: %w", o.partitions, backend.ErrInvalidArgument)
	case o.mode != Exclusive && o.mode != Advisory:
		return fmt.Errorf("unknown mode %d: %w", o.mode, backend.ErrInvalidArgument)
	case o.assignment != Balanced && o.assignment != Ring && o.assignment != Tooz:
		return fmt.Errorf("unknown assignment %d: %w", o.assignment, backend.ErrInvalidArgument)
	case o.assignment == Tooz && o.mode != Advisory:
		return fmt.Errorf("the tooz assignment is advisory, as tooz's partitioner: mode %s: %w", o.mode, backend.ErrInvalidArgument)
	case o.toozParts < 1 || o.toozParts > hashring.MaxPointsPerNode:
		return fmt.Errorf("tooz partitions %d not in 1..%d: %w", o.toozParts, hashring.MaxPointsPerNode, backend.ErrInvalidArgument)
	case o.weight < 0:
		return fmt.Errorf("negative weight %d: %w", o.weight, backend.ErrInvalidArgument)
	case o.retry < 0 || o.lockTTL < 0 || o.margin < 0:
		return fmt.Errorf("negative duration: %w", backend.ErrInvalidArgument)
	case o.lockTTL > 0 && o.margin >= o.lockTTL:
		return fmt.Errorf("safety margin %v is not below the lock TTL %v: %w", o.margin, o.lockTTL, backend.ErrInvalidArgument)
	}
	return nil
}

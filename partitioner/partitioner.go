// Package partitioner shares a fixed set of partitions among the live
// members of a group and tells each member which partitions it lost and
// gained, losses first.
//
// Keys map to partitions by xxhash modulo the partition count; partitions
// map to members by a bounded-load rendezvous assignment of the members'
// weights (Balanced, the default: every member owns its share of the
// partitions, rounded down or up), or by tooz's consistent-hash ring
// (Ring). The Tooz assignment is tooz's Partitioner exactly: keys are
// placed on a tooz ring of the members, for groups shared with Python
// members. Weights come from the members' capabilities, {"weight": w} in
// msgpack as tooz publishes them. The partitioner follows the group with
// a watch; the caller never polls. In the default Exclusive mode each
// owned partition is also a held lock, so a partition is never worked by
// two members at once; a partition whose lock is lost (its lease expired
// under a pause, it was deleted on the server, lost in a failover) is
// reported Lost, its context cancelled with the loss's cause, and it is
// taken again by the member the assignment names.
//
// A Partitioner runs until Close, until the context given to New ends, or
// until its Backend closes or loses its session; Done and Err report
// that. See docs/partitioning.md for a guide.
package partitioner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/hashring"
	"github.com/baton-go/baton/membership"
)

// Rebalance reports a change of this member's partitions.
type Rebalance struct {
	// Lost partitions are no longer this member's: stop their work.
	Lost []int
	// Gained partitions are now this member's (in Exclusive mode: their
	// locks are held).
	Gained []int
	// Owned is the complete set owned after the change.
	Owned []int
	// Members is the view of the group that produced the change.
	Members []string
	// Contexts holds the context of each gained partition (see
	// Partitioner.PartitionContext), so that a callback needs no reference
	// to the Partitioner.
	Contexts map[int]context.Context
	// Causes says why each lost partition was lost: ErrRevoked when the
	// assignment moved it, ErrStopped when the partitioner stopped, or the
	// cause of its lock's loss (matching backend.ErrLost, e.g.
	// backend.ErrNoLongerHeld or backend.ErrExpired).
	Causes map[int]error
	// Took is how long the rebalance had run when this change was
	// reported, on the Backend's clock: from the start of the pass (a
	// membership change, a lost lock or a retry woke it) to the callback,
	// locks of gained partitions taken included in Exclusive mode.
	Took time.Duration
}

// ErrRevoked is the context cause of a partition taken away by a
// rebalance.
var ErrRevoked = errors.New("partition revoked")

// ErrStopped is the context cause of the partitions given up when the
// partitioner stops (Close, its context ended, its Backend closed).
// It wraps ErrRevoked.
var ErrStopped = fmt.Errorf("partitioner stopped: %w", ErrRevoked)

// ownership is one owned partition.
type ownership struct {
	g      *backend.Grant // Exclusive mode only
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool // stops the watch on the grant's context
}

// lost reports whether the partition's lock was lost (or its context
// otherwise ended) without this member giving it up.
func (o *ownership) lost() bool {
	if o.g != nil {
		return !o.g.Valid()
	}
	return o.ctx.Err() != nil
}

// Partitioner is this member's share of a group's partitions. It is safe
// for concurrent use.
type Partitioner struct {
	b     *backend.Backend
	group *membership.Group
	o     options

	cancel context.CancelCauseFunc
	done   chan struct{}
	wake   chan struct{} // a partition's lock was lost

	mu       sync.RWMutex
	weights  map[string]int // the current view
	members  []string       // sorted
	owners   []string       // by partition, from the view
	ring     *hashring.Ring // Ring and Tooz assignments only
	assigned map[int]bool   // by the current view
	owned    map[int]*ownership
	err      error
}

// New joins group (creating it when missing) with this member's weight,
// computes the first assignment from the group's members and starts the
// partitioner's goroutine, which takes this member's partitions (in
// Exclusive mode, partitions still held by a previous owner are taken as
// soon as they are released) and reports them to OnRebalance. No
// callback runs before New returns. The partitioner runs until Close,
// until ctx ends, or until b closes or loses its session.
func New(ctx context.Context, b *backend.Backend, group string, opts ...Option) (*Partitioner, error) {
	o := options{weight: 1, toozParts: hashring.DefaultToozVirtualNodes}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("partitioner %q: %w", group, err)
	}
	if _, err := hashring.New(o.ringOpts...); err != nil {
		return nil, fmt.Errorf("partitioner %q: %v: %w", group, err, backend.ErrInvalidArgument)
	}
	g, err := membership.NewGroup(b, group)
	if err != nil {
		return nil, err
	}
	o.lockPrefix = "baton.partition/" + group + "/"
	caps, err := membership.EncodeCapabilities(map[string]int{"weight": o.weight})
	if err != nil {
		return nil, err
	}
	if err := g.Join(ctx, membership.WithCapabilities(caps), membership.CreateIfMissing()); err != nil {
		return nil, err
	}
	w, err := g.Watch(context.WithoutCancel(ctx))
	if err != nil {
		_ = g.Leave(context.WithoutCancel(ctx))
		return nil, err
	}
	p := &Partitioner{b: b, group: g, o: o, weights: map[string]int{}, assigned: map[int]bool{},
		owned: map[int]*ownership{}, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	p.setMembers(w.Initial())
	runCtx, cancel := context.WithCancelCause(ctx)
	p.cancel = cancel
	go p.run(runCtx, w)
	return p, nil
}

// Partitions returns the partition count.
func (p *Partitioner) Partitions() int { return p.o.partitions }

// Partition returns the partition of key.
func (p *Partitioner) Partition(key []byte) int {
	return int(xxhash.Sum64(key) % uint64(p.o.partitions))
}

func partitionKey(part int) []byte { return []byte("partition-" + strconv.Itoa(part)) }

// Owner returns the member that owns key's partition in this member's
// current view; ok is false when the group has no member with weight. In
// the Tooz assignment it is the owner of key itself on the ring, tooz's
// members_for_object.
func (p *Partitioner) Owner(key []byte) (string, bool) {
	if p.o.assignment == Tooz {
		p.mu.RLock()
		defer p.mu.RUnlock()
		if p.ring == nil {
			return "", false
		}
		return p.ring.Owner(key)
	}
	return p.PartitionOwner(p.Partition(key))
}

// PartitionOwner returns the member that owns partition part in this
// member's current view.
func (p *Partitioner) PartitionOwner(part int) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if part < 0 || part >= len(p.owners) || p.owners[part] == "" {
		return "", false
	}
	return p.owners[part], true
}

// Owners returns up to n distinct members for key's partition, the owner
// first, then replicas in a deterministic order (rendezvous score for the
// Balanced assignment, ring order for the Ring assignment). In the Tooz
// assignment they are the members tooz's members_for_object(key,
// replicas=n) returns, in ring order.
func (p *Partitioner) Owners(key []byte, n int) []string {
	if p.o.assignment == Tooz {
		p.mu.RLock()
		defer p.mu.RUnlock()
		if p.ring == nil {
			return nil
		}
		return p.ring.Owners(key, n)
	}
	part := p.Partition(key)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if n <= 0 || p.owners[part] == "" {
		return nil
	}
	if p.ring != nil {
		return p.ring.Owners(partitionKey(part), n)
	}
	out := []string{p.owners[part]}
	for _, id := range rank(p.weighted(), part) {
		if len(out) == n {
			break
		}
		if id != out[0] {
			out = append(out, id)
		}
	}
	return out
}

// OwnedBySelf reports whether this member owns key's partition: in
// Exclusive mode, whether it holds the partition's lock (and the grant is
// not lost); in Advisory mode, whether its view assigns it. In the Tooz
// assignment, whether this member owns key itself on the ring (tooz's
// belongs_to_self).
func (p *Partitioner) OwnedBySelf(key []byte) bool {
	if p.o.assignment == Tooz {
		o, ok := p.Owner(key)
		return ok && o == p.b.MemberID()
	}
	return p.OwnsPartition(p.Partition(key))
}

// OwnsPartition is OwnedBySelf for a partition number.
func (p *Partitioner) OwnsPartition(part int) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.o.mode == Advisory {
		return p.assigned[part]
	}
	own := p.owned[part]
	return own != nil && !own.lost()
}

// Done is closed when the partitioner has stopped (Close, the context
// given to New ended, its Backend closed or lost its session) and has
// given up its partitions; Err then says why.
func (p *Partitioner) Done() <-chan struct{} { return p.done }

// PartitionContext returns the context under which partition part's work
// must run: in Exclusive mode the partition lock's grant context
// (cancelled when the partition is revoked or the lock lost); in Advisory
// mode a context cancelled when the partition is revoked. ok is false
// when this member does not own part.
func (p *Partitioner) PartitionContext(part int) (context.Context, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	own := p.owned[part]
	if own == nil {
		return nil, false
	}
	return own.ctx, true
}

// PartitionToken returns the fencing token of partition part's lock in
// Exclusive mode (0 in Advisory mode or when not owned).
func (p *Partitioner) PartitionToken(part int) uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if own := p.owned[part]; own != nil && own.g != nil {
		return own.g.Token()
	}
	return 0
}

// Owned returns the partitions this member owns, sorted. A partition
// whose lock was lost is not listed, from the moment of the loss.
func (p *Partitioner) Owned() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]int, 0, len(p.owned))
	for part, own := range p.owned {
		if p.o.mode == Exclusive && own.lost() {
			continue
		}
		out = append(out, part)
	}
	slices.Sort(out)
	return out
}

// Members returns the current view of the group.
func (p *Partitioner) Members() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]string(nil), p.members...)
}

// Err returns why the partitioner stopped (nil while it runs): ErrStopped
// after Close, the cause of the context given to New when it ended, the
// Backend's error when it closed (backend.ErrClosed) or lost its session
// (matching backend.ErrLost), or the error that ended the group watch.
func (p *Partitioner) Err() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.err
}

// Close stops following the group, gives every partition up (reporting
// them Lost through OnRebalance, those whose lock was already lost first,
// then releasing the locks) and leaves the group. It blocks until done.
// Closing twice, or after the partitioner stopped, is harmless.
func (p *Partitioner) Close(ctx context.Context) error {
	p.cancel(ErrStopped)
	<-p.done
	err := p.group.Leave(ctx)
	if errors.Is(err, backend.ErrNotMember) || errors.Is(err, backend.ErrGroupNotFound) || errors.Is(err, backend.ErrClosed) || errors.Is(err, backend.ErrLost) {
		err = nil
	}
	return err
}

// weightOf reads a member's weight from its capabilities: 1 when it has
// none. A negative weight counts as 1, or as 0 in the Tooz assignment
// (tooz's ring gives it no point).
func (p *Partitioner) weightOf(m membership.Member) int {
	var caps struct {
		Weight *int `msgpack:"weight"`
	}
	if err := m.Decode(&caps); err != nil || caps.Weight == nil {
		return 1
	}
	if *caps.Weight < 0 {
		if p.o.assignment == Tooz {
			return 0
		}
		return 1
	}
	return *caps.Weight
}

// weighted returns the view as an assignment's input; p.mu is held.
func (p *Partitioner) weighted() []Weighted {
	ms := make([]Weighted, 0, len(p.weights))
	for _, id := range p.members {
		ms = append(ms, Weighted{ID: id, Weight: p.weights[id]})
	}
	return ms
}

// reassign recomputes the owners from the view; p.mu is held.
func (p *Partitioner) reassign() {
	p.members = p.members[:0]
	for id := range p.weights {
		p.members = append(p.members, id)
	}
	slices.Sort(p.members)
	if p.o.assignment == Ring || p.o.assignment == Tooz {
		opts := p.o.ringOpts
		if p.o.assignment == Tooz {
			opts = toozRingOptions(p.o.toozParts)
		}
		r, err := buildRing(p.weighted(), opts)
		if err != nil {
			return // options were validated in New; weights are checked on the way in
		}
		p.ring = r
		p.owners = ringOwners(r, p.o.partitions)
		return
	}
	p.owners = AssignBalanced(p.weighted(), p.o.partitions)
}

// setMembers replaces the view with a member list.
func (p *Partitioner) setMembers(ms []membership.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.weights = map[string]int{}
	for _, m := range ms {
		if m.ID != "" {
			p.weights[m.ID] = p.weightOf(m)
		}
	}
	p.reassign()
}

// applyEvent updates the view with one membership event; it reports
// whether the view changed.
func (p *Partitioner) applyEvent(ev membership.Event) bool {
	switch ev.Type {
	case membership.Resync:
		p.setMembers(ev.Members)
		return true
	case membership.Joined, membership.CapabilitiesChanged, membership.Left:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := ev.Member.ID
	if id == "" {
		return false
	}
	switch ev.Type {
	case membership.Joined, membership.CapabilitiesChanged:
		p.weights[id] = p.weightOf(ev.Member)
	case membership.Left:
		delete(p.weights, id)
	}
	if p.ring != nil {
		// The ring follows the change in O(points), where a rebuild would
		// add every member again.
		p.updateRing(id)
		return true
	}
	p.reassign()
	return true
}

// updateRing applies the change of member id (joined, new weight, left)
// to the ring and recomputes the owners; p.mu is held. A weight the ring
// refuses leaves the member out, as a rebuild would.
func (p *Partitioner) updateRing(id string) {
	w, member := p.weights[id]
	_, onRing := p.ring.Weight(id)
	switch {
	case !member && onRing:
		_ = p.ring.Remove(id)
	case member && onRing:
		if err := p.ring.SetWeight(id, w); err != nil {
			_ = p.ring.Remove(id)
		}
	case member:
		_ = p.ring.Add(id, w)
	}
	p.members = p.members[:0]
	for id := range p.weights {
		p.members = append(p.members, id)
	}
	slices.Sort(p.members)
	p.owners = ringOwners(p.ring, p.o.partitions)
}

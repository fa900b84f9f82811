// Package partitioner shares a fixed set of partitions among the live
// members of a group by consistent hashing of member weights, and tells
// each member which partitions it lost and gained, losses first.
//
// Keys map to partitions by xxhash modulo the partition count; partitions
// map to members through a hashring.Ring of the members (weights from
// their capabilities, {"weight": w} in msgpack as tooz publishes them).
// The partitioner follows the group with a watch; the caller never polls.
// In the default Exclusive mode each owned partition is also a held lock,
// so a partition is never worked by two members at once.
package partitioner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

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
}

// ErrRevoked is the context cause of a partition taken away by a
// rebalance.
var ErrRevoked = errors.New("partition revoked")

// ownership is one owned partition.
type ownership struct {
	g      *backend.Grant // Exclusive mode only
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (o *ownership) lost() bool { return o.g != nil && o.g.Lost() }

// Partitioner is this member's share of a group's partitions. It is safe
// for concurrent use.
type Partitioner struct {
	b     *backend.Backend
	group *membership.Group
	o     options

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.RWMutex
	ring     *hashring.Ring
	members  []string
	assigned map[int]bool // by the current view
	owned    map[int]*ownership
	err      error
}

// New joins group (creating it when missing) with this member's weight,
// starts following its membership and takes this member's partitions. It
// blocks until the first assignment is computed (in Exclusive mode,
// partitions still held by a previous owner are taken later, as soon as
// they are released). The partitioner runs until Close or until the
// backend ends.
func New(ctx context.Context, b *backend.Backend, group string, opts ...Option) (*Partitioner, error) {
	o := options{weight: 1}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("partitioner %q: %w", group, err)
	}
	ring, err := hashring.New(o.ringOpts...)
	if err != nil {
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
	p := &Partitioner{b: b, group: g, o: o, ring: ring, assigned: map[int]bool{}, owned: map[int]*ownership{}, done: make(chan struct{})}
	p.setMembers(w.Initial())
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.rebalance(runCtx)
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
// current view; ok is false when the group has no member with weight.
func (p *Partitioner) Owner(key []byte) (string, bool) {
	return p.PartitionOwner(p.Partition(key))
}

// PartitionOwner returns the member that owns partition part in this
// member's current view.
func (p *Partitioner) PartitionOwner(part int) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ring.Owner(partitionKey(part))
}

// Owners returns up to n distinct members for key's partition, the owner
// first, in deterministic ring order (replicas).
func (p *Partitioner) Owners(key []byte, n int) []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ring.Owners(partitionKey(p.Partition(key)), n)
}

// OwnedBySelf reports whether this member owns key's partition: in
// Exclusive mode, whether it holds the partition's lock (and the grant is
// not lost); in Advisory mode, whether its view assigns it.
func (p *Partitioner) OwnedBySelf(key []byte) bool {
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

// Owned returns the partitions this member owns, sorted.
func (p *Partitioner) Owned() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]int, 0, len(p.owned))
	for part := range p.owned {
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

// Err returns why the partitioner stopped following the group (nil while
// it runs).
func (p *Partitioner) Err() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.err
}

// Close stops following the group, gives every partition up (revoking
// them through OnRebalance first) and leaves the group. It blocks until
// done.
func (p *Partitioner) Close(ctx context.Context) error {
	p.cancel()
	<-p.done
	err := p.group.Leave(ctx)
	if errors.Is(err, backend.ErrNotMember) || errors.Is(err, backend.ErrGroupNotFound) || errors.Is(err, backend.ErrClosed) || errors.Is(err, backend.ErrLost) {
		err = nil
	}
	return err
}

func weightOf(m membership.Member) int {
	var caps struct {
		Weight *int `msgpack:"weight"`
	}
	if err := m.Decode(&caps); err != nil || caps.Weight == nil || *caps.Weight < 0 {
		return 1
	}
	return *caps.Weight
}

// setMembers rebuilds the ring from a member list.
func (p *Partitioner) setMembers(ms []membership.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ring, err := hashring.New(p.o.ringOpts...)
	if err != nil {
		return // options were validated in New
	}
	p.members = p.members[:0]
	for _, m := range ms {
		if err := ring.Add(m.ID, weightOf(m)); err == nil {
			p.members = append(p.members, m.ID)
		}
	}
	slices.Sort(p.members)
	p.ring = ring
}

// applyEvent updates the ring with one membership event; it reports
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
	switch ev.Type {
	case membership.Joined:
		if err := p.ring.Add(id, weightOf(ev.Member)); err != nil {
			_ = p.ring.SetWeight(id, weightOf(ev.Member))
		}
	case membership.CapabilitiesChanged:
		if err := p.ring.SetWeight(id, weightOf(ev.Member)); err != nil {
			_ = p.ring.Add(id, weightOf(ev.Member))
		}
	case membership.Left:
		_ = p.ring.Remove(id)
	}
	p.members = p.ring.Nodes()
	return true
}

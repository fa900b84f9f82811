package partitioner

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/membership"
)

// run follows the group and keeps this member's partitions in line with
// the view until ctx ends.
func (p *Partitioner) run(ctx context.Context, w *membership.Watch) {
	defer close(p.done)
	defer w.Close()
	defer p.releaseAll()
	var retry <-chan time.Time
	var t *time.Timer
	for {
		if p.wantsRetry() && retry == nil {
			t = time.NewTimer(p.o.retry)
			retry = t.C
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case ev, ok := <-w.Events():
			if !ok {
				p.mu.Lock()
				p.err = w.Err()
				p.mu.Unlock()
				if ctx.Err() == nil {
					p.b.Logger().Warn("partitioner stopped following the group", zap.String("group", p.group.ID()), zap.Error(w.Err()))
				}
				<-ctx.Done()
				return
			}
			if p.applyEvent(ev) {
				p.rebalance(ctx)
			}
		case <-retry:
			retry = nil
			p.rebalance(ctx)
		}
	}
}

// wantsRetry reports whether some assigned partition is not held yet (or
// its grant was lost), in Exclusive mode.
func (p *Partitioner) wantsRetry() bool {
	if p.o.mode != Exclusive {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for part := range p.assigned {
		if own := p.owned[part]; own == nil || own.lost() {
			return true
		}
	}
	return false
}

// rebalance computes this member's assignment from the view; it revokes
// what it no longer owns (callback first, then release) and then takes
// what it gained.
func (p *Partitioner) rebalance(ctx context.Context) {
	self := p.b.MemberID()
	p.mu.Lock()
	want := map[int]bool{}
	for part := 0; part < p.o.partitions; part++ {
		if owner, ok := p.ring.Owner(partitionKey(part)); ok && owner == self {
			want[part] = true
		}
	}
	p.assigned = want
	var lost []int
	for part, own := range p.owned {
		if !want[part] || own.lost() {
			lost = append(lost, part)
		}
	}
	members := append([]string(nil), p.members...)
	p.mu.Unlock()
	slices.Sort(lost)
	if len(lost) > 0 {
		p.notify(Rebalance{Lost: lost, Members: members})
		p.release(lost)
	}
	var gained []int
	for part := 0; part < p.o.partitions; part++ {
		if !want[part] {
			continue
		}
		p.mu.RLock()
		_, have := p.owned[part]
		p.mu.RUnlock()
		if have {
			continue
		}
		own, ok := p.take(ctx, part)
		if !ok {
			continue
		}
		p.mu.Lock()
		p.owned[part] = own
		p.mu.Unlock()
		gained = append(gained, part)
	}
	if len(gained) > 0 {
		p.notify(Rebalance{Gained: gained, Members: members})
	}
}

// take acquires partition part: its lock in Exclusive mode, a plain
// cancellable context in Advisory mode.
func (p *Partitioner) take(ctx context.Context, part int) (*ownership, bool) {
	if p.o.mode == Advisory {
		c, cancel := context.WithCancelCause(p.b.Context())
		return &ownership{ctx: c, cancel: cancel}, true
	}
	name := p.o.lockPrefix + fmt.Sprintf("%05d", part)
	g, ok, err := p.b.TryLock(ctx, name, backend.LockOptions{TTL: p.o.lockTTL, Margin: p.o.margin})
	if err != nil && ctx.Err() == nil {
		p.b.Logger().Debug("take partition failed", zap.Int("partition", part), zap.Error(err))
	}
	if err != nil || !ok {
		return nil, false
	}
	c, cancel := context.WithCancelCause(g.Context())
	return &ownership{g: g, ctx: c, cancel: cancel}, true
}

// release gives up partitions: cancels their work and frees their locks.
func (p *Partitioner) release(parts []int) {
	for _, part := range parts {
		p.mu.Lock()
		own := p.owned[part]
		delete(p.owned, part)
		p.mu.Unlock()
		if own == nil {
			continue
		}
		own.cancel(ErrRevoked)
		if own.g == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := own.g.Release(ctx); err != nil && !own.g.Lost() {
			p.b.Logger().Debug("release partition failed", zap.Int("partition", part), zap.Error(err))
		}
		cancel()
	}
}

func (p *Partitioner) releaseAll() {
	p.mu.RLock()
	parts := make([]int, 0, len(p.owned))
	for part := range p.owned {
		parts = append(parts, part)
	}
	members := append([]string(nil), p.members...)
	p.mu.RUnlock()
	slices.Sort(parts)
	if len(parts) > 0 {
		p.notify(Rebalance{Lost: parts, Members: members})
	}
	p.release(parts)
}

// notify completes a Rebalance with the owned set and runs the callback.
func (p *Partitioner) notify(r Rebalance) {
	p.mu.RLock()
	for part := range p.owned {
		r.Owned = append(r.Owned, part)
	}
	p.mu.RUnlock()
	if len(r.Lost) > 0 {
		r.Owned = slices.DeleteFunc(r.Owned, func(x int) bool { return slices.Contains(r.Lost, x) })
	}
	slices.Sort(r.Owned)
	if p.o.onRebalance != nil {
		p.o.onRebalance(r)
	}
}

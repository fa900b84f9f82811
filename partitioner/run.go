package partitioner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/membership"
)

// run follows the group and keeps this member's partitions in line with
// the view until ctx ends, the Backend ends or the watch ends. Every
// timer comes from the Backend's clock.
func (p *Partitioner) run(ctx context.Context, w *membership.Watch) {
	defer close(p.done)
	defer p.releaseAll()
	defer w.Close()
	var retry <-chan time.Time
	var t backend.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	p.rebalance(ctx)
	for {
		if retry == nil && p.wantsRetry() {
			t = p.b.Clock().NewTimer(p.o.retry)
			retry = t.C()
		}
		select {
		case <-ctx.Done():
			p.stop(context.Cause(ctx))
			return
		case <-p.b.Done():
			p.stop(p.b.Err())
			return
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if err == nil {
					err = p.b.Err()
				}
				if err == nil {
					err = fmt.Errorf("group watch ended: %w", backend.ErrClosed)
				}
				if ctx.Err() == nil {
					p.b.Logger().Warn("partitioner stopped following the group", zap.String("group", p.group.ID()), zap.Error(err))
				}
				p.stop(err)
				return
			}
			if p.applyEvent(ev) {
				p.rebalance(ctx)
			}
		case <-p.wake:
			p.rebalance(ctx)
		case <-retry:
			retry = nil
			p.rebalance(ctx)
		}
	}
}

// stop records why the partitioner stopped (the first reason wins).
func (p *Partitioner) stop(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
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

// rebalance computes this member's assignment from the view; it gives up
// what it no longer owns or whose lock was lost (callback first, then
// release) and then takes what it is assigned and does not hold, retaking
// at once a partition whose lock was lost and that is still assigned.
func (p *Partitioner) rebalance(ctx context.Context) {
	start := p.b.Clock().Now()
	took := func() time.Duration { return p.b.Clock().Now().Sub(start) }
	self := p.b.MemberID()
	p.mu.Lock()
	want := map[int]bool{}
	for part, owner := range p.owners {
		if owner == self && owner != "" {
			want[part] = true
		}
	}
	p.assigned = want
	var lost []int
	causes := map[int]error{}
	for part, own := range p.owned {
		switch {
		case own.lost():
			lost = append(lost, part)
			causes[part] = context.Cause(own.ctx)
		case !want[part]:
			lost = append(lost, part)
			causes[part] = ErrRevoked
		}
	}
	members := append([]string(nil), p.members...)
	p.mu.Unlock()
	slices.Sort(lost)
	if len(lost) > 0 {
		for _, part := range lost {
			if errors.Is(causes[part], backend.ErrLost) {
				p.b.Logger().Warn("partition lock lost", zap.String("group", p.group.ID()), zap.Int("partition", part), zap.Error(causes[part]))
			}
		}
		p.cancelWork(lost, causes)
		p.notify(Rebalance{Lost: lost, Causes: causes, Members: members, Took: took()})
		p.release(lost, ErrRevoked)
	}
	if ctx.Err() != nil || p.b.Err() != nil {
		return
	}
	var gained []int
	ctxs := map[int]context.Context{}
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
		ctxs[part] = own.ctx
	}
	if len(gained) > 0 {
		p.notify(Rebalance{Gained: gained, Contexts: ctxs, Members: members, Took: took()})
	}
}

// take acquires partition part: its lock in Exclusive mode, a plain
// cancellable context in Advisory mode.
func (p *Partitioner) take(ctx context.Context, part int) (*ownership, bool) {
	if p.o.mode == Advisory {
		c, cancel := context.WithCancelCause(p.b.Context())
		return &ownership{ctx: c, cancel: cancel, stop: func() bool { return false }}, true
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
	// A loss of the lock wakes the partitioner, which reports it and
	// retakes the partition when it is still assigned.
	stop := context.AfterFunc(g.Context(), func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	})
	return &ownership{g: g, ctx: c, cancel: cancel, stop: stop}, true
}

// release gives up partitions: cancels their work with cause (a context
// already ended keeps its cause) and frees their locks.
func (p *Partitioner) release(parts []int, cause error) {
	for _, part := range parts {
		p.mu.Lock()
		own := p.owned[part]
		delete(p.owned, part)
		p.mu.Unlock()
		if own == nil {
			continue
		}
		own.stop()
		own.cancel(cause)
		if own.g == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := own.g.Release(ctx); err != nil && own.g.Valid() {
			p.b.Logger().Debug("release partition failed", zap.Int("partition", part), zap.Error(err))
		}
		cancel()
	}
}

// releaseAll gives every partition up when the partitioner stops: the
// partitions whose lock was lost are reported first, with their causes,
// then the others, then every lock is released.
func (p *Partitioner) releaseAll() {
	p.mu.RLock()
	var lost, rest []int
	causes := map[int]error{}
	for part, own := range p.owned {
		if own.lost() {
			lost = append(lost, part)
			causes[part] = context.Cause(own.ctx)
		} else {
			rest = append(rest, part)
			causes[part] = ErrStopped
		}
	}
	members := append([]string(nil), p.members...)
	p.mu.RUnlock()
	slices.Sort(lost)
	slices.Sort(rest)
	p.cancelWork(lost, causes)
	p.cancelWork(rest, causes)
	if len(lost) > 0 {
		p.notify(Rebalance{Lost: lost, Causes: pick(causes, lost), Members: members})
	}
	if len(rest) > 0 {
		p.notify(Rebalance{Lost: rest, Causes: pick(causes, rest), Members: members})
	}
	p.release(lost, ErrStopped)
	p.release(rest, ErrStopped)
}

// cancelWork cancels the contexts of partitions being given up, with
// their causes, before the callback hears of them (a context already
// ended keeps its cause).
func (p *Partitioner) cancelWork(parts []int, causes map[int]error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, part := range parts {
		if own := p.owned[part]; own != nil {
			own.cancel(causes[part])
		}
	}
}

func pick(m map[int]error, keys []int) map[int]error {
	out := make(map[int]error, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// notify completes a Rebalance with the owned set and runs the callback.
func (p *Partitioner) notify(r Rebalance) {
	p.mu.RLock()
	for part, own := range p.owned {
		if p.o.mode == Exclusive && own.lost() {
			continue
		}
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

package membackend

import (
	"context"
	"fmt"

	"github.com/baton-go/baton/backend/driver"
)

// groupWatch is one WatchGroup call's queue of events, filled under the
// store's lock and drained by the watching goroutine.
type groupWatch struct {
	q       []driver.GroupEvent
	wake    chan struct{} // capacity 1
	deleted bool
}

func (w *groupWatch) pushLocked(ev driver.GroupEvent) {
	w.q = append(w.q, ev)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// holderEvent is one state of a lock's holder.
type holderEvent struct {
	h    driver.Holder
	held bool
}

// holderWatch is one WatchHolder call's queue of holder states.
type holderWatch struct {
	q    []holderEvent
	wake chan struct{} // capacity 1
}

func (w *holderWatch) pushLocked(ev holderEvent) {
	w.q = append(w.q, ev)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// WatchGroup emits a snapshot of the group's members, then every change in
// the order the store made them, from the calling goroutine. It returns
// ctx's error when ctx is done, an error coded group-not-found after it
// emitted GroupDeleted, and the connection's error when it is closed,
// expired or unreachable.
func (c *conn) WatchGroup(ctx context.Context, name string, emit func(driver.GroupEvent)) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	gr, ok := s.groups[name]
	if !ok {
		s.mu.Unlock()
		return groupNotFound(name)
	}
	w := &groupWatch{wake: make(chan struct{}, 1)}
	w.pushLocked(driver.GroupEvent{Type: driver.GroupSnapshot, Members: gr.snapshot()})
	gr.watchers[w] = struct{}{}
	changed, cuts, drops := c.changed, c.cuts, c.drops
	expiry, stop := c.expiryTimerLocked()
	s.mu.Unlock()
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
		case <-changed:
		case <-expiry:
		}
		stop()
		s.mu.Lock()
		if err := c.watchCheckLocked(ctx, cuts, drops); err != nil {
			delete(gr.watchers, w)
			s.mu.Unlock()
			return err
		}
		evs, deleted := w.q, w.deleted
		w.q = nil
		changed = c.changed
		expiry, stop = c.expiryTimerLocked()
		s.mu.Unlock()
		for _, ev := range evs {
			emit(ev)
		}
		if deleted {
			stop()
			return driver.Errorf(driver.CodeGroupNotFound, "group %q deleted", name)
		}
	}
}

// WatchHolder emits key's holder, then every new holder, from the calling
// goroutine. It returns ctx's error when ctx is done and the connection's
// error when it is closed, expired or unreachable.
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(h driver.Holder, held bool)) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	s := c.s
	ls := s.lockLocked(key)
	w := &holderWatch{wake: make(chan struct{}, 1)}
	h, held := ls.holder()
	w.pushLocked(holderEvent{h: h, held: held})
	if ls.watchers == nil {
		ls.watchers = map[*holderWatch]struct{}{}
	}
	ls.watchers[w] = struct{}{}
	changed, cuts, drops := c.changed, c.cuts, c.drops
	expiry, stop := c.expiryTimerLocked()
	s.mu.Unlock()
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
		case <-changed:
		case <-expiry:
		}
		stop()
		s.mu.Lock()
		if err := c.watchCheckLocked(ctx, cuts, drops); err != nil {
			delete(ls.watchers, w)
			s.settleLocked(key, ls)
			s.mu.Unlock()
			return err
		}
		evs := w.q
		w.q = nil
		changed = c.changed
		expiry, stop = c.expiryTimerLocked()
		s.mu.Unlock()
		for _, ev := range evs {
			emit(ev.h, ev.held)
		}
	}
}

// watchCheckLocked is checkLocked for watches, which also end when
// DropWatches hit the connection since they started (drops was c.drops
// then).
func (c *conn) watchCheckLocked(ctx context.Context, cuts, drops uint64) error {
	if err := c.checkLocked(ctx, cuts); err != nil {
		return err
	}
	if c.drops != drops {
		return driver.Wrap(driver.CodeUnavailable, fmt.Errorf("%w: watch dropped", ErrInjected))
	}
	return nil
}

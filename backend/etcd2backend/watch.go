package etcd2backend

import (
	"context"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// follow long-polls key (recursive: everything under it) for each event
// after store index idx, in index order, calling apply, until apply
// returns true (follow returns nil) or ctx ends (ctx's error). A broken
// long-poll (an endpoint down, a cut connection) is sent again, to the
// next endpoint, with the same waitIndex, so no event is lost or
// repeated. Only when the store's event history (the last 1000 events of
// the whole store) no longer reaches back to idx, or the watcher was
// cleared by a store recovery, does follow call resync, which reads the
// state again and returns the index to continue from (stop=true ends
// follow).
func (c *conn) follow(ctx context.Context, key string, recursive bool, idx uint64,
	apply func(ev *response) (stop bool),
	resync func(ctx context.Context) (idx uint64, stop bool, err error),
) error {
	b := c.newBackoff()
	for {
		ev, err := c.cl.wait(ctx, key, idx+1, recursive)
		switch {
		case err == nil:
			b.reset()
			if apply(ev) {
				return nil
			}
			idx = ev.Node.ModifiedIndex
		case ctx.Err() != nil:
			return ctx.Err()
		case isCode(err, ecodeEventCleared, ecodeWatcherCleared):
			c.log.Debug("watch history cleared; resynchronising", zap.String("key", key), zap.Uint64("index", idx), zap.Error(err))
			next, stop, rerr := resync(ctx)
			if rerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.log.Debug("resync failed", zap.String("key", key), zap.Error(rerr))
				if !b.wait(ctx) {
					return ctx.Err()
				}
				continue
			}
			if stop {
				return nil
			}
			idx = next
		default:
			c.log.Debug("long-poll interrupted; resuming", zap.String("key", key), zap.Uint64("index", idx), zap.Error(err))
			if !b.wait(ctx) {
				return ctx.Err()
			}
		}
	}
}

// groupState reads a group's members and the store index of the read.
func (c *conn) groupState(ctx context.Context, group string) ([]driver.Member, bool, uint64, error) {
	resp, err := c.cl.get(ctx, c.keys.group(group), quorum)
	if isCode(err, ecodeKeyNotFound) {
		return nil, false, errIndex(err), nil
	}
	if err != nil {
		return nil, false, 0, err
	}
	var ms []driver.Member
	for _, n := range resp.Node.Nodes {
		if m, ok := decodeMember(n); ok {
			ms = append(ms, m)
		}
	}
	return ms, true, resp.Index, nil
}

// WatchGroup pushes group's changes: a snapshot, then one event per
// change of a member key, in store order, from a recursive long-poll of
// the group's directory, and GroupDeleted when the directory goes.
// After the store's history was cleared it emits a fresh snapshot.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	op := fmt.Sprintf("watch group %q", group)
	ms, exists, idx, err := c.groupState(ctx, group)
	if err != nil {
		return classify(ctx, op, err)
	}
	if !exists {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
	gk := c.keys.group(group)
	deleted := false
	apply := func(ev *response) bool {
		n := ev.Node
		if n.Key == gk {
			switch ev.Action {
			case "delete", "expire", "compareAndDelete":
				deleted = true
				emit(driver.GroupEvent{Type: driver.GroupDeleted})
				return true
			}
			return false
		}
		if len(n.Key) <= len(gk)+1 || n.Key[:len(gk)+1] != gk+"/" {
			return false
		}
		switch ev.Action {
		case "delete", "expire", "compareAndDelete":
			id, ok := lastSegment(n.Key)
			if !ok {
				return false
			}
			emit(driver.GroupEvent{Type: driver.MemberLeft, Member: driver.Member{ID: id, Incarnation: strconv.FormatUint(n.CreatedIndex, 10)}})
		case "create":
			if m, ok := decodeMember(n); ok {
				emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
			}
		case "set":
			m, ok := decodeMember(n)
			switch {
			case !ok:
			case ev.PrevNode != nil && ev.PrevNode.CreatedIndex == n.CreatedIndex:
				emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
			default:
				emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
			}
		default: // update, compareAndSwap
			if m, ok := decodeMember(n); ok {
				emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
			}
		}
		return false
	}
	resync := func(ctx context.Context) (uint64, bool, error) {
		ms, exists, idx, err := c.groupState(ctx, group)
		if err != nil {
			return 0, false, err
		}
		if !exists {
			deleted = true
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return idx, true, nil
		}
		emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
		return idx, false, nil
	}
	err = c.follow(ctx, gk, true, idx, apply, resync)
	if deleted {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: group deleted", op)
	}
	return classify(ctx, op, err)
}

// WatchHolder pushes the holder of key: the current one first, then
// after each change of the lock key (long-poll; refreshes wake nobody).
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(driver.Holder, bool)) error {
	op := fmt.Sprintf("watch holder of %q", key)
	lk := c.keys.lock(key)
	var last *driver.Holder
	report := func(h driver.Holder, held bool) {
		switch {
		case !held && last != nil:
			last = nil
			emit(driver.Holder{}, false)
		case held && (last == nil || *last != h):
			last = &h
			emit(h, true)
		}
	}
	load := func(ctx context.Context) (uint64, error) {
		resp, err := c.cl.get(ctx, lk, quorum)
		if isCode(err, ecodeKeyNotFound) {
			report(driver.Holder{}, false)
			return errIndex(err), nil
		}
		if err != nil {
			return 0, err
		}
		h, held, err := c.decodeHolder(ctx, key, resp.Node)
		if err != nil {
			return 0, err
		}
		report(h, held)
		return resp.Index, nil
	}
	idx, err := load(ctx)
	if err != nil {
		return classify(ctx, op, err)
	}
	if last == nil {
		emit(driver.Holder{}, false) // the first call always reports
	}
	apply := func(ev *response) bool {
		switch ev.Action {
		case "delete", "expire", "compareAndDelete":
			report(driver.Holder{}, false)
			return false
		}
		if h, ok := c.holderOf(ev.Node); ok {
			report(h, true)
			return false
		}
		if isMarker(ev.Node.Value) {
			if h, held, err := c.decodeHolder(ctx, key, ev.Node); err == nil {
				report(h, held)
			}
		}
		return false
	}
	resync := func(ctx context.Context) (uint64, bool, error) {
		idx, err := load(ctx)
		return idx, false, err
	}
	return classify(ctx, op, c.follow(ctx, lk, false, idx, apply, resync))
}

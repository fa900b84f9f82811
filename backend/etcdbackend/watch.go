package etcdbackend

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// follow streams the changes under prefix after revision rev, in revision
// order, to apply, until apply returns true, ctx is done (ctx's error), or
// resync fails for good. A broken watch (a restarted server, a member that
// lost its leader) is re-established from the last revision seen, so no
// event is lost or repeated; only when etcd compacted that revision away
// does follow call resync, which re-reads the state and returns the
// revision to continue from (stop=true ends follow with a nil error).
// Watches require a leader, so a member cut off from its cluster fails
// the watch instead of serving a stale one.
func (c *conn) follow(ctx context.Context, prefix string, rev int64,
	apply func(evs []*clientv3.Event) (stop bool),
	resync func(ctx context.Context) (rev int64, stop bool, err error),
) error {
	b := newBackoff()
	for {
		next, stop, err := c.watchOnce(ctx, prefix, rev, apply, b)
		rev = next
		switch {
		case stop:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case isCompacted(err):
			c.log.Debug("watch compacted; resynchronising", zap.String("prefix", prefix), zap.Int64("rev", rev))
			r, stop, rerr := resync(ctx)
			if rerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// rev stays: the next watch fails again and resyncs again.
				c.log.Debug("resync failed", zap.String("prefix", prefix), zap.Error(rerr))
				if !b.wait(ctx) {
					return ctx.Err()
				}
				continue
			}
			if stop {
				return nil
			}
			rev = r
			b.reset()
		default:
			c.log.Debug("watch interrupted; resuming", zap.String("prefix", prefix), zap.Int64("rev", rev), zap.Error(err))
			if !b.wait(ctx) {
				return ctx.Err()
			}
		}
	}
}

// watchOnce runs one watch from rev+1 and returns the last revision it
// delivered.
func (c *conn) watchOnce(ctx context.Context, prefix string, rev int64,
	apply func([]*clientv3.Event) bool, b *backoff,
) (int64, bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return rev, false, err
		}
		if len(wr.Events) > 0 {
			b.reset()
			if apply(wr.Events) {
				return rev, true, nil
			}
			rev = max(rev, wr.Events[len(wr.Events)-1].Kv.ModRevision)
		} else if wr.IsProgressNotify() {
			rev = max(rev, wr.Header.Revision)
		}
	}
	if ctx.Err() != nil {
		return rev, false, ctx.Err()
	}
	return rev, false, errors.New("watch closed")
}

// WatchGroup pushes group's changes: a snapshot first, then one event per
// member key change in revision order, and GroupDeleted when the group
// record goes. After compaction it emits a fresh snapshot (the backend
// reports a resync). CodeGroupNotFound when the group does not exist.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	op := fmt.Sprintf("watch group %q", group)
	ms, exists, rev, err := c.members(ctx, op, group)
	if err != nil {
		return err
	}
	if !exists {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: no such group", op)
	}
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
	return c.followGroup(ctx, group, rev, emit)
}

// followGroup emits group's changes after revision rev (see WatchGroup).
func (c *conn) followGroup(ctx context.Context, group string, rev int64, emit func(driver.GroupEvent)) error {
	op := fmt.Sprintf("watch group %q", group)
	gk := c.keys.Group(group)
	deleted := false
	apply := func(evs []*clientv3.Event) bool {
		for _, ev := range evs {
			key := string(ev.Kv.Key)
			if key == gk {
				if ev.Type == mvccpb.DELETE {
					deleted = true
					emit(driver.GroupEvent{Type: driver.GroupDeleted})
					return true
				}
				continue
			}
			switch {
			case ev.Type == mvccpb.DELETE:
				id, ok := c.keys.MemberOf(group, key)
				if !ok {
					continue
				}
				m := driver.Member{ID: id}
				if ev.PrevKv != nil {
					m.Incarnation = strconv.FormatInt(ev.PrevKv.CreateRevision, 10)
				}
				emit(driver.GroupEvent{Type: driver.MemberLeft, Member: m})
			case ev.IsCreate():
				if m, ok := c.decodeMember(group, ev.Kv); ok {
					emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
				}
			default:
				if m, ok := c.decodeMember(group, ev.Kv); ok {
					emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
				}
			}
		}
		return false
	}
	resync := func(ctx context.Context) (int64, bool, error) {
		ms, exists, rev, err := c.members(ctx, op, group)
		if err != nil {
			return 0, false, err
		}
		if !exists {
			deleted = true
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return rev, true, nil
		}
		emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
		return rev, false, nil
	}
	err := c.follow(ctx, gk, rev, apply, resync)
	if deleted {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: group deleted", op)
	}
	return classify(ctx, nil, op, err)
}

// WatchHolder pushes the holder of key: the current one first, then each
// change, computed from a local image of the lock's entries kept up to
// date by a prefix watch (no read per change).
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(driver.Holder, bool)) error {
	op := fmt.Sprintf("watch holder of %q", key)
	pfx := c.keys.LockPrefix(key)
	im := etcdproto.NewHolderImage(emit)
	load := func(ctx context.Context) (int64, error) {
		resp, err := c.get(ctx, op, pfx, clientv3.WithPrefix())
		if err != nil {
			return 0, err
		}
		im.Clear()
		for _, kv := range resp.Kvs {
			im.Put(string(kv.Key), string(kv.Value), kv.CreateRevision)
		}
		return resp.Header.Revision, nil
	}
	rev, err := load(ctx)
	if err != nil {
		return err
	}
	im.Report(true)
	apply := func(evs []*clientv3.Event) bool {
		for _, ev := range evs {
			if ev.Type == mvccpb.DELETE {
				im.Delete(string(ev.Kv.Key))
				continue
			}
			im.Put(string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.CreateRevision)
		}
		im.Report(false)
		return false
	}
	resync := func(ctx context.Context) (int64, bool, error) {
		rev, err := load(ctx)
		if err != nil {
			return 0, false, err
		}
		im.Report(false)
		return rev, false, nil
	}
	return classify(ctx, nil, op, c.follow(ctx, pfx, rev, apply, resync))
}

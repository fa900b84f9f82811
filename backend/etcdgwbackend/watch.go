package etcdgwbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
	"github.com/baton-go/baton/internal/etcdproto"
)

// requireLeader asks the member serving a watch to cancel it when it has
// no leader (clientv3.WithRequireLeader, as gRPC metadata through the
// gateway), so a watcher cut off on a minority member reconnects elsewhere
// instead of waiting on a stream that cannot deliver.
var requireLeader = http.Header{"Grpc-Metadata-Hasleader": {"true"}}

// follow streams the changes of key (of every key under it when prefix is
// set) after revision rev, in revision order, to apply, until apply
// returns true, ctx is done (ctx's error), or resync fails for good. A
// broken stream (a restarted or killed member, a cut connection, a member
// that lost its leader) is re-established, on the next endpoint, from the
// last revision seen, so no event is lost or repeated; only when etcd
// compacted that revision away does follow call resync, which re-reads
// the state and returns the revision to continue from (stop=true ends
// follow with a nil error).
func (c *conn) follow(ctx context.Context, key string, prefix bool, rev int64,
	apply func(evs []*event) (stop bool),
	resync func(ctx context.Context) (rev int64, stop bool, err error),
) error {
	b := c.newBackoff()
	create := watchCreateRequest{Key: []byte(key), PrevKV: true}
	if prefix {
		create.RangeEnd = prefixEnd(key)
	}
	for {
		next, stop, err := c.watchOnce(ctx, create, rev, apply, b)
		rev = next
		switch {
		case stop:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errCompacted):
			c.log.Debug("watch compacted; resynchronising", zap.String("key", key), zap.Int64("rev", rev))
			r, stop, rerr := resync(ctx)
			if rerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// rev stays: the next watch fails again and resyncs again.
				c.log.Debug("resync failed", zap.String("key", key), zap.Error(rerr))
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
			c.log.Debug("watch interrupted; resuming", zap.String("key", key), zap.Int64("rev", rev), zap.Error(err))
			if !b.wait(ctx) {
				return ctx.Err()
			}
		}
	}
}

// watchOnce runs one watch stream from rev+1 and returns the last
// revision it delivered.
func (c *conn) watchOnce(ctx context.Context, create watchCreateRequest, rev int64,
	apply func([]*event) bool, b *backoff,
) (int64, bool, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	create.StartRevision = rev + 1
	// The stream must open within an attempt: a silent endpoint would
	// hold it forever.
	opening := time.AfterFunc(c.probeLimit(), cancel)
	body, ep, err := c.cli.openStream(wctx, "watch", watchRequest{Create: create}, requireLeader)
	if !opening.Stop() && err == nil {
		body.Close()
		err = errors.New("the watch stream did not open in time")
	}
	if err != nil {
		c.cli.advance(ep)
		if ctx.Err() != nil {
			return rev, false, ctx.Err()
		}
		return rev, false, err
	}
	defer body.Close()
	var heard atomic.Bool // a message arrived since the watchdog's last look
	var stalled atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if c.watchdog(wctx, ep, &heard) {
			stalled.Store(true)
			cancel()
		}
	}()
	defer wg.Wait()
	defer cancel()
	dec := json.NewDecoder(body)
	for {
		var msg streamMessage[watchResponse]
		if err := dec.Decode(&msg); err != nil {
			if ctx.Err() != nil {
				return rev, false, ctx.Err()
			}
			c.cli.advance(ep)
			if stalled.Load() {
				return rev, false, fmt.Errorf("watch stream stalled: %s does not answer", c.cli.endpoints[ep])
			}
			return rev, false, fmt.Errorf("watch stream ended: %w", err)
		}
		heard.Store(true)
		if msg.Error != nil {
			c.cli.advance(ep)
			return rev, false, &Error{Code: msg.Error.GRPCCode, Message: msg.Error.Message}
		}
		wr := msg.Result
		switch {
		case wr == nil:
			continue
		case wr.CompactRevision > 0:
			return rev, false, fmt.Errorf("%w (revision %d)", errCompacted, wr.CompactRevision)
		case wr.Canceled:
			c.cli.advance(ep)
			return rev, false, fmt.Errorf("watch canceled by the server: %s", wr.CancelReason)
		case len(wr.Events) > 0:
			b.reset()
			if apply(wr.Events) {
				return rev, true, nil
			}
			rev = max(rev, wr.Events[len(wr.Events)-1].Kv.ModRevision)
		case !wr.Created:
			// A progress notification: every change up to its revision
			// was delivered.
			rev = max(rev, wr.Header.Revision)
		}
	}
}

// probeLimit is how long an endpoint may take to answer a probe or to
// open a watch stream: the attempt timeout, or with a single endpoint the
// smaller of the request timeout and a third of the TTL.
func (c *conn) probeLimit() time.Duration {
	if c.cli.attempt > 0 {
		return c.cli.attempt
	}
	if c.ttl > 0 {
		return min(c.timeout, c.ttl/3)
	}
	return c.timeout
}

// watchdog looks after a watch stream on endpoint ep until ctx ends: when
// nothing arrived on it for a probe interval, it asks the same endpoint a
// one-key count; no answer within the attempt timeout means the stream
// sits on a connection nobody serves (a partition, a black hole, a frozen
// member), and it returns true so that the stream is cut and resumed
// elsewhere. An idle but healthy stream costs one small read per interval.
func (c *conn) watchdog(ctx context.Context, ep int, heard *atomic.Bool) bool {
	every := c.ttl / 3
	if every <= 0 {
		every = c.timeout
	}
	limit := c.probeLimit()
	probe := &rangeRequest{Key: []byte(c.keys.Session(c.lease)), CountOnly: true}
	body, _ := json.Marshal(probe)
	for {
		t := c.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C():
		}
		if heard.Swap(false) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, limit)
		err := c.cli.post(pctx, c.cli.endpoints[ep], "kv/range", body, nil, nil)
		stalled := err != nil && pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if stalled {
			return true
		}
	}
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
	apply := func(evs []*event) bool {
		for _, ev := range evs {
			key := string(ev.Kv.Key)
			if key == gk {
				if ev.isDelete() {
					deleted = true
					emit(driver.GroupEvent{Type: driver.GroupDeleted})
					return true
				}
				continue
			}
			switch {
			case ev.isDelete():
				id, ok := c.keys.MemberOf(group, key)
				if !ok {
					continue
				}
				m := driver.Member{ID: id}
				if ev.PrevKv != nil {
					m.Incarnation = strconv.FormatInt(ev.PrevKv.CreateRevision, 10)
				}
				emit(driver.GroupEvent{Type: driver.MemberLeft, Member: m})
			case ev.isCreate():
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
	err := c.follow(ctx, gk, true, rev, apply, resync)
	if deleted {
		return driver.Errorf(driver.CodeGroupNotFound, "%s: group deleted", op)
	}
	return classify(ctx, nil, op, err)
}

// WatchHolder pushes the holder of key: the current one first, then each
// change, computed from a local image of the lock's entries kept up to
// date by a prefix watch (no read per change).
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(driver.Holder, bool)) error {
	if k, ok := c.keys.toozLock(key); ok {
		return c.toozWatchHolder(ctx, key, k, emit)
	}
	op := fmt.Sprintf("watch holder of %q", key)
	pfx := c.keys.LockPrefix(key)
	im := etcdproto.NewHolderImage(emit)
	load := func(ctx context.Context) (int64, error) {
		resp, err := c.rng(ctx, op, &rangeRequest{Key: []byte(pfx), RangeEnd: prefixEnd(pfx)})
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
	apply := func(evs []*event) bool {
		for _, ev := range evs {
			if ev.isDelete() {
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
	return classify(ctx, nil, op, c.follow(ctx, pfx, true, rev, apply, resync))
}

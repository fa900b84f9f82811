package redisbackend

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// expirySlack is added to a key's remaining TTL before looking at it
// again, so that the key has expired by then.
const expirySlack = 2 * time.Millisecond

// deletionGrace is how long a watcher that found its group deleted waits
// for the deletion message, reporting the changes published before it.
const deletionGrace = time.Second

// timer is a resettable one-shot timer whose channel is nil while unset.
type timer struct{ t *time.Timer }

func (t *timer) set(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(max(d, 0))
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
}

func (t *timer) C() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C
}

// WatchGroup pushes the group's changes: it listens to the group's channel
// and, once subscribed, emits a Snapshot (the members script's listing)
// and then every published change whose version follows the last one
// seen. A message skipping a version, a broken or re-established
// subscription, or an unreadable message leads to a fresh Snapshot.
//
// Expiry publishes nothing by itself in Redis, so the watcher looks at the
// group again when the earliest liveness key among its members runs out
// (and after every join): the members script prunes the expired members
// and publishes their departure, which every watcher of the group then
// receives. It returns nil after emitting GroupDeleted, ctx's error when
// ctx ends, and any other error when the watch cannot go on (the backend
// restarts it).
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	l, err := c.listen(c.ks.groupChannel(group))
	if err != nil {
		return err
	}
	defer l.close()
	var (
		ready, synced, resync, started bool
		version                        int64
		prune, gone                    timer
	)
	defer prune.stop()
	defer gone.stop()
	for {
		doPrune := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.C():
		case <-prune.C():
			prune.t = nil
			doPrune = true
		case <-gone.C():
			// The group's deletion message never came.
			emit(driver.GroupEvent{Type: driver.GroupDeleted})
			return nil
		}
		for _, ev := range l.drain() {
			switch ev.kind {
			case evGap:
				ready, synced = false, false
			case evReady:
				ready, resync = true, true
			case evMessage:
				if !synced || resync {
					continue
				}
				ge, err := parseGroupMessage(ev.payload)
				switch {
				case err != nil:
					c.log.Warn("unreadable group message; listing the group again", zap.String("group", group), zap.Error(err))
					resync = true
					continue
				case ge.version <= version:
					continue
				case ge.version > version+1:
					resync = true
					continue
				}
				version = ge.version
				switch ge.kind {
				case 'J':
					emit(driver.GroupEvent{Type: driver.MemberJoined, Member: ge.member})
					doPrune = true
				case 'U':
					emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: ge.member})
				case 'L':
					emit(driver.GroupEvent{Type: driver.MemberLeft, Member: ge.member})
				case 'D':
					emit(driver.GroupEvent{Type: driver.GroupDeleted})
					return nil
				}
			}
		}
		switch {
		case resync && ready:
			lst, err := c.listMembers(ctx, group, true)
			if err != nil {
				return c.watchEnd(ctx, err, started, emit)
			}
			emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: lst.members})
			version, synced, resync, started = lst.version, true, false, true
			c.schedulePrune(&prune, lst.minTTL)
		case doPrune && started && gone.t == nil:
			lst, err := c.listMembers(ctx, group, false)
			if code, _ := driver.CodeOf(err); code == driver.CodeGroupNotFound {
				if !synced {
					return c.watchEnd(ctx, err, started, emit)
				}
				// The changes before the deletion may still be on their
				// way: report them first, up to the deletion message.
				gone.set(deletionGrace)
				continue
			}
			if err != nil {
				c.log.Debug("pruning a watched group failed; trying again", zap.String("group", group), zap.Error(err))
				prune.set(time.Second)
				continue
			}
			c.schedulePrune(&prune, lst.minTTL)
		}
	}
}

func (c *conn) schedulePrune(t *timer, minTTL time.Duration) {
	if minTTL < 0 {
		t.stop()
		return
	}
	t.set(minTTL + expirySlack)
}

// watchEnd turns a failed listing into the end of a group watch: the
// group's deletion is an event once the watch ran.
func (c *conn) watchEnd(ctx context.Context, err error, started bool, emit func(driver.GroupEvent)) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if code, _ := driver.CodeOf(err); code == driver.CodeGroupNotFound && started {
		emit(driver.GroupEvent{Type: driver.GroupDeleted})
		return nil
	}
	return err
}

// WatchHolder pushes the holder of a lock: it listens to the lock's
// channel (acquire, release and break are published there), reads the
// holder once subscribed and after every message, and again when the
// holder's lease runs out (an expiry publishes nothing). It returns ctx's
// error when ctx ends, or the error of a failed read (the backend
// restarts it).
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(h driver.Holder, held bool)) error {
	l, err := c.listen(c.ks.lockChannel(key))
	if err != nil {
		return err
	}
	defer l.close()
	ready := false
	var expiry timer
	defer expiry.stop()
	for {
		read := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.C():
		case <-expiry.C():
			expiry.t = nil
			read = true
		}
		for _, ev := range l.drain() {
			switch ev.kind {
			case evGap:
				ready = false
			case evReady:
				ready, read = true, true
			case evMessage:
				read = read || ready
			}
		}
		if !read {
			continue
		}
		h, held, pttl, err := c.readHolder(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		emit(h, held)
		if held && pttl >= 0 {
			expiry.set(pttl + expirySlack)
		} else {
			expiry.stop()
		}
	}
}

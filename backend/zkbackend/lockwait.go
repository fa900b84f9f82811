package zkbackend

import (
	"context"
	"errors"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// WaitLock queues an exclusive request and waits, watching only the one
// or two requests just before it, until it is first or ctx ends (the
// request is then withdrawn, in the background if the connection is
// down). It returns CodeLost when the session ends meanwhile.
//
// A request created behind another one is pending: it holds the lock
// only once its owner, having found it first, confirms it by writing its
// data again (version 1, with a version check). A candidate killed while
// queued never confirms; its ephemeral node would stay until its session
// expires. The waiter behind it, having seen it queued behind an older
// request, deletes it (only while it is unconfirmed: a delete at version
// 0) once it has been first for the handover window, so that a
// resignation hands over past a dead candidate within the window plus a
// round trip instead of a session timeout. A live candidate too slow to
// confirm within the window loses its place and queues again at the
// back; exclusion never depends on the window.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	if req.Unordered && !c.s.tooz { // kazoo's election queues: tooz mode keeps its order
		return c.raceLock(ctx, req)
	}
	dir := c.lockPath(req.Key)
	var r request
	fail := func(err error) (driver.Lease, error) {
		if r.path != "" {
			c.withdraw(r.path)
		}
		if ctx.Err() != nil {
			return driver.Lease{}, c.classify(ctx.Err())
		}
		return driver.Lease{}, c.classify(err)
	}
	behind := map[string]bool{} // requests seen queued behind an older one
	var head string             // the pending first request being timed
	var headSince time.Time
	// headGone: the request just before this one, the first, was deleted:
	// this one is first now (requests only queue behind), so its
	// confirmation is sent along with the queue's read instead of after
	// it, saving a round trip of the handover.
	headGone := false
	for {
		sent := c.clock.Now()
		var early chan confirmed
		if headGone && r.path != "" {
			early = make(chan confirmed, 1)
			path := r.path
			go func() {
				ok, err := run(c, ctx, func() (bool, error) { return c.confirm(ctx, path, req.Member) }, nil, nil)
				early <- confirmed{ok, err}
			}()
		}
		headGone = false
		if r.path == "" {
			var err error
			r, err = run(c, ctx, func() (request, error) { return c.createRequest(ctx, dir, false, req.Member) },
				func(r request) { c.jan.remove(r.path) }, nil)
			if err != nil {
				return fail(err)
			}
			if r.alone {
				return c.granted(req.Key, r, sent, fail)
			}
		}
		type queue struct {
			q  []lockNode
			me int
		}
		qu, err := run(c, ctx, func() (queue, error) {
			q, me, err := c.inspect(ctx, dir, r.path)
			return queue{q: q, me: me}, err
		}, nil, nil)
		var conf *confirmed
		if early != nil {
			res := <-early
			conf = &res
		}
		if err != nil {
			return fail(err)
		}
		if qu.me < 0 {
			if err := c.check(); err != nil {
				return fail(err)
			}
			r = request{} // broken or skipped while queued: queue again
			continue
		}
		pred, blocked := blocker(qu.q, qu.me)
		if !blocked {
			var ok bool
			if conf != nil {
				ok, err = conf.ok, conf.err
			} else {
				sent = c.clock.Now()
				ok, err = run(c, ctx, func() (bool, error) { return c.confirm(ctx, r.path, req.Member) }, nil, nil)
			}
			if err != nil {
				return fail(err)
			}
			if !ok {
				if err := c.check(); err != nil {
					return fail(err)
				}
				r = request{} // skipped as a dead candidate: queue again
				continue
			}
			return c.granted(req.Key, r, sent, fail)
		}
		watch := []string{dir + "/" + pred.name}
		var deadline time.Time
		if qu.me >= 2 {
			behind[pred.name] = true
			watch = append(watch, dir+"/"+qu.q[qu.me-2].name)
			head = ""
		} else if behind[pred.name] && !pred.shared && !c.s.tooz { // kazoo never confirms
			st, err := run(c, ctx, func() (*zk.Stat, error) {
				var ok bool
				var st *zk.Stat
				t0 := time.Now()
				err := c.retry(ctx, func() (err error) { ok, st, err = c.zk.Exists(watch[0]); return err })
				if err == nil {
					c.rtt.Observe(time.Since(t0))
				}
				if err == nil && !ok {
					return nil, nil
				}
				return st, err
			}, nil, nil)
			if err != nil {
				return fail(err)
			}
			if st == nil {
				continue // gone already
			}
			if st.Version == 0 {
				// The first request is pending: its owner must confirm it.
				if head != pred.name {
					head, headSince = pred.name, c.clock.Now()
				}
				deadline = headSince.Add(c.handoverWindow())
				if !c.clock.Now().Before(deadline) {
					if err := c.deletePending(ctx, watch[0]); err != nil {
						return fail(err)
					}
					continue
				}
			}
		}
		chs, err := run(c, ctx, func() ([]<-chan zk.Event, error) {
			var chs []<-chan zk.Event
			for _, p := range watch {
				var exists bool
				var ch <-chan zk.Event
				err := c.retry(ctx, func() (err error) { exists, _, ch, err = c.zk.ExistsW(p); return err })
				if err != nil {
					return nil, err
				}
				if !exists {
					return nil, nil
				}
				chs = append(chs, ch)
			}
			return chs, nil
		}, nil, nil)
		if err != nil {
			return fail(err)
		}
		if chs == nil {
			continue // a watched request is gone already
		}
		var second <-chan zk.Event
		if len(chs) > 1 {
			second = chs[1]
		}
		var timeout <-chan time.Time
		var timer driver.Timer
		if !deadline.IsZero() {
			timer = c.clock.NewTimer(deadline.Sub(c.clock.Now()))
			timeout = timer.C()
		}
		select {
		case ev := <-chs[0]:
			headGone = qu.me == 1 && ev.Type == zk.EventNodeDeleted
		case <-second:
		case <-timeout:
		case <-ctx.Done():
			stopTimer(timer)
			return fail(ctx.Err())
		case <-c.sess.end():
			stopTimer(timer)
			return fail(c.sess.err())
		}
		stopTimer(timer)
	}
}

// raceLock takes the exclusive lock req.Key without queuing
// (req.Unordered, as Campaign asks): it tries as TryLock does (one multi
// when the lock is free; a request created behind another is withdrawn
// at once), and while the lock is held it watches the first request and
// tries again when that one goes. No request of this member stays on the
// server while it waits, so a candidate killed while waiting is no
// obstacle to the others, and a release hands over within one round trip
// of its notification (every live waiter tries; the first request
// created wins). A request left by a candidate killed in the middle of
// its own try (after creating it, before withdrawing it) is pending, as
// in WaitLock: once it is first and unconfirmed for the handover window,
// it is deleted.
func (c *conn) raceLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
	dir := c.lockPath(req.Key)
	behind := map[string]bool{} // requests seen queued behind an older one
	var head string             // the pending first request being timed
	var headSince time.Time
	for {
		sent := c.clock.Now()
		lease, ok, err := c.tryLock(ctx, req, false)
		if err != nil {
			return driver.Lease{}, err
		}
		if ok {
			lease.Sent = sent
			return lease, nil
		}
		type first struct {
			path    string // "" when the lock is free
			version int32
			ch      <-chan zk.Event
		}
		f, err := run(c, ctx, func() (first, error) {
			var names []string
			err := c.retry(ctx, func() (err error) { names, _, err = c.zk.Children(dir); return err })
			if errors.Is(err, zk.ErrNoNode) {
				return first{}, nil
			}
			if err != nil {
				return first{}, err
			}
			q := sortLockNodes(names)
			if len(q) == 0 {
				return first{}, nil
			}
			for _, n := range q[1:] {
				behind[n.name] = true
			}
			path := dir + "/" + q[0].name
			var exists bool
			var st *zk.Stat
			var ch <-chan zk.Event
			if err := c.retry(ctx, func() (err error) { exists, st, ch, err = c.zk.ExistsW(path); return err }); err != nil || !exists {
				return first{}, err
			}
			return first{path: path, version: st.Version, ch: ch}, nil
		}, nil, nil)
		if err != nil {
			if ctx.Err() != nil {
				return driver.Lease{}, c.classify(ctx.Err())
			}
			return driver.Lease{}, c.classify(err)
		}
		if f.path == "" {
			continue // free again: try
		}
		var timeout <-chan time.Time
		var timer driver.Timer
		if name := f.path[len(dir)+1:]; behind[name] && f.version == 0 {
			// A request created behind another one is first and
			// unconfirmed: a try cut short (a winning one confirms at
			// once, a losing one is withdrawn), most likely by its
			// owner's death.
			if head != name {
				head, headSince = name, c.clock.Now()
			}
			deadline := headSince.Add(c.handoverWindow())
			if !c.clock.Now().Before(deadline) {
				if err := c.deletePending(ctx, f.path); err != nil {
					return driver.Lease{}, c.classify(err)
				}
				continue
			}
			timer = c.clock.NewTimer(deadline.Sub(c.clock.Now()))
			timeout = timer.C()
		}
		select {
		case <-f.ch:
		case <-timeout:
		case <-ctx.Done():
			stopTimer(timer)
			return driver.Lease{}, c.classify(ctx.Err())
		case <-c.sess.end():
			stopTimer(timer)
			return driver.Lease{}, c.sess.err()
		}
		stopTimer(timer)
	}
}

// deletePending deletes the request at path, first and left unconfirmed
// for the handover window, as a dead candidate's: only while it is still
// unconfirmed (a delete at version 0), so a live owner that confirmed
// meanwhile keeps it.
func (c *conn) deletePending(ctx context.Context, path string) error {
	err := c.call(ctx, func() error {
		err := c.retry(ctx, func() error { return c.zk.Delete(path, 0) })
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
			return nil // gone, or confirmed meanwhile
		}
		return err
	})
	if err == nil {
		c.log.Debug("skipped a candidate's request left unconfirmed", zap.String("request", path))
	}
	return err
}

// confirmed is the outcome of a confirmation sent early.
type confirmed struct {
	ok  bool
	err error
}

// stopTimer stops t unless it is nil.
func stopTimer(t driver.Timer) {
	if t != nil {
		t.Stop()
	}
}

// confirm makes a request that found itself first hold the lock: it
// writes the request's data again at version 0, so that no waiter can
// delete it as a dead candidate's any more. It reports false when the
// request is gone (skipped, broken, or its session ended). Only the owner
// writes its request, so a version mismatch on a retry means an earlier
// attempt succeeded.
func (c *conn) confirm(ctx context.Context, path, member string) (bool, error) {
	if c.s.tooz {
		return true, nil // kazoo's recipe: first in sequence order holds
	}
	t0 := time.Now()
	err := c.retry(ctx, func() error { _, err := c.zk.Set(path, []byte(member), 0); return err })
	if err == nil {
		c.rtt.Observe(time.Since(t0))
	}
	switch {
	case err == nil, errors.Is(err, zk.ErrBadVersion):
		return true, nil
	case errors.Is(err, zk.ErrNoNode):
		return false, nil
	}
	return false, err
}

// handoverWindow is how long a pending request may be first without
// being confirmed before a waiter behind it deletes it as a dead
// candidate's: eight of this connection's round trips (queue reads and
// confirmations), at least 10 ms (internal/handover), and at most a
// thirtieth of the session TTL bounded to 50..250 ms, the window before
// round trips are known.
func (c *conn) handoverWindow() time.Duration {
	return c.rtt.Window(min(max(c.sess.sessionTTL()/30, 50*time.Millisecond), 250*time.Millisecond))
}

// withdraw deletes a lock request that will not be used, before
// returning when the server answers within a round trip or two (so that
// the request cannot be seen holding the lock once the caller gave up),
// else in the background.
func (c *conn) withdraw(path string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(c.sess.sessionTTL()/3, 2*time.Second))
	defer cancel()
	err := c.call(ctx, func() error {
		err := c.zk.Delete(path, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
	if err != nil {
		c.jan.remove(path)
	}
}

// granted records a grant of WaitLock.
func (c *conn) granted(key string, r request, sent time.Time, fail func(error) (driver.Lease, error)) (driver.Lease, error) {
	lease, _, err := c.grant(key, r.token, r.path)
	if err != nil {
		return fail(err)
	}
	lease.Sent = sent
	return lease, nil
}

// WatchHolder emits the lock's holder now and after every change, from
// a child watch on the key's directory (or an existence watch while the
// directory does not exist). After a reconnection it reads the holder
// again. It returns ctx's error when ctx ends and CodeLost when the
// session ends.
func (c *conn) WatchHolder(ctx context.Context, key string, emit func(h driver.Holder, held bool)) error {
	dir := c.lockPath(key)
	if err := c.call(ctx, func() error { return c.sync(ctx) }); err != nil {
		return c.classify(err)
	}
	failed := func(err error) error {
		if ctx.Err() != nil {
			return c.classify(ctx.Err())
		}
		return c.classify(err)
	}
	last, emitted := "", false
	for {
		if err := c.check(); err != nil {
			return err
		}
		gen := c.sess.generation()
		type listing struct {
			names []string // nil when the directory does not exist
			ch    <-chan zk.Event
		}
		l, err := run(c, ctx, func() (listing, error) {
			var l listing
			err := c.retry(ctx, func() error {
				for {
					var err error
					l.names, _, l.ch, err = c.zk.ChildrenW(dir)
					if !errors.Is(err, zk.ErrNoNode) {
						return err
					}
					l.names = nil
					var ok bool
					if ok, _, l.ch, err = c.zk.ExistsW(dir); err != nil || !ok {
						return err
					}
					// created meanwhile: list it
				}
			})
			return l, err
		}, nil, nil)
		if err != nil {
			return failed(err)
		}
		hs := holders(sortLockNodes(l.names))
		switch {
		case len(hs) == 0:
			if !emitted || last != "" {
				emit(driver.Holder{}, false)
			}
			last, emitted = "", true
		case !emitted || hs[0].name != last:
			h, err := run(c, ctx, func() (driver.Holder, error) {
				var data []byte
				var st *zk.Stat
				err := c.retry(ctx, func() (err error) { data, st, err = c.zk.Get(dir + "/" + hs[0].name); return err })
				if err != nil {
					return driver.Holder{}, err
				}
				return driver.Holder{Member: string(data), Token: uint64(st.Czxid)}, nil
			}, nil, nil)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				continue // released meanwhile; the watch has fired too
			case err != nil:
				return failed(err)
			}
			emit(h, true)
			last, emitted = hs[0].name, true
		}
		select {
		case <-l.ch:
		case <-gen:
		case <-ctx.Done():
			return c.classify(ctx.Err())
		case <-c.sess.end():
			return c.sess.err()
		}
	}
}

package zkbackend

import (
	"context"
	"errors"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// WaitLock queues an exclusive request and waits, watching only the
// request just before it, until it is first or ctx ends (the request is
// then withdrawn, in the background if the connection is down). It
// returns CodeLost when the session ends meanwhile.
func (c *conn) WaitLock(ctx context.Context, req driver.LockRequest) (driver.Lease, error) {
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
	for {
		sent := time.Now()
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
			sent = time.Now()
		}
		type queue struct {
			q  []lockNode
			me int
		}
		qu, err := run(c, ctx, func() (queue, error) {
			q, me, err := c.inspect(ctx, dir, r.path)
			return queue{q: q, me: me}, err
		}, nil, nil)
		if err != nil {
			return fail(err)
		}
		if qu.me < 0 {
			if err := c.check(); err != nil {
				return fail(err)
			}
			r = request{} // broken while queued: queue again
			continue
		}
		pred, blocked := blocker(qu.q, qu.me)
		if !blocked {
			return c.granted(req.Key, r, sent, fail)
		}
		ch, err := run(c, ctx, func() (<-chan zk.Event, error) {
			var exists bool
			var ch <-chan zk.Event
			err := c.retry(ctx, func() (err error) { exists, _, ch, err = c.zk.ExistsW(dir + "/" + pred.name); return err })
			if err == nil && !exists {
				return nil, nil
			}
			return ch, err
		}, nil, nil)
		if err != nil {
			return fail(err)
		}
		if ch == nil {
			continue // the predecessor is gone already
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-c.sess.end():
			return fail(c.sess.err())
		}
	}
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

package zkbackend

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/baton-go/baton/backend/driver"
)

// WatchGroup pushes the group's membership changes from ZooKeeper
// watches: a child watch on the group's znode (joins, leaves, deletion
// of the group) and a data watch on each member's znode (capability
// updates, and a leave and rejoin between two listings, which changes
// the znode's czxid and so the incarnation). The first event is a
// snapshot. When the connection resumes after a suspension, WatchGroup
// returns a CodeUnavailable error, so that the backend starts it again
// and reports a resync with a fresh snapshot. It returns ctx's error when
// ctx ends, nil after the group was deleted (the last event is then
// GroupDeleted), CodeLost when the session ends.
func (c *conn) WatchGroup(ctx context.Context, group string, emit func(driver.GroupEvent)) error {
	if err := c.check(); err != nil {
		return err
	}
	gen := c.sess.generation()
	wctx, cancel := context.WithCancel(ctx)
	w := &groupWatch{c: c, ctx: wctx, path: c.groupPath(group), group: group,
		events: make(chan zk.Event, 16), view: map[string]driver.Member{}}
	defer w.wg.Wait()
	defer cancel()
	err := w.run(gen, emit)
	if ctx.Err() != nil {
		return c.classify(ctx.Err())
	}
	return err
}

// groupWatch is the state of one WatchGroup call.
type groupWatch struct {
	c      *conn
	ctx    context.Context
	path   string
	group  string
	events chan zk.Event
	wg     sync.WaitGroup // forwarders of one-shot watch channels
	view   map[string]driver.Member
}

// forward sends the one event of a go-zookeeper watch channel to events,
// until the watch ends.
func (w *groupWatch) forward(ch <-chan zk.Event) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			select {
			case w.events <- ev:
			case <-w.ctx.Done():
			}
		case <-w.ctx.Done():
		}
	}()
}

func (w *groupWatch) run(gen <-chan struct{}, emit func(driver.GroupEvent)) error {
	if err := w.c.call(w.ctx, func() error { return w.c.sync(w.ctx) }); err != nil {
		return w.c.classify(err)
	}
	names, exists, err := w.list()
	if err != nil {
		return err
	}
	if !exists {
		return driver.Errorf(driver.CodeGroupNotFound, "group %q does not exist", w.group)
	}
	ms := make([]driver.Member, 0, len(names))
	for _, name := range names {
		m, ok, err := w.read(name)
		if err != nil {
			return err
		}
		if ok {
			w.view[name] = m
			ms = append(ms, m)
		}
	}
	emit(driver.GroupEvent{Type: driver.GroupSnapshot, Members: ms})
	for {
		var ev zk.Event
		select {
		case <-w.ctx.Done():
			return w.ctx.Err()
		case <-gen:
			return driver.Errorf(driver.CodeUnavailable, "reconnected to ZooKeeper; listing group %q again", w.group)
		case <-w.c.sess.end():
			return w.c.sess.err()
		case ev = <-w.events:
		}
		switch {
		case ev.Type == zk.EventNotWatching:
			return driver.Errorf(driver.CodeUnavailable, "watch on group %q dropped: %v", w.group, ev.Err)
		case ev.Path == w.path && ev.Type == zk.EventNodeDeleted:
			w.deleted(emit)
			return nil
		case ev.Path == w.path:
			names, exists, err := w.list()
			if err != nil {
				return err
			}
			if !exists {
				w.deleted(emit)
				return nil
			}
			if err := w.diff(names, emit); err != nil {
				return err
			}
		case strings.HasPrefix(ev.Path, w.path+"/"):
			if err := w.member(ev.Path[len(w.path)+1:], emit); err != nil {
				return err
			}
		}
	}
}

// list reads the member names and sets the child watch.
func (w *groupWatch) list() ([]string, bool, error) {
	type listing struct {
		names []string
		ch    <-chan zk.Event
	}
	l, err := run(w.c, w.ctx, func() (l listing, err error) {
		err = w.c.retry(w.ctx, func() (err error) { l.names, _, l.ch, err = w.c.zk.ChildrenW(w.path); return err })
		return l, err
	}, nil, nil)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, w.c.classify(err)
	}
	w.forward(l.ch)
	return l.names, true, nil
}

// read reads one member and sets a data watch on it; ok is false when it
// is gone or its name is not baton's encoding.
func (w *groupWatch) read(name string) (driver.Member, bool, error) {
	id, valid := w.c.decodeName(name)
	if !valid {
		return driver.Member{}, false, nil
	}
	type reading struct {
		data []byte
		st   *zk.Stat
		ch   <-chan zk.Event
	}
	r, err := run(w.c, w.ctx, func() (r reading, err error) {
		err = w.c.retry(w.ctx, func() (err error) { r.data, r.st, r.ch, err = w.c.zk.GetW(w.path + "/" + name); return err })
		return r, err
	}, nil, nil)
	if errors.Is(err, zk.ErrNoNode) {
		return driver.Member{}, false, nil
	}
	if err != nil {
		return driver.Member{}, false, w.c.classify(err)
	}
	w.forward(r.ch)
	return w.c.memberOf(id, r.data, r.st), true, nil
}

// diff compares a new listing with the view: departures first, then
// arrivals (read with their data watches).
func (w *groupWatch) diff(names []string, emit func(driver.GroupEvent)) error {
	now := make(map[string]bool, len(names))
	for _, n := range names {
		now[n] = true
	}
	for name, m := range w.view {
		if !now[name] {
			delete(w.view, name)
			emit(driver.GroupEvent{Type: driver.MemberLeft, Member: m})
		}
	}
	for _, name := range names {
		if _, ok := w.view[name]; ok {
			continue
		}
		m, ok, err := w.read(name)
		if err != nil {
			return err
		}
		if ok {
			w.view[name] = m
			emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
		}
	}
	return nil
}

// member handles a data watch event of one member: its capabilities
// changed, or its znode was deleted (and maybe created again by a
// rejoin, which has a new incarnation).
func (w *groupWatch) member(name string, emit func(driver.GroupEvent)) error {
	m, ok, err := w.read(name)
	if err != nil {
		return err
	}
	old, had := w.view[name]
	switch {
	case !ok && had:
		delete(w.view, name)
		emit(driver.GroupEvent{Type: driver.MemberLeft, Member: old})
	case !ok:
	case had && old.Incarnation == m.Incarnation:
		w.view[name] = m
		emit(driver.GroupEvent{Type: driver.MemberUpdated, Member: m})
	case had:
		w.view[name] = m
		emit(driver.GroupEvent{Type: driver.MemberLeft, Member: old})
		emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
	default:
		w.view[name] = m
		emit(driver.GroupEvent{Type: driver.MemberJoined, Member: m})
	}
	return nil
}

// deleted reports the group's deletion, after the departure of whoever
// was still in the view.
func (w *groupWatch) deleted(emit func(driver.GroupEvent)) {
	for name, m := range w.view {
		delete(w.view, name)
		emit(driver.GroupEvent{Type: driver.MemberLeft, Member: m})
	}
	emit(driver.GroupEvent{Type: driver.GroupDeleted})
}

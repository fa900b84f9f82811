package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// EventType says what a membership Event reports.
type EventType int

// The kinds of Event.
const (
	// EventJoined: Member joined the group (a new incarnation).
	EventJoined EventType = iota + 1
	// EventLeft: Member left, was removed, or its liveness expired.
	EventLeft
	// EventCapabilitiesChanged: Member updated its capabilities.
	EventCapabilitiesChanged
	// EventGroupDeleted: the group is gone; the watch ends after it.
	EventGroupDeleted
	// EventResync: the watch had a gap (a reconnect, a failed poll) and
	// re-listed the group; the events just before it are the difference,
	// and Members holds the complete list.
	EventResync
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventJoined:
		return "joined"
	case EventLeft:
		return "left"
	case EventCapabilitiesChanged:
		return "capabilities-changed"
	case EventGroupDeleted:
		return "group-deleted"
	case EventResync:
		return "resync"
	}
	return "unknown"
}

// Event is one change of a watched group.
type Event struct {
	Type  EventType
	Group string
	// Member is the member concerned (joined, left, changed).
	Member Member
	// Members is the complete member list, on EventResync.
	Members []Member
}

// GroupWatch is an ordered stream of a group's membership changes. Events
// are delivered in order and once; none is dropped, so the consumer must
// keep reading Events until it is closed. Safe for concurrent use.
type GroupWatch struct {
	group   string
	initial []Member
	ch      chan Event
	cancel  context.CancelCauseFunc
	done    chan struct{}

	// Push watches: ready is closed at the first snapshot (or when the
	// watch could not start: startErr); started is owned by the source.
	ready    chan struct{}
	started  bool
	startErr error

	mu     sync.Mutex
	err    error
	srcErr error
	view   map[string]Member
	q      []Event
	wake   chan struct{}
}

// Events returns the stream. It is closed when the watch ends: after
// Close, when the watch's context ends, when the group is deleted, or when
// the Backend ends. Err then says why.
func (w *GroupWatch) Events() <-chan Event { return w.ch }

// Done is closed when the watch has ended and its goroutine exited; Err
// then says why.
func (w *GroupWatch) Done() <-chan struct{} { return w.done }

// Initial returns the members the group had when the watch started;
// events report changes from there.
func (w *GroupWatch) Initial() []Member { return append([]Member(nil), w.initial...) }

// Err returns why the stream ended: an error matching ErrCanceled after
// Close or cancellation, ErrGroupNotFound after the group was deleted,
// ErrLost or ErrClosed when the Backend ended. Nil while running.
func (w *GroupWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the watch and waits for its goroutine to exit.
func (w *GroupWatch) Close() {
	w.cancel(newError(driver.CodeCanceled, "watch "+w.group, errors.New("closed")))
	<-w.done
}

// WatchGroup starts watching group. It lists the group first (so
// ErrGroupNotFound is returned at once) and then reports changes, pushed
// where the driver can push, otherwise by polling every PollInterval and
// diffing listings by member incarnation, so a member that left and
// rejoined between two polls is still reported as left, then joined.
// The watch runs until ctx is done, Close is called, the group is deleted
// or the Backend ends.
func (b *Backend) WatchGroup(ctx context.Context, group string) (*GroupWatch, error) {
	_, push := b.conn.(driver.GroupWatcher)
	var initial []Member
	if push {
		// The driver's first snapshot is the starting point: nothing that
		// happens between a listing and the subscription can be lost.
		if err := b.pre("group ID", group); err != nil {
			return nil, err
		}
	} else {
		var err error
		if initial, err = b.Members(ctx, group); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithCancelCause(ctx)
	stopB := context.AfterFunc(b.ctx, func() { cancel(context.Cause(b.ctx)) })
	done, err := b.startWatch(cancel)
	if err != nil {
		stopB()
		cancel(err)
		return nil, err
	}
	w := &GroupWatch{
		group: group, initial: initial, ch: make(chan Event), cancel: cancel,
		done: make(chan struct{}), view: map[string]Member{}, wake: make(chan struct{}, 1),
	}
	for _, m := range initial {
		w.view[m.ID] = m
	}
	if push {
		w.ready = make(chan struct{})
	}
	go func() {
		defer done()
		defer stopB()
		defer close(w.done)
		w.run(wctx, b)
	}()
	if push {
		select {
		case <-w.ready:
		case <-ctx.Done():
			w.Close()
			return nil, newError(CodeOf(ctx.Err()), "watch "+group, ctx.Err())
		}
		if w.startErr != nil {
			w.Close()
			return nil, w.startErr
		}
	}
	return w, nil
}

// markReady takes the first snapshot of a push watch as its starting
// point; it reports false once the watch is running.
func (w *GroupWatch) markReady(ms []Member) bool {
	if w.ready == nil || w.started {
		return false
	}
	sorted := append([]Member(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	w.mu.Lock()
	w.initial = sorted
	for _, m := range sorted {
		w.view[m.ID] = m
	}
	w.mu.Unlock()
	w.started = true
	close(w.ready)
	return true
}

// failStart ends a push watch that never got its first snapshot; the
// error goes to WatchGroup's caller.
func (w *GroupWatch) failStart(err error) {
	w.startErr = wrap("watch "+w.group, err)
	w.started = true
	close(w.ready)
}

func (w *GroupWatch) run(ctx context.Context, b *Backend) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := w.source(ctx, b)
		w.mu.Lock()
		w.srcErr = err
		w.mu.Unlock()
		w.push(Event{}) // wake the sender
	}()
	defer close(w.ch)
	defer wg.Wait()
	for {
		w.mu.Lock()
		q := w.q
		w.q = nil
		w.mu.Unlock()
		for _, ev := range q {
			if ev.Type == 0 {
				continue
			}
			select {
			case w.ch <- ev:
				b.observeWatch(ev)
			case <-ctx.Done():
				w.finish(ctx, nil)
				return
			}
		}
		// Check on every pass: the source may have queued its last events
		// and ended before this loop waited, and wake holds one signal.
		w.mu.Lock()
		empty, endErr := len(w.q) == 0, w.srcErr
		w.mu.Unlock()
		if endErr != nil && empty {
			w.finish(ctx, endErr)
			return
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.finish(ctx, nil)
			return
		}
	}
}

// finish records why the watch ended.
func (w *GroupWatch) finish(ctx context.Context, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	switch {
	case err != nil && !errors.Is(err, errWatchCtx):
		w.err = err
	case ctx.Err() != nil:
		w.err = endedBy(ctx, "watch "+w.group)
	default:
		w.err = newError(driver.CodeInternal, "watch "+w.group, errors.New("ended"))
	}
}

var errWatchCtx = errors.New("watch context done")

// push queues events for the sender without blocking.
func (w *GroupWatch) push(evs ...Event) {
	w.mu.Lock()
	w.q = append(w.q, evs...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// source produces events until the watch must end; it returns why.
func (w *GroupWatch) source(ctx context.Context, b *Backend) error {
	if gw, ok := b.conn.(driver.GroupWatcher); ok {
		return w.pushSource(ctx, b, gw)
	}
	return w.pollSource(ctx, b)
}

func (w *GroupWatch) pollSource(ctx context.Context, b *Backend) error {
	gap := false
	budget := retryBudget{b: b}
	for {
		t := b.o.clock.NewTimer(b.o.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return errWatchCtx
		case <-t.C():
		}
		ms, err := b.conn.Members(ctx, w.group)
		switch {
		case ctx.Err() != nil:
			return errWatchCtx
		case CodeOf(err) == driver.CodeGroupNotFound:
			w.deleted()
			return newError(driver.CodeGroupNotFound, "watch "+w.group, errors.New("group deleted"))
		case err != nil:
			if end := budget.failed("watch "+w.group, err); end != nil {
				return end
			}
			b.log.Debug("watch poll failed", zap.String("group", w.group), causeField(err))
			gap = true
			continue
		}
		budget.succeeded()
		w.snapshot(ms, gap)
		gap = false
	}
}

func (w *GroupWatch) pushSource(ctx context.Context, b *Backend, gw driver.GroupWatcher) error {
	resync := false
	deleted := false
	budget := retryBudget{b: b}
	for attempt := 0; ; attempt++ {
		first := true
		err := gw.WatchGroup(ctx, w.group, func(ev driver.GroupEvent) {
			if deleted {
				return
			}
			switch ev.Type {
			case driver.GroupSnapshot:
				if w.markReady(ev.Members) {
					first = false
					return
				}
				w.snapshot(ev.Members, resync || !first)
			case driver.MemberJoined:
				w.joined(ev.Member)
			case driver.MemberLeft:
				w.left(ev.Member)
			case driver.MemberUpdated:
				w.updated(ev.Member)
			case driver.GroupDeleted:
				deleted = true
				w.deleted()
			}
			first = false
		})
		if !w.started {
			if err == nil {
				err = ctx.Err()
			}
			w.failStart(err)
			return w.startErr
		}
		switch {
		case deleted || CodeOf(err) == driver.CodeGroupNotFound:
			if !deleted {
				w.deleted()
			}
			return newError(driver.CodeGroupNotFound, "watch "+w.group, errors.New("group deleted"))
		case ctx.Err() != nil:
			return errWatchCtx
		}
		if !first {
			budget.succeeded() // the attempt delivered events
		}
		if end := budget.failed("watch "+w.group, err); err != nil && end != nil {
			return end
		}
		b.log.Debug("watch interrupted; restarting", zap.String("group", w.group), causeField(err))
		resync = true
		t := b.o.clock.NewTimer(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return errWatchCtx
		case <-t.C():
		}
	}
}

// snapshot diffs a complete listing against the view.
func (w *GroupWatch) snapshot(ms []Member, resync bool) {
	var evs []Event
	seen := make(map[string]bool, len(ms))
	w.mu.Lock()
	ids := make([]string, 0, len(w.view))
	for id := range w.view {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	byID := make(map[string]Member, len(ms))
	for _, m := range ms {
		byID[m.ID] = m
		seen[m.ID] = true
	}
	for _, id := range ids {
		old := w.view[id]
		if m, ok := byID[id]; !ok || m.Incarnation != old.Incarnation {
			evs = append(evs, Event{Type: EventLeft, Group: w.group, Member: old})
			delete(w.view, id)
		}
	}
	sorted := append([]Member(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for _, m := range sorted {
		old, ok := w.view[m.ID]
		switch {
		case !ok:
			evs = append(evs, Event{Type: EventJoined, Group: w.group, Member: m})
		case !bytes.Equal(old.Capabilities, m.Capabilities):
			evs = append(evs, Event{Type: EventCapabilitiesChanged, Group: w.group, Member: m})
		}
		w.view[m.ID] = m
	}
	if resync {
		evs = append(evs, Event{Type: EventResync, Group: w.group, Members: sorted})
	}
	w.mu.Unlock()
	w.push(evs...)
}

func (w *GroupWatch) joined(m Member) {
	var evs []Event
	w.mu.Lock()
	old, ok := w.view[m.ID]
	switch {
	case ok && old.Incarnation == m.Incarnation:
		if !bytes.Equal(old.Capabilities, m.Capabilities) {
			evs = append(evs, Event{Type: EventCapabilitiesChanged, Group: w.group, Member: m})
		}
	case ok:
		evs = append(evs, Event{Type: EventLeft, Group: w.group, Member: old},
			Event{Type: EventJoined, Group: w.group, Member: m})
	default:
		evs = append(evs, Event{Type: EventJoined, Group: w.group, Member: m})
	}
	w.view[m.ID] = m
	w.mu.Unlock()
	w.push(evs...)
}

func (w *GroupWatch) left(m Member) {
	w.mu.Lock()
	old, ok := w.view[m.ID]
	if !ok || (m.Incarnation != "" && old.Incarnation != m.Incarnation) {
		w.mu.Unlock()
		return
	}
	delete(w.view, m.ID)
	w.mu.Unlock()
	w.push(Event{Type: EventLeft, Group: w.group, Member: old})
}

func (w *GroupWatch) updated(m Member) {
	w.mu.Lock()
	old, ok := w.view[m.ID]
	w.mu.Unlock()
	if !ok || old.Incarnation != m.Incarnation {
		w.joined(m)
		return
	}
	w.mu.Lock()
	changed := !bytes.Equal(old.Capabilities, m.Capabilities)
	w.view[m.ID] = m
	w.mu.Unlock()
	if changed {
		w.push(Event{Type: EventCapabilitiesChanged, Group: w.group, Member: m})
	}
}

func (w *GroupWatch) deleted() {
	w.mu.Lock()
	ids := make([]string, 0, len(w.view))
	for id := range w.view {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	evs := make([]Event, 0, len(ids)+1)
	for _, id := range ids {
		evs = append(evs, Event{Type: EventLeft, Group: w.group, Member: w.view[id]})
	}
	w.view = map[string]Member{}
	w.mu.Unlock()
	evs = append(evs, Event{Type: EventGroupDeleted, Group: w.group})
	w.push(evs...)
}

// String describes an event for logs.
func (e Event) String() string {
	if e.Type == EventResync || e.Type == EventGroupDeleted {
		return fmt.Sprintf("%s %q", e.Type, e.Group)
	}
	return fmt.Sprintf("%s %q %q", e.Type, e.Group, e.Member.ID)
}

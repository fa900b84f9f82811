package membership

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/baton-go/baton/backend"
)

// EventType says what an Event reports.
type EventType = backend.EventType

// The kinds of Event.
const (
	Joined              = backend.EventJoined
	Left                = backend.EventLeft
	CapabilitiesChanged = backend.EventCapabilitiesChanged
	GroupDeleted        = backend.EventGroupDeleted
	Resync              = backend.EventResync
)

// Event is one change of a watched group.
type Event struct {
	Type  EventType
	Group string
	// Member concerned by Joined, Left and CapabilitiesChanged.
	Member Member
	// Members is the complete list on Resync.
	Members []Member
}

// Watch is an ordered stream of a group's changes: every join, leave and
// capabilities change, once, in order; Resync after any gap (the
// differences are reported first); GroupDeleted last when the group goes.
type Watch struct {
	w    *backend.GroupWatch
	ch   chan Event
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Watch starts watching the group. It lists the group first
// (backend.ErrGroupNotFound when absent); Initial returns that list and
// events report changes from there. The watch runs until ctx is done,
// Close is called, the group is deleted or the backend ends; the consumer
// must keep reading Events until it is closed.
func (g *Group) Watch(ctx context.Context, opts ...WatchOption) (*Watch, error) {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	bw, err := g.b.WatchGroup(ctx, g.id)
	for o.waitForGroup && errors.Is(err, backend.ErrGroupNotFound) {
		t := g.b.Clock().NewTimer(g.b.PollInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for group %q: %w", g.id, err)
		case <-g.b.Done():
			t.Stop()
			return nil, g.b.Err()
		case <-t.C():
		}
		bw, err = g.b.WatchGroup(ctx, g.id)
	}
	if err != nil {
		return nil, err
	}
	w := &Watch{w: bw, ch: make(chan Event), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(w.ch)
		for ev := range bw.Events() {
			out := Event{Type: ev.Type, Group: ev.Group, Member: fromBackend(ev.Member)}
			for _, m := range ev.Members {
				out.Members = append(out.Members, fromBackend(m))
			}
			select {
			case w.ch <- out:
			case <-w.stop:
				bw.Close()
				return
			case <-ctx.Done():
				// The consumer may have stopped reading: do not wait
				// for it. Err reports the cancellation.
				bw.Close()
				return
			case <-g.b.Done():
				// Likewise when the Backend closes or is lost.
				bw.Close()
				return
			}
		}
	}()
	return w, nil
}

// Events returns the stream; see Err for why it closed.
func (w *Watch) Events() <-chan Event { return w.ch }

// Initial returns the members present when the watch started.
func (w *Watch) Initial() []Member {
	in := w.w.Initial()
	out := make([]Member, len(in))
	for i, m := range in {
		out[i] = fromBackend(m)
	}
	return out
}

// Done is closed when the watch has ended and its goroutine has exited:
// after Close, when ctx ends, when the group is deleted or when the
// Backend ends. Err then says why.
func (w *Watch) Done() <-chan struct{} { return w.done }

// Err returns why the stream ended: an error matching backend.ErrCanceled
// after Close or cancellation, backend.ErrGroupNotFound after the group was
// deleted, backend.ErrLost or backend.ErrClosed when the backend ended.
func (w *Watch) Err() error { return w.w.Err() }

// Close stops the watch and waits for it. Events still queued are
// discarded.
func (w *Watch) Close() {
	w.once.Do(func() { close(w.stop) })
	w.w.Close()
	<-w.done
}

// WatchOption configures Watch and OnChange.
type WatchOption func(*watchOptions)

type watchOptions struct{ waitForGroup bool }

// WaitForGroup makes Watch wait, polling at the Backend's poll interval,
// for a group that does not exist yet instead of failing with
// backend.ErrGroupNotFound: the watch starts when the group appears, its
// Initial members then, as users of Kubernetes' leader election and
// Curator's caches expect. Watch then blocks until the group exists, ctx
// ends or the Backend ends.
func WaitForGroup() WatchOption { return func(o *watchOptions) { o.waitForGroup = true } }

// OnChange calls fn for each change of the group, in order, until ctx is
// done or the watch ends; it blocks meanwhile and returns the watch's Err
// (an error matching backend.ErrCanceled when ctx ended). fn runs on one
// goroutine, never concurrently with itself.
func (g *Group) OnChange(ctx context.Context, fn func(Event), opts ...WatchOption) error {
	w, err := g.Watch(ctx, opts...)
	if err != nil {
		return err
	}
	for ev := range w.Events() {
		fn(ev)
	}
	return w.Err()
}

package backend

import (
	"sync"
	"time"
)

// SessionState is a state of a Backend's session, as reported to the
// listeners registered with OnSessionState.
type SessionState int

// The session states.
const (
	// SessionConnected: the session was established (reported once, first).
	SessionConnected SessionState = iota + 1
	// SessionRenewFailed: a renewal (or, on a session backend, a ping)
	// failed; the session holds until LiveUntil unless a later one
	// succeeds. Cause is the failure.
	SessionRenewFailed
	// SessionSuspended: the connection was lost, or nothing was heard from
	// the server for the whole TTL; every grant bound to the session was
	// cancelled (in doubt). Cause says why.
	SessionSuspended
	// SessionResumed: the server was heard from again and the session
	// survived; grants cancelled while suspended stay cancelled.
	SessionResumed
	// SessionLost: the session ended for good; Cause matches
	// ErrSessionLost. The Backend is unusable. This is the last event.
	SessionLost
	// SessionClosed: Close ended the session. This is the last event.
	SessionClosed
)

// String returns the state's name.
func (s SessionState) String() string {
	switch s {
	case SessionConnected:
		return "connected"
	case SessionRenewFailed:
		return "renew-failed"
	case SessionSuspended:
		return "suspended"
	case SessionResumed:
		return "resumed"
	case SessionLost:
		return "lost"
	case SessionClosed:
		return "closed"
	}
	return "unknown"
}

// SessionEvent is one change of a Backend's session.
type SessionEvent struct {
	State SessionState
	// Cause says why (nil for Connected and Resumed).
	Cause error
	// At is when the Backend noticed, on its clock.
	At time.Time
	// LiveUntil is the instant until which the session is known to hold
	// (the last successful renewal's send time plus the TTL); zero when
	// the session cannot expire while the process lives.
	LiveUntil time.Time
}

// listeners delivers session events, in order and once each, to every
// registered listener from one goroutine owned by the Backend, so a slow
// listener delays only later events, never the session loop.
type listeners struct {
	mu     sync.Mutex
	subs   map[int]*subscriber
	nextID int
	hist   []SessionEvent // the first event and the latest ones
	first  int            // sequence number of hist[1] (hist[0] is 0)
	seq    int            // sequence number of the next event
	wake   chan struct{}
	ended  bool // Lost or Closed was emitted
}

type subscriber struct {
	fn   func(SessionEvent)
	next int // sequence number of the next event to deliver
}

const keptSessionEvents = 64

// OnSessionState registers fn to receive every session state change of
// the Backend, starting with a replay of the changes so far (Connected
// first; at most the latest 64). Events are delivered in order and once
// each, from one goroutine owned by the Backend; fn must not block for
// long. The returned function unregisters fn; once it returned fn is not
// called again. Safe for concurrent use.
func (b *Backend) OnSessionState(fn func(SessionEvent)) (stop func()) {
	l := &b.listeners
	l.mu.Lock()
	id := l.nextID
	l.nextID++
	l.subs[id] = &subscriber{fn: fn}
	l.mu.Unlock()
	select {
	case <-b.deliverDone: // the Backend ended: replay here
		b.drain()
	default:
		l.signal()
	}
	return func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
		b.deliverMu.Lock() // wait out a delivery in progress
		b.deliverMu.Unlock()
	}
}

func (l *listeners) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// eventLocked returns the event with sequence number n, if still kept.
func (l *listeners) eventLocked(n int) (SessionEvent, int, bool) {
	if n == 0 && len(l.hist) > 0 {
		return l.hist[0], 1, true
	}
	if n < l.first {
		n = l.first
	}
	i := 1 + n - l.first
	if i >= len(l.hist) {
		return SessionEvent{}, n, false
	}
	return l.hist[i], n + 1, true
}

// emit records a session event and wakes the delivery goroutine.
func (b *Backend) emit(state SessionState, cause error) {
	b.mu.Lock()
	until := b.liveUntil
	b.mu.Unlock()
	if b.timing.TTL == 0 {
		until = time.Time{}
	}
	ev := SessionEvent{State: state, Cause: cause, At: b.o.clock.Now(), LiveUntil: until}
	l := &b.listeners
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	if len(l.hist) == 0 {
		l.first = 1
	}
	l.hist = append(l.hist, ev)
	l.seq++
	if len(l.hist) > keptSessionEvents {
		l.hist = append(l.hist[:1], l.hist[2:]...)
		l.first++
	}
	l.ended = state == SessionLost || state == SessionClosed
	l.mu.Unlock()
	l.signal()
}

// drain delivers every pending event to every listener. Collecting and
// delivering under deliverMu keeps each listener's events in order.
func (b *Backend) drain() {
	l := &b.listeners
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	for {
		type delivery struct {
			fn func(SessionEvent)
			ev SessionEvent
		}
		var ds []delivery
		l.mu.Lock()
		for id := 0; id < l.nextID; id++ {
			s, ok := l.subs[id]
			if !ok {
				continue
			}
			for {
				ev, next, ok := l.eventLocked(s.next)
				if !ok {
					break
				}
				s.next = next
				ds = append(ds, delivery{s.fn, ev})
			}
		}
		l.mu.Unlock()
		if len(ds) == 0 {
			return
		}
		for _, d := range ds {
			d.fn(d.ev)
		}
	}
}

// deliverLoop delivers events until the Backend ends (its last event is
// emitted before its context is cancelled, so the final drain delivers
// it); a listener registered later is served by OnSessionState itself.
func (b *Backend) deliverLoop() {
	defer b.wg.Done()
	defer b.drain() // for a listener registered while the loop ended
	defer close(b.deliverDone)
	for {
		select {
		case <-b.listeners.wake:
			b.drain()
		case <-b.ctx.Done():
			b.drain()
			return
		}
	}
}

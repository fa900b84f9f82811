package backend_test

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// fakeClock is a backend.Clock that moves only when a test advances it, so
// that every timer of a Backend (renewals, lease checks, refreshes, polls,
// lock-wait backoff) fires exactly when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

var _ backend.Clock = (*fakeClock)(nil)

// newFakeClock starts at the current wall-clock time.
func newFakeClock() *fakeClock { return newFakeClockAt(time.Now()) }

// newFakeClockAt starts at start: a Backend must never mix its clock's
// instants with the wall clock's.
func newFakeClockAt(start time.Time) *fakeClock {
	return &fakeClock{now: start, timers: map[*fakeTimer]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) backend.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers[t] = struct{}{}
	return t
}

// advanceTo moves the clock to at (never back) and fires every timer due
// by then, earliest first.
func (c *fakeClock) advanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.now) {
		c.now = at
	}
	due := make([]*fakeTimer, 0, len(c.timers))
	for t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		delete(c.timers, t)
		t.ch <- c.now
	}
}

// jump moves the clock forward by d without firing any timer, as a
// process pause (SIGSTOP, a VM stall) looks to the paused process.
func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// deadlines returns the deadlines of the pending timers, sorted.
func (c *fakeClock) deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, 0, len(c.timers))
	for t := range c.timers {
		out = append(out, t.at)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// waitTimer waits until a timer with deadline at is pending.
func (c *fakeClock) waitTimer(t testing.TB, at time.Time) {
	t.Helper()
	eventually(t, "a timer at "+at.Format(time.RFC3339Nano), func() bool {
		return slices.ContainsFunc(c.deadlines(), at.Equal)
	})
}

// next waits until a timer is pending and the timer loops are parked, and
// returns the earliest deadline: the instant step would move to.
func (c *fakeClock) next(t testing.TB) time.Time {
	t.Helper()
	eventually(t, "a pending timer, with the timer loops parked", func() bool { return len(c.deadlines()) > 0 && parked() })
	return c.deadlines()[0]
}

// step waits until the Backends' timer loops are parked (see settle),
// fires the earliest pending timer (with every other timer due at the same
// instant), and waits until the loops it woke are parked again. It returns
// the instant it moved to.
func (c *fakeClock) step(t testing.TB) time.Time {
	t.Helper()
	next := c.next(t)
	c.advanceTo(next)
	settle(t)
	return next
}

// timerLoops are the portable layer's goroutines (or blocking calls) that
// wait on the clock's timers in a select of their own.
var timerLoops = []string{
	"github.com/baton-go/baton/backend.(*Backend).renewLoop(",
	"github.com/baton-go/baton/backend.(*Backend).refreshLoop(",
	"github.com/baton-go/baton/backend.(*Backend).refreshWorker(",
	"github.com/baton-go/baton/backend.(*Backend).releaseLost(",
	"github.com/baton-go/baton/backend.(*GroupWatch).pollSource(",
	"github.com/baton-go/baton/backend.(*Backend).waitGrant(",
	"github.com/baton-go/baton/backend.(*Backend).watchdog(",
	"github.com/baton-go/baton/backend.(*LeaderWatch).run(",
	"github.com/baton-go/baton/backend/membackend.(*conn).injected(",
	"github.com/baton-go/baton/backend/membackend.(*conn).WaitLock(",
}

// settle waits until every goroutine inside one of the timerLoops is
// parked in that loop's own select: none is between reading the clock and
// arming its timer, none is in a call to the driver. Advancing the clock
// is deterministic only then. (A loop parked in a driver's blocking call,
// such as a native lock wait, never settles: the tests using step avoid
// them.)
func settle(t testing.TB) {
	t.Helper()
	eventually(t, "the timer loops to park", parked)
}

// parked reports whether every goroutine inside one of the timerLoops is
// parked in that loop's own select.
func parked() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	isLoop := func(frame string) bool {
		return slices.ContainsFunc(timerLoops, func(f string) bool { return strings.HasPrefix(frame, f) })
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, frames, _ := strings.Cut(g, "\n")
		state := header[strings.IndexByte(header, '[')+1:]
		lines := strings.Split(frames, "\n")
		if !slices.ContainsFunc(lines, isLoop) {
			// A goroutine the layer just started shows only its go
			// statement's wrapper until it runs: it may be a loop.
			if (strings.HasPrefix(state, "runnable") || strings.HasPrefix(state, "running")) &&
				strings.Contains(frames, "\ncreated by github.com/baton-go/baton/backend.") {
				return false
			}
			continue
		}
		if !strings.HasPrefix(state, "select") && !strings.HasPrefix(state, "chan receive") {
			return false
		}
		for _, l := range lines { // the innermost frame outside the runtime
			if l != "" && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "runtime.") {
				if !isLoop(l) {
					return false
				}
				break
			}
		}
	}
	return true
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}

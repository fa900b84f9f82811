package backend

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// The refresh scheduler keeps every own lease of a Backend (a grant whose
// driver lease has a TTL of its own). One goroutine, refreshLoop, waits on
// one timer of the Backend's clock for the earliest instant any grant
// needs attention — its next refresh, or its loss deadline — and hands
// the refreshes due to a few worker goroutines (one that stays, more
// while refreshes pile up, at most maxRefreshWorkers), so that a refresh
// stuck on a dead server delays neither the loss deadline of another
// grant nor its refresh. The timing model is the one a goroutine per
// grant used to keep: a lease is refreshed Interval after the last
// successful refresh was sent, retried max(RTT, 1ms) after a failure,
// and its grant is lost Margin before the lease could expire.
//
// When the driver is a driver.BatchRefresher, the grants due at once are
// refreshed in one request, and with them every grant whose refresh falls
// within the next half of its interval (refreshing early is always safe:
// the lease is then extended from an earlier send time, and only more
// often). After one period the grants of a Backend are in phase, and the
// whole set costs about one request per renewal period.
//
// Nothing is allocated per refresh: the grants live in a heap of
// pointers, and a round reuses its slices; a round allocates only its
// context (one per request, whatever the number of grants in it).

// maxRefreshWorkers caps the refresh requests of one Backend in flight.
const maxRefreshWorkers = 16

// refresher is a Backend's refresh scheduler.
type refresher struct {
	mu   sync.Mutex
	heap []*Grant // by Grant.due; every live own-lease grant
	// maxInterval is the longest refresh interval of a grant scheduled so
	// far: the early-refresh window of a batch is at most half of it.
	maxInterval time.Duration
	batch       driver.BatchRefresher
	started     bool          // refreshLoop runs
	wake        chan struct{} // cap 1: the heap changed, the loop recomputes
	// armed is the due time the loop's timer was last set for (zero when
	// the heap was empty and the loop waits for no timer): a grant due
	// later needs no wake-up, the loop sees it when the timer fires.
	armed   time.Time
	work    chan struct{} // a round was queued for an idle worker
	queue   []*refreshRound
	free    []*refreshRound
	idle    int // workers parked waiting for work
	workers int
	// cands and lost are refreshLoop's buffers.
	cands, lost []*Grant
	// requests and leases count the refresh requests sent and the leases
	// they carried.
	requests, leases atomic.Uint64
}

// RefreshStats counts the work of a Backend's refresh scheduler, which
// keeps the grants that have a lease of their own (locks on TTL stores
// such as Redis); grants bound to the session are kept by the session's
// renewals instead and appear nowhere here.
type RefreshStats struct {
	// Grants is the number of own-lease grants scheduled now.
	Grants int
	// Requests is the number of refresh requests sent so far: one per
	// lease, or one per batch where the driver refreshes many leases in
	// one round trip.
	Requests uint64
	// Leases is the number of lease refreshes those requests carried.
	Leases uint64
}

// RefreshStats reports the refresh scheduler's counters.
func (b *Backend) RefreshStats() RefreshStats {
	r := &b.ref
	r.mu.Lock()
	n := len(r.heap)
	r.mu.Unlock()
	return RefreshStats{Grants: n, Requests: r.requests.Load(), Leases: r.leases.Load()}
}

// refreshRound is one request: a grant's refresh, or a batch.
type refreshRound struct {
	grants []*Grant
	refs   []driver.LockRef
	errs   []error
}

// nextDue returns when the scheduler must next look at g: its
// refresh (or retry) or its loss deadline, whichever comes first.
func (g *Grant) nextDue() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	lossAt := g.validUntil.Add(-g.timing.Margin)
	if g.inflight {
		return lossAt
	}
	at := g.lastSent.Add(g.timing.Interval)
	if !g.retryAt.IsZero() {
		at = g.retryAt
	}
	if lossAt.Before(at) {
		return lossAt
	}
	return at
}

// schedule adds an own-lease grant to the scheduler, starting its loop
// with the first one. The caller has registered g (and counted the loop
// in b.wg when it returned start true).
func (b *Backend) schedule(g *Grant) {
	r := &b.ref
	g.due = g.nextDue()
	r.mu.Lock()
	r.push(g)
	// Only a grant due before the loop's timer must wake it: waking it
	// for every grant would cost each acquire a goroutine switch.
	wake := g.hidx == 0 && (r.armed.IsZero() || g.due.Before(r.armed))
	r.mu.Unlock()
	if wake {
		r.signal()
	}
}

// unschedule removes a grant that ended from the scheduler.
func (b *Backend) unschedule(g *Grant) {
	if g.ttl == 0 {
		return
	}
	r := &b.ref
	r.mu.Lock()
	if g.hidx >= 0 {
		r.remove(g.hidx)
	}
	r.mu.Unlock()
}

func (r *refresher) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// refreshLoop runs the scheduler until the Backend ends.
func (b *Backend) refreshLoop() {
	defer b.wg.Done()
	r := &b.ref
	clock := b.o.clock
	var t loopTimer
	defer t.stop()
	for {
		now := clock.Now()
		r.mu.Lock()
		b.collectLocked(now)
		var next time.Time
		if len(r.heap) > 0 {
			next = r.heap[0].due
		}
		r.armed = next
		lost := r.lost
		r.lost = r.lost[:0]
		r.mu.Unlock()
		for i, g := range lost {
			lost[i] = nil
			g.lose(g.expiry(g.lossAt()))
		}
		var timerC <-chan time.Time
		if !next.IsZero() {
			if !next.After(now) {
				continue
			}
			timerC = t.set(clock, next.Sub(now))
		}
		select {
		case <-b.ctx.Done():
			return
		case <-r.wake:
		case <-timerC:
		}
	}
}

// collectLocked handles every grant due by now: a grant past its loss
// deadline goes to r.lost; the others are refreshed, in one batch when
// the driver can (with the grants whose refresh comes within half an
// interval), else each in a round of its own.
func (b *Backend) collectLocked(now time.Time) {
	r := &b.ref
	var rd *refreshRound
	for len(r.heap) > 0 && !r.heap[0].due.After(now) {
		g := r.heap[0]
		if g.ctx.Context.Err() != nil { // ended; its release or loss removes it too
			r.remove(0)
			continue
		}
		g.mu.Lock()
		lossAt := g.validUntil.Add(-g.timing.Margin)
		inflight := g.inflight
		g.mu.Unlock()
		if !now.Before(lossAt) {
			r.remove(0)
			r.lost = append(r.lost, g)
			continue
		}
		if inflight { // its loss deadline moved: wait for it, or the answer
			g.due = lossAt
			r.fix(0)
			continue
		}
		if rd != nil && r.batch == nil {
			b.dispatchLocked(rd)
			rd = nil
		}
		if rd == nil {
			rd = r.round()
		}
		r.startLocked(rd, g, 0)
	}
	if rd == nil {
		return
	}
	if r.batch != nil {
		// Gather the grants whose refresh falls within the next half
		// interval: a walk of the heap that prunes every subtree whose
		// root is due later than any window reaches.
		r.cands = r.cands[:0]
		r.gather(0, now.Add(r.maxInterval/2))
		for _, g := range r.cands {
			if g.hidx < 0 || g.ctx.Context.Err() != nil {
				continue
			}
			g.mu.Lock()
			ok := !g.inflight && g.retryAt.IsZero() && !g.lastSent.Add(g.timing.Interval).After(now.Add(g.timing.Interval/2))
			g.mu.Unlock()
			if ok {
				r.startLocked(rd, g, g.hidx)
			}
		}
		clear(r.cands)
		r.cands = r.cands[:0]
	}
	b.dispatchLocked(rd)
}

// gather appends to r.cands the grants of the subtree at i due by
// horizon (children are never due before their parent).
func (r *refresher) gather(i int, horizon time.Time) {
	if i >= len(r.heap) || r.heap[i].due.After(horizon) {
		return
	}
	r.cands = append(r.cands, r.heap[i])
	r.gather(2*i+1, horizon)
	r.gather(2*i+2, horizon)
}

// startLocked adds g (at heap index i) to round rd: until the answer, the
// scheduler looks at it only at its loss deadline.
func (r *refresher) startLocked(rd *refreshRound, g *Grant, i int) {
	g.mu.Lock()
	g.inflight = true
	g.due = g.validUntil.Add(-g.timing.Margin)
	g.mu.Unlock()
	r.fix(i)
	rd.grants = append(rd.grants, g)
}

// round returns an empty round, reused when one is free.
func (r *refresher) round() *refreshRound {
	if n := len(r.free); n > 0 {
		rd := r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
		return rd
	}
	return &refreshRound{}
}

// dispatchLocked queues a round for a worker: an idle one, else a new one
// while there are fewer than maxRefreshWorkers.
func (b *Backend) dispatchLocked(rd *refreshRound) {
	r := &b.ref
	r.queue = append(r.queue, rd)
	switch {
	case r.idle > 0:
		r.idle--
		r.work <- struct{}{}
	case r.workers < maxRefreshWorkers:
		r.workers++
		b.wg.Add(1) // b.wg counts refreshLoop, the caller: never zero here
		go b.refreshWorker()
	}
}

// refreshWorker runs queued rounds. The first worker stays until the
// Backend ends; the others end when the queue is empty.
func (b *Backend) refreshWorker() {
	defer b.wg.Done()
	r := &b.ref
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			if r.workers > 1 {
				r.workers--
				r.mu.Unlock()
				return
			}
			r.idle++
			r.mu.Unlock()
			select {
			case <-r.work:
				continue
			case <-b.ctx.Done():
				return
			}
		}
		rd := r.queue[0]
		copy(r.queue, r.queue[1:])
		r.queue[len(r.queue)-1] = nil
		r.queue = r.queue[:len(r.queue)-1]
		r.mu.Unlock()
		b.runRound(rd)
	}
}

// runRound sends one round's request and applies its outcome to each of
// its grants.
func (b *Backend) runRound(rd *refreshRound) {
	r := &b.ref
	sent := b.o.clock.Now()
	// One attempt may take until the earliest loss deadline of the round,
	// and never longer than an interval: a refresh stuck on a dead server
	// must leave room for another attempt.
	var timeout time.Duration
	for i, g := range rd.grants {
		g.mu.Lock()
		d := min(g.validUntil.Add(-g.timing.Margin).Sub(sent), g.timing.Interval)
		g.mu.Unlock()
		if i == 0 || d < timeout {
			timeout = d
		}
	}
	parent := b.ctx
	if len(rd.grants) == 1 {
		parent = rd.grants[0].ctx.Context // a release cancels it
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	if cap(rd.errs) < len(rd.grants) {
		rd.errs = make([]error, len(rd.grants))
	}
	rd.errs = rd.errs[:len(rd.grants)]
	if len(rd.grants) == 1 {
		g := rd.grants[0]
		rd.errs[0] = b.conn.RefreshLock(ctx, g.key, g.token, g.ttl)
	} else {
		rd.refs = rd.refs[:0]
		for _, g := range rd.grants {
			rd.refs = append(rd.refs, driver.LockRef{Key: g.key, Token: g.token, TTL: g.ttl})
		}
		if err := r.batch.RefreshLocks(ctx, rd.refs, rd.errs); err != nil {
			for i := range rd.errs {
				rd.errs[i] = err
			}
		}
	}
	cancel()
	r.requests.Add(1)
	r.leases.Add(uint64(len(rd.grants)))
	for i, g := range rd.grants {
		g.refreshed(sent, rd.errs[i])
	}
	r.mu.Lock()
	for i, g := range rd.grants {
		g.mu.Lock()
		g.inflight = false
		g.mu.Unlock()
		if g.hidx >= 0 {
			g.due = g.nextDue()
			r.fix(g.hidx)
		}
		rd.grants[i] = nil
		rd.errs[i] = nil
	}
	clear(rd.refs)
	rd.grants, rd.refs, rd.errs = rd.grants[:0], rd.refs[:0], rd.errs[:0]
	r.free = append(r.free, rd)
	r.mu.Unlock()
	r.signal()
}

// refreshed applies the outcome of a refresh of g sent at sent.
func (g *Grant) refreshed(sent time.Time, err error) {
	if g.ctx.Context.Err() != nil { // released or lost meanwhile, or the Backend ended
		return
	}
	g.b.observeRefresh(g, sent, err)
	switch {
	case err == nil:
		g.mu.Lock()
		if sent.After(g.lastSent) {
			g.lastSent, g.validUntil = sent, sent.Add(g.ttl)
		}
		g.lastErr = nil
		g.retryAt = time.Time{}
		g.mu.Unlock()
	case CodeOf(err) == driver.CodeNotHeld || CodeOf(err) == driver.CodeLost:
		g.lose(lost(g.op(), ErrNoLongerHeld, "refresh found the lock gone", err))
	default:
		f := grantFields(g)
		g.b.log.Warn("lock refresh failed", f[0], f[1], causeField(err))
		retry := g.b.o.clock.Now().Add(max(g.timing.RTT, time.Millisecond))
		g.mu.Lock()
		g.lastErr = err
		g.retryAt = retry
		g.mu.Unlock()
	}
}

// The heap of grants by due instant; Grant.hidx is a grant's index.

func (r *refresher) push(g *Grant) {
	r.maxInterval = max(r.maxInterval, g.timing.Interval)
	g.hidx = len(r.heap)
	r.heap = append(r.heap, g)
	r.up(g.hidx)
}

func (r *refresher) remove(i int) {
	n := len(r.heap) - 1
	g := r.heap[i]
	if i != n {
		r.swap(i, n)
	}
	r.heap[n] = nil
	r.heap = r.heap[:n]
	g.hidx = -1
	if i != n {
		r.fix(i)
	}
}

func (r *refresher) fix(i int) {
	if !r.down(i) {
		r.up(i)
	}
}

func (r *refresher) swap(i, j int) {
	r.heap[i], r.heap[j] = r.heap[j], r.heap[i]
	r.heap[i].hidx = i
	r.heap[j].hidx = j
}

func (r *refresher) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !r.heap[j].due.Before(r.heap[i].due) {
			break
		}
		r.swap(i, j)
		j = i
	}
}

func (r *refresher) down(i0 int) bool {
	i, n := i0, len(r.heap)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if j2 := j + 1; j2 < n && r.heap[j2].due.Before(r.heap[j].due) {
			j = j2
		}
		if !r.heap[j].due.Before(r.heap[i].due) {
			break
		}
		r.swap(i, j)
		i = j
	}
	return i > i0
}

// loopTimer is refreshLoop's timer: on the real clock one time.Timer,
// reset for each wait (no allocation); on another clock a new timer per
// wait, the previous one stopped.
type loopTimer struct {
	real *time.Timer
	t    Timer
}

func (lt *loopTimer) set(c Clock, d time.Duration) <-chan time.Time {
	if _, ok := c.(realClock); ok {
		if lt.real == nil {
			lt.real = time.NewTimer(d)
		} else {
			lt.real.Reset(d)
		}
		return lt.real.C
	}
	if lt.t != nil {
		lt.t.Stop()
	}
	lt.t = c.NewTimer(d)
	return lt.t.C()
}

func (lt *loopTimer) stop() {
	if lt.real != nil {
		lt.real.Stop()
	}
	if lt.t != nil {
		lt.t.Stop()
	}
}

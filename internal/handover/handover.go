// Package handover sizes the handover window of the queue-based lock
// drivers (etcd, ZooKeeper): how long the candidate at the head of a
// lock's queue may leave its turn unconfirmed before the waiter behind it
// deletes its entry as a dead candidate's.
//
// A live candidate confirms its turn one round trip after it sees the
// release; a dead one never does. The window is therefore a handful of
// the connection's own round trips (MinRoundTrips), with a floor for the
// scheduling delays of a busy host (Floor), instead of a fixed fraction
// of the session TTL: on loopback a resignation hands over past a
// candidate killed while queued within about ten milliseconds. A live
// candidate slower than the window only loses its place (it queues again
// at the back); exclusion never depends on the window.
package handover

import (
	"sync"
	"time"
)

const (
	// MinRoundTrips is the window in round trips of the connection.
	MinRoundTrips = 8
	// Floor is the least window: scheduling delays of a loaded host.
	Floor = 10 * time.Millisecond
)

// Estimator keeps the recent round trips of one connection, from the
// requests it times, and estimates its round-trip time as the least of
// them: the path's own cost, without the queueing and scheduling delays
// of a busy moment (which the Floor covers). The zero value is ready:
// with no sample, Window is the limit.
type Estimator struct {
	mu      sync.Mutex
	samples [16]time.Duration
	n       int // samples recorded, in total
}

// Observe records one request's round trip.
func (e *Estimator) Observe(d time.Duration) {
	if d <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.samples[e.n%len(e.samples)] = d
	e.n++
}

// Window returns MinRoundTrips round trips, at least Floor and at most
// limit (limit when nothing was observed yet).
func (e *Estimator) Window(limit time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return limit
	}
	rtt := e.samples[0]
	for _, d := range e.samples[:min(e.n, len(e.samples))] {
		rtt = min(rtt, d)
	}
	return min(max(MinRoundTrips*rtt, Floor), limit)
}

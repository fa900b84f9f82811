package driver

import "time"

// Clock is the time source of a Backend, handed to its driver in
// Config.Clock. Drivers take from it every instant that feeds the timing
// model (Lease.Sent, when a renewal or ping was sent, poll and retry
// timers), so that tests can run every timing path under a fake clock.
// Network deadlines of the client libraries may use real time.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer firing once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the wall and monotonic clock of the process.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a real timer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

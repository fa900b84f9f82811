package memcachedbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// stepClock is a driver.Clock whose timers fire at once, moving the clock
// by their duration; it records every wait.
type stepClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *stepClock) Now() time.Time { return c.now }

func (c *stepClock) NewTimer(d time.Duration) driver.Timer {
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return firedTimer(ch)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (t firedTimer) Stop() bool          { return false }

// busyFor returns a try that finds the lock held n times, then grants it
// with a lease whose Sent is left to pollLock.
func busyFor(n int) func(context.Context, driver.LockRequest) (driver.Lease, bool, error) {
	return func(context.Context, driver.LockRequest) (driver.Lease, bool, error) {
		if n > 0 {
			n--
			return driver.Lease{}, false, nil
		}
		return driver.Lease{Token: 7, TTL: time.Second}, true, nil
	}
}

// A blocked lock is tried again after 1 ms, then half as long again each
// time up to 10 ms (or the caller's cap), with at most a quarter of
// jitter either way; the grant's Sent is when the granting try was sent.
func TestPollLockSchedule(t *testing.T) {
	for _, tc := range []struct {
		maxPoll, limit time.Duration
	}{{0, pollCap}, {50 * time.Millisecond, 50 * time.Millisecond}, {2 * time.Millisecond, 2 * time.Millisecond}} {
		clk := &stepClock{now: time.Unix(1000, 0)}
		lease, err := pollLock(context.Background(), clk, driver.LockRequest{Key: "k", MaxPoll: tc.maxPoll}, busyFor(30))
		if err != nil {
			t.Fatal(err)
		}
		if lease.Token != 7 || !lease.Sent.Equal(clk.now) {
			t.Fatalf("lease %+v: want token 7 sent at %v (after the last wait)", lease, clk.now)
		}
		if len(clk.waits) != 30 {
			t.Fatalf("MaxPoll %v: %d waits for 30 busy tries", tc.maxPoll, len(clk.waits))
		}
		nominal := min(pollStart, tc.limit)
		for i, w := range clk.waits {
			if lo, hi := nominal*3/4, nominal*5/4; w < lo || w > hi {
				t.Fatalf("MaxPoll %v: wait %d is %v, want %v..%v (waits %v)", tc.maxPoll, i, w, lo, hi, clk.waits)
			}
			nominal = min(nominal*3/2, tc.limit)
		}
		if nominal != tc.limit {
			t.Fatalf("MaxPoll %v: the waits never reached the cap %v", tc.maxPoll, tc.limit)
		}
	}
}

// A try's error ends the wait with that error, and so does ctx.
func TestPollLockEnds(t *testing.T) {
	boom := driver.Errorf(driver.CodeUnavailable, "boom")
	clk := &stepClock{now: time.Unix(1000, 0)}
	_, err := pollLock(context.Background(), clk, driver.LockRequest{Key: "k"}, func(context.Context, driver.LockRequest) (driver.Lease, bool, error) {
		return driver.Lease{}, false, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the try's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = pollLock(ctx, driver.RealClock{}, driver.LockRequest{Key: "k"}, busyFor(1<<30))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

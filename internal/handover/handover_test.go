package handover

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWindow(t *testing.T) {
	var e Estimator
	if got := e.Window(250 * time.Millisecond); got != 250*time.Millisecond {
		t.Fatalf("no sample: window %v, want the limit", got)
	}
	e.Observe(500 * time.Microsecond)
	if got := e.Window(250 * time.Millisecond); got != Floor {
		t.Fatalf("0.5 ms round trips: window %v, want the floor %v", got, Floor)
	}
	for range 100 {
		e.Observe(5 * time.Millisecond)
	}
	if got := e.Window(250 * time.Millisecond); got != 40*time.Millisecond {
		t.Fatalf("5 ms round trips: window %v, want 8 of them", got)
	}
	e.Observe(50 * time.Millisecond) // a slow moment does not widen it
	if got := e.Window(250 * time.Millisecond); got != 40*time.Millisecond {
		t.Fatalf("one slow round trip among 5 ms ones: window %v, want 40ms", got)
	}
	for range 100 {
		e.Observe(time.Second)
	}
	if got := e.Window(250 * time.Millisecond); got != 250*time.Millisecond {
		t.Fatalf("1 s round trips: window %v, want the limit", got)
	}
	e.Observe(0)
	e.Observe(-time.Second)
	if got := e.Window(time.Hour); got != time.Second*MinRoundTrips {
		t.Fatalf("non-positive samples moved the estimate: window %v", got)
	}
}

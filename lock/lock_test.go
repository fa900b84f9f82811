package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
	"github.com/baton-go/baton/lock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTryAcquireRelease(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 10*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		l1, err := lock.New(b1, "job")
		if err != nil {
			t.Fatal(err)
		}
		l2, _ := lock.New(b2, "job")
		ok, err := l1.TryAcquire(ctx)
		if err != nil || !ok {
			t.Fatalf("TryAcquire = %v, %v", ok, err)
		}
		if !l1.Held() || l1.Token() == 0 || l1.Context().Err() != nil {
			t.Fatalf("held=%v token=%d ctxErr=%v", l1.Held(), l1.Token(), l1.Context().Err())
		}
		first := l1.Token()
		if ok, _ := l1.TryAcquire(ctx); ok {
			t.Fatal("reentrant TryAcquire succeeded")
		}
		if err := l1.Acquire(ctx); !errors.Is(err, lock.ErrAlreadyHeld) {
			t.Fatalf("Acquire on held handle = %v", err)
		}
		if ok, _ := l2.TryAcquire(ctx); ok {
			t.Fatal("second backend acquired a held lock")
		}
		if err := l2.Release(ctx); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("release by non-holder = %v", err)
		}
		h, held, err := l2.Holder(ctx)
		if err != nil || !held || h.Member != "m1" || h.Token != first {
			t.Fatalf("Holder = %+v %v %v", h, held, err)
		}
		gctx := l1.Context()
		if err := l1.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if gctx.Err() == nil || !errors.Is(context.Cause(gctx), backend.ErrReleased) {
			t.Fatalf("grant context after release: %v", context.Cause(gctx))
		}
		if err := l1.Release(ctx); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("second release = %v", err)
		}
		if ok, err := l2.TryAcquire(ctx); !ok || err != nil {
			t.Fatalf("TryAcquire after release = %v, %v", ok, err)
		}
		if l2.Token() <= first {
			t.Fatalf("token did not grow: %d then %d", first, l2.Token())
		}
		if !errors.Is(context.Cause(l1.Context()), lock.ErrNotHeld) {
			t.Fatal("Context of an unheld handle is not cancelled with ErrNotHeld")
		}
	})
}

func TestAcquireWaitsAndTimesOut(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 10*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		l1, _ := lock.New(b1, "wait")
		l2, _ := lock.New(b2, "wait", lock.WithMaxPollInterval(20*time.Millisecond))
		if err := l1.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := l2.Acquire(short)
		if !errors.Is(err, lock.ErrNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("timed-out Acquire = %v", err)
		}
		if l2.Held() {
			t.Fatal("holds after a timed-out Acquire")
		}
		got := make(chan error, 1)
		go func() { got <- l2.Acquire(ctx) }()
		if err := l1.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("waiting Acquire = %v", err)
		}
		if err := l2.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGrantLostOnSessionExpiry(t *testing.T) {
	url := testutil.MemURL(t)
	ctx := testutil.Context(t, 10*time.Second)
	b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
	l1, _ := lock.New(b1, "expiring")
	if err := l1.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	store, _ := membackend.StoreName(b1)
	if err := membackend.ExpireSession(store, "m1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l1.Context().Done():
	case <-ctx.Done():
		t.Fatal("grant context not cancelled after session expiry")
	}
	if !errors.Is(context.Cause(l1.Context()), backend.ErrLost) {
		t.Fatalf("cause = %v", context.Cause(l1.Context()))
	}
	if l1.Held() {
		t.Fatal("Held after loss")
	}
	l2, _ := lock.New(b2, "expiring")
	if ok, err := l2.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("successor TryAcquire = %v, %v", ok, err)
	}
	if err := l1.Release(ctx); !errors.Is(err, lock.ErrNotHeld) && !errors.Is(err, backend.ErrLost) {
		t.Fatalf("Release after loss = %v", err)
	}
}

func TestDoNeverOverlaps(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 30*time.Second)
		var inside, maxInside atomic.Int32
		var mu sync.Mutex
		var tokens []uint64
		var wg sync.WaitGroup
		for i := range 4 {
			b := testutil.Open(t, url, fmt.Sprintf("m%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					err := lock.Do(ctx, b, "counter", func(ctx context.Context, token uint64) error {
						n := inside.Add(1)
						for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
						}
						mu.Lock()
						tokens = append(tokens, token)
						mu.Unlock()
						inside.Add(-1)
						return ctx.Err()
					}, lock.WithMaxPollInterval(5*time.Millisecond))
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if maxInside.Load() != 1 {
			t.Fatalf("%d holders at once", maxInside.Load())
		}
		for i := 1; i < len(tokens); i++ {
			if tokens[i] <= tokens[i-1] {
				t.Fatalf("tokens not increasing in grant order: %v", tokens)
			}
		}
	})
}

func TestOptionsValidated(t *testing.T) {
	b := testutil.Open(t, testutil.MemURL(t), "m")
	tests := []struct {
		name string
		give []lock.Option
	}{
		{"margin not below ttl", []lock.Option{lock.WithTTL(time.Second), lock.WithSafetyMargin(time.Second)}},
		{"negative ttl", []lock.Option{lock.WithTTL(-time.Second)}},
		{"tiny ttl", []lock.Option{lock.WithTTL(time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := lock.New(b, "x", tt.give...); !errors.Is(err, backend.ErrInvalidArgument) {
				t.Fatalf("New = %v", err)
			}
		})
	}
	if _, err := lock.New(b, ""); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestSharedUnimplementedOrWorks(t *testing.T) {
	testutil.ForEachDriver(t, func(t *testing.T, url string) {
		ctx := testutil.Context(t, 10*time.Second)
		b1, b2 := testutil.Open(t, url, "m1"), testutil.Open(t, url, "m2")
		r1, _ := lock.New(b1, "rw", lock.Shared())
		r2, _ := lock.New(b2, "rw", lock.Shared())
		w, _ := lock.New(b2, "rw")
		ok, err := r1.TryAcquire(ctx)
		if !b1.Characteristics().SharedLocks {
			if !errors.Is(err, backend.ErrUnimplemented) {
				t.Fatalf("shared on a driver without shared locks = %v, %v", ok, err)
			}
			return
		}
		if !ok || err != nil {
			t.Fatalf("shared TryAcquire = %v, %v", ok, err)
		}
		if ok, err := r2.TryAcquire(ctx); !ok || err != nil {
			t.Fatalf("second shared = %v, %v", ok, err)
		}
		if ok, _ := w.TryAcquire(ctx); ok {
			t.Fatal("exclusive granted while shared held")
		}
		_ = r1.Release(ctx)
		_ = r2.Release(ctx)
		if ok, err := w.TryAcquire(ctx); !ok || err != nil {
			t.Fatalf("exclusive after shared released = %v, %v", ok, err)
		}
		_ = w.Release(ctx)
	})
}

// readersAnswer fails unless Token, Held and Context all return within a
// generous bound while a call to the backend is stalled.
func readersAnswer(t *testing.T, l *lock.Lock, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = l.Token(), l.Held(), l.Context()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Token/Held/Context blocked while %s was stalled", what)
	}
}

// No mutex is held across a call to the backend: a Release or TryAcquire
// stalled on the network does not block Token, Held or Context.
func TestSlowCallsDoNotBlockReaders(t *testing.T) {
	url := testutil.MemURL(t)
	ctx := testutil.Context(t, 10*time.Second)
	b := testutil.Open(t, url, "m1")
	store, _ := membackend.StoreName(b)
	l, _ := lock.New(b, "slow")
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}

	// A release stalled for an hour: readers see nothing held at once.
	if err := membackend.DelayNext(store, "m1", membackend.OpUnlock, 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	released := make(chan error, 1)
	go func() { released <- l.Release(rctx) }()
	testutil.Eventually(t, 10*time.Second, "Held false while the release is in flight", func() bool { return !l.Held() })
	readersAnswer(t, l, "Release")
	if l.Token() != 0 || l.Context().Err() == nil {
		t.Fatalf("during release: token %d, context err %v; want 0 and cancelled", l.Token(), l.Context().Err())
	}
	cancel()
	<-released

	// An acquire stalled for an hour: readers answer meanwhile.
	if err := membackend.DelayNext(store, "m1", membackend.OpAcquire, 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	acquired := make(chan error, 1)
	go func() {
		_, err := l.TryAcquire(actx)
		acquired <- err
	}()
	for range 20 {
		readersAnswer(t, l, "TryAcquire")
	}
	cancel()
	if err := <-acquired; err == nil {
		t.Log("TryAcquire completed before the delay took effect")
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// handoffClients is how many clients contend in BenchmarkHandoff.
const handoffClients = 8

// waitLock blocks until it holds a lock, and returns its release.
type waitLock func(ctx context.Context) (release func() error, err error)

// BenchmarkHandoff measures a lock contended by handoffClients clients,
// each with a connection of its own, looping: wait for the lock
// (Backend.Lock; the peer's blocking recipe), hold it for no time,
// release it. Reported: the handoff latency — from the holder's Release
// call to the next holder's Lock returning — p50, p90 and p99, in
// milliseconds and in round trips to the server, and the grants per
// second; baton's run first, then the peer's, each for -benchtime
// (at least 500ms; 2s by default). A round trip is the median time of the
// peer's acquire+release divided by its round trips (counted through a
// proxy), measured in the same run.
func BenchmarkHandoff(b *testing.B) {
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			measureOnce(b, func(b *testing.B) []metric { return benchHandoff(b, t) })
		})
	}
}

func benchHandoff(b *testing.B, t *target) []metric {
	s := newSite(b, t)
	d := 2 * time.Second
	if bd, ok := benchDuration(); ok {
		d = max(bd, 500*time.Millisecond)
	}
	v := map[string]float64{}
	if len(s.hosts) == 1 && t.name != "ipc" {
		v["rtt_s"] = roundTripTime(b, s).Seconds()
	}
	url := s.batonURL(false)
	var baton, peer []waitLock
	name := "handoff-" + fmt.Sprint(time.Now().UnixNano())
	for i := range handoffClients {
		be := openBackend(b, url, fmt.Sprint("client-", i))
		baton = append(baton, func(ctx context.Context) (func() error, error) {
			g, err := be.Lock(ctx, "handoff", backend.LockOptions{})
			if err != nil {
				return nil, err
			}
			return func() error { return g.Release(context.Background()) }, nil
		})
		if fe, ok := t.newElectPeer(b, s, false, name).(funcElector); ok {
			peer = append(peer, waitLock(fe))
		}
	}
	var ms []metric
	for _, side := range []struct {
		who   string
		locks []waitLock
	}{{"baton", baton}, {"peer", peer}} {
		if len(side.locks) == 0 {
			continue
		}
		hs, rate := handoffRun(b, side.who, side.locks, d)
		p50, p90, p99 := quantile(hs, 0.5), quantile(hs, 0.9), quantile(hs, 0.99)
		b.Logf("%s: %d clients, %.0f grants/s, handoff p50 %v p90 %v p99 %v (%d handoffs)", side.who, len(side.locks), rate, p50, p90, p99, len(hs))
		v[side.who+"_p50"], v[side.who+"_p90"], v[side.who+"_p99"] = p50.Seconds(), p90.Seconds(), p99.Seconds()
		v[side.who+"_rate"] = rate
		ms = append(ms, metric{rate, side.who + "-grants/s"}, metric{float64(p50.Microseconds()), side.who + "-p50-µs"},
			metric{float64(p90.Microseconds()), side.who + "-p90-µs"}, metric{float64(p99.Microseconds()), side.who + "-p99-µs"})
		if rtt := v["rtt_s"]; rtt > 0 {
			ms = append(ms, metric{p50.Seconds() / rtt, side.who + "-p50-RTT"})
		}
	}
	peerName := ""
	if len(peer) > 0 {
		peerName = t.electPeer
	}
	addRecord(record{Metric: "handoff", Target: t.name, Peer: peerName, Values: v})
	return ms
}

// handoffRun runs the clients locks for d and returns the handoff
// latencies and the grants per second.
func handoffRun(tb testing.TB, who string, locks []waitLock, d time.Duration) ([]time.Duration, float64) {
	var mu sync.Mutex
	var handoffs []time.Duration
	var releasing atomic.Int64 // unix ns of the last Release call, 0: none pending
	var grants atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for _, lock := range locks {
		wg.Go(func() {
			for ctx.Err() == nil {
				release, err := lock(ctx)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
						tb.Errorf("%s: lock: %v", who, err)
					}
					return
				}
				if at := releasing.Swap(0); at != 0 {
					h := time.Since(time.Unix(0, at))
					mu.Lock()
					handoffs = append(handoffs, h)
					mu.Unlock()
				}
				grants.Add(1)
				releasing.Store(time.Now().UnixNano())
				if err := release(); err != nil {
					tb.Errorf("%s: release: %v", who, err)
					return
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(handoffs)
	return handoffs, float64(grants.Load()) / d.Seconds()
}

// roundTripTime is the time of one round trip to s's server: the median
// time of the peer's acquire+release divided by its round trips.
func roundTripTime(tb testing.TB, s *site) time.Duration {
	trips := roundTrips(tb, s, "peer")
	op := s.t.newLockPeer(tb, s)
	ctx := context.Background()
	var ds []time.Duration
	for range 50 {
		t0 := time.Now()
		if err := op(ctx); err != nil {
			tb.Fatalf("peer: %v", err)
		}
		ds = append(ds, time.Since(t0))
	}
	return time.Duration(float64(medianDuration(ds)) / max(trips, 1))
}

package bench

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkLock measures uncontended lock acquire+release, baton against
// its Go peer and tooz on the same server, interleaved. Each round has
// two phases, taken in turn in an order that alternates from round to
// round: baton and the Go peer alternating bursts of about a millisecond
// of work for two slices (BATON_BENCH_SLICE, default 200ms), and tooz
// for one slice. Rounds: -benchtime divided by the slice, or N for
// -benchtime Nx. Ratios are the medians of the per-round ratios.
func BenchmarkLock(b *testing.B) {
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			measureOnce(b, func(b *testing.B) []metric {
				row, ms := benchLock(b, t, lockPlan{slice: lockSlice(b), rounds: lockRounds(b), tooz: true})
				addLockRow(row)
				return ms
			})
		})
	}
}

// burstLen is about how long one burst of a Go contender's operations
// lasts: bursts of baton and of the peer alternate.
const burstLen = time.Millisecond

// lockPlan is how a lock benchmark runs.
type lockPlan struct {
	slice  time.Duration // each contender's share of a round
	rounds int
	tooz   bool // compare with tooz too (where it has the driver)
}

// benchLock runs the lock benchmark of target t.
func benchLock(tb testing.TB, t *target, p lockPlan) (lockRow, []metric) {
	s := newSite(tb, t)
	ctx := context.Background()
	names := []string{"baton", t.lockPeer}
	ops := []lockOp{newBatonLocker(tb, s), t.newLockPeer(tb, s)}
	var tz *toozLocker
	if p.tooz && t.toozURL != nil {
		tz = newToozLocker(tb, t.toozURL(s))
	}
	// Warm up (connections, caches, the lock's path) and size the bursts.
	burst := make([]int, len(ops))
	for i, op := range ops {
		n, took, err := opLoop(ctx, op, p.slice/4)
		if err != nil {
			tb.Fatalf("%s: warm-up: %v", names[i], err)
		}
		burst[i] = max(1, int(float64(n)*float64(burstLen)/float64(took)))
	}
	if tz != nil {
		if _, _, err := tz.run(p.slice / 4); err != nil {
			tb.Fatalf("tooz: warm-up: %v", err)
		}
	}
	var rates [3][]float64 // ops/s of each round: baton, peer, tooz
	toozPhase := func(r int) {
		n, took, err := tz.run(p.slice)
		if err != nil {
			tb.Fatalf("tooz: round %d: %v", r, err)
		}
		rates[2] = append(rates[2], float64(n)/took.Seconds())
	}
	for r := range p.rounds {
		toozFirst := r%2 == 1
		if tz != nil && toozFirst {
			toozPhase(r)
		}
		var n [2]int
		var took [2]time.Duration
		deadline := time.Now().Add(2 * p.slice)
		for j := 0; j < 2 || time.Now().Before(deadline); j++ {
			i := (j + r) % 2
			t0 := time.Now()
			for range burst[i] {
				if err := ops[i](ctx); err != nil {
					tb.Fatalf("%s: round %d: %v", names[i], r, err)
				}
			}
			took[i] += time.Since(t0)
			n[i] += burst[i]
		}
		for i := range 2 {
			rates[i] = append(rates[i], float64(n[i])/took[i].Seconds())
		}
		if tz != nil && !toozFirst {
			toozPhase(r)
		}
	}
	row := lockRow{target: t.name, peer: t.lockPeer, rounds: p.rounds, baton: median(rates[0]), peerRate: median(rates[1])}
	row.vsPeer = ratios(rates[0], rates[1])
	ms := []metric{
		{1e9 / row.baton, "ns/op"},
		{row.baton, "baton-ops/s"},
		{row.peerRate, "peer-ops/s"},
		{median(row.vsPeer), "baton/peer"},
	}
	rec := record{Metric: "lock", Target: t.name, Peer: t.lockPeer, Values: map[string]float64{
		"baton_s": 1 / row.baton, "peer_s": 1 / row.peerRate, "rounds": float64(p.rounds)}}
	timeRatios(rec.Values, "vs_peer", rates[0], rates[1])
	if tz != nil {
		row.toozRate = median(rates[2])
		row.vsTooz = ratios(rates[0], rates[2])
		ms = append(ms, metric{row.toozRate, "tooz-ops/s"}, metric{median(row.vsTooz), "baton/tooz"})
		rec.Values["tooz_s"] = 1 / row.toozRate
		timeRatios(rec.Values, "vs_tooz", rates[0], rates[2])
	}
	if _, ok := tb.(*testing.B); ok {
		addRecord(rec)
	}
	return row, ms
}

// ratios returns a[i]/b[i] for every round.
func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

// lockSlice is each contender's share of a round (BATON_BENCH_SLICE).
func lockSlice(tb testing.TB) time.Duration {
	v := os.Getenv("BATON_BENCH_SLICE")
	if v == "" {
		return 200 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond {
		tb.Fatalf("BATON_BENCH_SLICE=%q: want a duration of 1ms or more", v)
	}
	return d
}

// lockRounds is the number of rounds: -benchtime / slice, or N for
// -benchtime Nx (at least 1).
func lockRounds(tb testing.TB) int {
	if d, ok := benchDuration(); ok {
		return max(1, int(d/lockSlice(tb)))
	}
	if n, ok := strings.CutSuffix(benchtime(), "x"); ok {
		if k, err := strconv.Atoi(n); err == nil && k > 0 {
			return k
		}
	}
	return max(1, int(time.Second/lockSlice(tb)))
}

// benchtime is the -benchtime flag as given ("1s" by default).
func benchtime() string {
	if f := flag.Lookup("test.benchtime"); f != nil {
		return f.Value.String()
	}
	return "1s"
}

// benchDuration is -benchtime when it is a duration.
func benchDuration() (time.Duration, bool) {
	d, err := time.ParseDuration(benchtime())
	return d, err == nil
}

// metric is one value for testing.B.ReportMetric.
type metric struct {
	v    float64
	unit string
}

// measured keeps each sub-benchmark's metrics: the testing package runs a
// benchmark function again, with a larger b.N, when a run was shorter
// than -benchtime (or for -benchtime Nx), and each of these measurements
// is one self-timed run, not a per-iteration cost.
var measured sync.Map // *testing.B → []metric

// measureOnce runs measure the first time b runs, and reports its
// metrics every time.
func measureOnce(b *testing.B, measure func(b *testing.B) []metric) {
	v, ok := measured.Load(b)
	if !ok {
		v = measure(b)
		measured.Store(b, v)
		// Idle out the rest of -benchtime, so that this run is the only
		// one (a shorter run is repeated with a larger b.N).
		if d, ok := benchDuration(); ok && b.Elapsed() < d {
			time.Sleep(d - b.Elapsed())
		}
	}
	for _, m := range v.([]metric) {
		b.ReportMetric(m.v, m.unit)
	}
}

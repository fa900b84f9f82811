package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// lockRow is the result of one driver's lock benchmark.
type lockRow struct {
	target, peer    string
	rounds          int
	baton, peerRate float64 // median ops/s of the rounds
	toozRate        float64 // 0: no tooz for this driver
	vsPeer, vsTooz  []float64
}

// takeoverRow is the result of one driver's takeover benchmark of one
// kind (graceful or crash).
type takeoverRow struct {
	target, kind, peer string
	ttl                time.Duration
	baton, peerTimes   []time.Duration // peerTimes empty: no peer
	vsPeer             []float64       // baton/peer of each round
}

// results collects every benchmark's rows for the summary printed at the
// end of the run. Benchmarks run one at a time, but the lock keeps it
// honest.
var results struct {
	sync.Mutex
	locks     []lockRow
	takeovers []takeoverRow
}

func addLockRow(r lockRow) {
	results.Lock()
	defer results.Unlock()
	results.locks = append(results.locks, r)
}

func addTakeoverRow(r takeoverRow) {
	results.Lock()
	defer results.Unlock()
	results.takeovers = append(results.takeovers, r)
}

// median returns the median of xs (NaN when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// quantile returns the q-quantile of ds by nearest rank (0 when empty).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// medianDuration returns the median of ds (0 when empty).
func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	if len(fs) == 0 {
		return 0
	}
	return time.Duration(median(fs))
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// rate formats ops/s.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f k", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// ratio formats the median of rs with its range.
func ratio(rs []float64) string {
	if len(rs) == 0 {
		return "—"
	}
	return fmt.Sprintf("**%s** (%s–%s)", num(median(rs)), num(slices.Min(rs)), num(slices.Max(rs)))
}

// num formats a ratio with 2 significant digits or more.
func num(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// writeReport prints every collected result as markdown tables.
func writeReport(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.locks) == 0 && len(results.takeovers) == 0 {
		return
	}
	var b strings.Builder
	if len(results.locks) > 0 {
		b.WriteString("\n### Uncontended lock acquire+release (ops/s; ratio > 1: baton is faster)\n\n")
		b.WriteString("Rates and ratios are the medians of the rounds (ratios: of the per-round ratios; their range in parentheses).\n\n")
		b.WriteString("| driver | baton ops/s | peer | peer ops/s | baton/peer | tooz ops/s | baton/tooz | rounds |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|\n")
		for _, r := range results.locks {
			tooz := "—"
			if r.toozRate > 0 {
				tooz = rate(r.toozRate)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d |\n",
				r.target, rate(r.baton), r.peer, rate(r.peerRate), ratio(r.vsPeer), tooz, ratio(r.vsTooz), r.rounds)
		}
	}
	if len(results.takeovers) > 0 {
		b.WriteString("\n### Leadership takeover: from resignation or crash until the successor's work starts (ratio < 1: baton is faster)\n\n")
		b.WriteString("Rounds alternate between baton and the peer; the ratio is the median of the per-round ratios (range in parentheses).\n\n")
		b.WriteString("| driver | kind | TTL | baton p50 | baton p90 | peer | peer p50 | peer p90 | baton/peer | rounds |\n")
		b.WriteString("|---|---|---:|---:|---:|---|---:|---:|---:|---:|\n")
		for _, r := range results.takeovers {
			ttl := "—"
			if r.ttl > 0 {
				ttl = r.ttl.String()
			}
			peer, p50, p90, rat := "—", "—", "—", "—"
			if len(r.peerTimes) > 0 {
				peer, p50, p90 = r.peer, ms(medianDuration(r.peerTimes)), ms(quantile(r.peerTimes, 0.9))
				rat = ratio(r.vsPeer)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
				r.target, r.kind, ttl, ms(medianDuration(r.baton)), ms(quantile(r.baton, 0.9)), peer, p50, p90, rat, len(r.baton))
		}
		b.WriteString("\ngraceful: the leader's context is cancelled (election.Run resigns; the peer releases).\n" +
			"crash: the leader's process is killed with SIGKILL (mem://: its session is cut off and expired); " +
			"with a TTL the kill strikes at a random point of the renewal period (a third of the TTL), " +
			"so the takeover lies between two thirds of the TTL and the TTL, plus the time to notice.\n")
	}
	_, _ = io.WriteString(w, b.String())
}

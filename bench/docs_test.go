package bench

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// reportEnv names the markdown file the run's results are merged into
// (make bench: docs/performance.md). Next to it go the results themselves
// (performance.json: rows of earlier runs stay until a run measures them
// again, so that a run of one backend updates its rows only) and the
// chart (performance.svg).
const reportEnv = "BATON_BENCH_REPORT"

// record is one row of the report: one metric of one target (and kind),
// with its figures by name.
type record struct {
	Metric string             `json:"metric"` // lock, lockop, takeover, handoff
	Target string             `json:"target"`
	Kind   string             `json:"kind,omitempty"` // takeover: graceful or crash
	Peer   string             `json:"peer,omitempty"`
	Values map[string]float64 `json:"values"`
	Date   string             `json:"date"` // when it was measured (UTC)
}

func (r record) id() string { return r.Metric + "\x00" + r.Target + "\x00" + r.Kind }

// machine describes where a run measured.
type machine struct {
	CPU     string  `json:"cpu"`
	Cores   int     `json:"cores"`
	OS      string  `json:"os"`
	Go      string  `json:"go"`
	Load    float64 `json:"load"` // 1-minute load average at the end of the run
	Date    string  `json:"date"`
	Command string  `json:"command"`
}

// stored is the results file.
type stored struct {
	Machine machine  `json:"machine"`
	Records []record `json:"records"`
}

var records struct {
	sync.Mutex
	rs []record
}

// addRecord keeps r for the report file.
func addRecord(r record) {
	r.Date = time.Now().UTC().Format("2006-01-02 15:04")
	records.Lock()
	defer records.Unlock()
	for i, o := range records.rs {
		if o.id() == r.id() {
			for k, v := range r.Values {
				o.Values[k] = v
			}
			records.rs[i].Peer = cmp.Or(r.Peer, o.Peer)
			return
		}
	}
	records.rs = append(records.rs, r)
}

// timeRatios returns the per-round time ratios (baton time ÷ other time)
// of per-round rates, with their median and range under key.
func timeRatios(v map[string]float64, key string, baton, other []float64) {
	rs := ratios(other, baton)
	if len(rs) == 0 {
		return
	}
	v[key], v[key+"_min"], v[key+"_max"] = median(rs), slices.Min(rs), slices.Max(rs)
}

// thisMachine describes the machine of this run.
func thisMachine() machine {
	m := machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Command: "go test -bench ... -benchtime " + benchtime()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscanf(string(b), "%f", &m.Load)
	}
	return m
}

// saveReport merges this run's records into the results file next to
// path, and writes the markdown report (path) and its chart from all of
// them (a run that measured nothing, `go test -run '^$' ./bench/`,
// rewrites them from the results file).
func saveReport(path string) error {
	records.Lock()
	run := slices.Clone(records.rs)
	records.Unlock()
	base := strings.TrimSuffix(path, filepath.Ext(path))
	var st stored
	if b, err := os.ReadFile(base + ".json"); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s.json: %w", base, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(run) == 0 && len(st.Records) == 0 {
		return nil
	}
	fresh := map[string]bool{}
	for _, r := range run {
		fresh[r.id()] = true
	}
	st.Records = slices.DeleteFunc(st.Records, func(r record) bool { return fresh[r.id()] })
	st.Records = append(st.Records, run...)
	order := map[string]int{}
	for i, t := range targets {
		order[t.name] = i
	}
	slices.SortStableFunc(st.Records, func(a, b record) int {
		// graceful before crash
		return cmp.Or(cmp.Compare(order[a.Target], order[b.Target]), -cmp.Compare(a.Kind, b.Kind))
	})
	if len(run) > 0 {
		st.Machine = thisMachine()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".svg", chart(st.Records), 0o644); err != nil {
		return err
	}
	return os.WriteFile(path, markdown(st, filepath.Base(base)+".svg"), 0o644)
}

// of returns the records of one metric.
func of(rs []record, metric string) []record {
	var out []record
	for _, r := range rs {
		if r.Metric == metric {
			out = append(out, r)
		}
	}
	return out
}

// µs formats a duration given in seconds.
func µs(sec float64) string {
	if sec <= 0 || math.IsNaN(sec) {
		return "—"
	}
	return dur(time.Duration(sec * 1e9))
}

// dur formats d in ns, µs or ms, with 2 or 3 significant digits.
func dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
	return ms(d)
}

// rng formats a ratio's median and range.
func rng(v map[string]float64, k string) string {
	med, ok := v[k]
	if !ok || math.IsNaN(med) {
		return "—"
	}
	return fmt.Sprintf("**%s** (%s–%s)", num(med), num(v[k+"_min"]), num(v[k+"_max"]))
}

// markdown renders the report.
func markdown(st stored, svg string) []byte {
	var b bytes.Buffer
	m := st.Machine
	b.WriteString("# Performance\n\n")
	b.WriteString("Generated by `make bench` (the benchmarks of `bench/`, see its package documentation); " +
		"`make bench BENCH=redis` measures one backend again and keeps the other rows. " +
		"Every figure is measured side by side with the peer in the same run, interleaved, so that " +
		"the load of the machine weighs on both alike: compare the ratios, not the absolute figures " +
		"across rows. Ratios are baton's time ÷ the peer's time: **lower is better, below 1 baton is faster**.\n\n")
	fmt.Fprintf(&b, "Machine of the last run: %s, %d logical CPUs, %s, %s; load average %.1f at its end (the machine is shared: "+
		"absolute times include waiting for a CPU). Last run: %s.\n\n", cmp.Or(m.CPU, "unknown CPU"), m.Cores, m.OS, m.Go, m.Load, m.Date)
	fmt.Fprintf(&b, "![acquire+release latency per backend](%s)\n\n", svg)

	if rs := of(st.Records, "lock"); len(rs) > 0 {
		b.WriteString("## Uncontended lock acquire+release\n\n")
		b.WriteString("One `lock.Lock`'s TryAcquire then Release, against the best Go recipe on the same server and against tooz " +
			"(the Python library, same server), in alternating bursts; time per acquire+release, the median of the rounds; " +
			"ratio: median of the per-round ratios (range).\n\n")
		b.WriteString("| backend | baton | peer | peer time | baton ÷ peer | tooz time | baton ÷ tooz | rounds |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f |\n", r.Target, µs(v["baton_s"]), r.Peer, µs(v["peer_s"]),
				rng(v, "vs_peer"), µs(v["tooz_s"]), rng(v, "vs_tooz"), v["rounds"])
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "lockop"); len(rs) > 0 {
		b.WriteString("## Cost of one acquire+release\n\n")
		b.WriteString("Each contender alone (`BenchmarkLockOp`): allocations and bytes per operation in this process, " +
			"and round trips per operation counted by a proxy between the client and the server " +
			"(a request answered; requests pipelined together count once; `—` for local backends). " +
			"Time per operation is not compared here (not interleaved); see the table above.\n\n")
		b.WriteString("| backend | baton round trips | peer round trips | baton allocs | peer allocs | baton bytes | peer bytes | peer |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
		for _, r := range rs {
			v := r.Values
			trips := func(k string) string {
				if x, ok := v[k]; ok && x >= 0 {
					return fmt.Sprintf("%.2g", x)
				}
				return "—"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %s |\n", r.Target, trips("baton_trips"), trips("peer_trips"),
				v["baton_allocs"], v["peer_allocs"], v["baton_bytes"], v["peer_bytes"], r.Peer)
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "handoff"); len(rs) > 0 {
		b.WriteString("## Contended handoff\n\n")
		fmt.Fprintf(&b, "%d clients, each with a connection of its own, loop on one lock: wait for it, hold it for no time, release it. "+
			"Handoff: from the holder's Release call to the next holder's Lock returning; in milliseconds and in round trips to "+
			"the server (one round trip: the median time of a one-request operation of the peer's client on the same server, "+
			"measured in the same run).\n\n", handoffClients)
		b.WriteString("| backend | round trip | baton p50 | p90 | p99 | baton grants/s | peer | peer p50 | p90 | p99 | peer grants/s |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			rt := func(k string) string {
				switch {
				case v[k] <= 0:
					return "—"
				case v["rtt_s"] <= 0:
					return µs(v[k])
				}
				return fmt.Sprintf("%s (%.1f RTT)", µs(v[k]), v[k]/v["rtt_s"])
			}
			peer := cmp.Or(r.Peer, "—")
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %.0f |\n", r.Target, µs(v["rtt_s"]),
				rt("baton_p50"), rt("baton_p90"), rt("baton_p99"), v["baton_rate"], peer, rt("peer_p50"), rt("peer_p90"), rt("peer_p99"), v["peer_rate"])
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "takeover"); len(rs) > 0 {
		b.WriteString("## Leadership takeover\n\n")
		b.WriteString("From the leader's resignation (graceful: its `election.Run` context is cancelled; the peer releases) or its " +
			"crash (SIGKILL of its process; on mem:// its session is cut off) until the successor's work starts; rounds alternate " +
			"between baton and the peer. Crash takeover on a TTL or session-timeout backend is bounded by that timeout " +
			"(the crash rounds use a 2s TTL; the kill strikes at a random point of the renewal period).\n\n")
		b.WriteString("| backend | kind | TTL | baton p50 | baton p90 | baton p99 | peer | peer p50 | peer p90 | peer p99 | baton ÷ peer | rounds |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			ttl := "—"
			if v["ttl_s"] > 0 {
				ttl = time.Duration(v["ttl_s"] * 1e9).String()
			}
			peer := "—"
			if v["peer_p50"] > 0 {
				peer = r.Peer
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f |\n", r.Target, r.Kind, ttl,
				µs(v["baton_p50"]), µs(v["baton_p90"]), µs(v["baton_p99"]), peer, µs(v["peer_p50"]), µs(v["peer_p90"]), µs(v["peer_p99"]),
				rng(v, "vs_peer"), v["rounds"])
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "watch"); len(rs) > 0 {
		b.WriteString("## Membership watch latency\n\n")
		fmt.Fprintf(&b, "`BenchmarkWatch`: one Backend watches a group, another joins and leaves it %d times (%d where watches poll); from the start of the "+
			"Join (or Leave) call, its own round trips included, until the watcher receives the joined (or left) event. "+
			"Push backends deliver within a round trip or two of the change; polling ones within their poll interval "+
			"(the driver's default).\n\n", watchRounds, pollRounds)
		b.WriteString("| backend | join p50 | join p99 | leave p50 | leave p99 | rounds |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f |\n", r.Target, µs(v["join_p50"]), µs(v["join_p99"]),
				µs(v["leave_p50"]), µs(v["leave_p99"]), v["rounds"])
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "rebalance"); len(rs) > 0 {
		b.WriteString("## Partitioner rebalance\n\n")
		b.WriteString("`BenchmarkRebalance`: members of one group run a `partitioner.Partitioner` in Exclusive mode " +
			"(each partition a lock). From a membership change until every partition is owned exactly once again by " +
			"the member the assignment names: a member joins; it leaves (Close); it is killed (SIGKILL of its " +
			"process; on mem:// its session is cut off and expired). A kill is noticed when the member's session " +
			"or lease ends, so its time is bounded by the TTL.\n\n")
		b.WriteString("| backend | members × partitions | join p50 | join p90 | leave p50 | leave p90 | TTL | kill p50 | kill p90 | rounds (kills) |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			ttl := "—"
			if v["ttl_s"] > 0 {
				ttl = time.Duration(v["ttl_s"] * 1e9).String()
			}
			fmt.Fprintf(&b, "| %s | %.0f × %.0f | %s | %s | %s | %s | %s | %s | %s | %.0f (%.0f) |\n", r.Target, v["members"], v["parts"],
				µs(v["join_p50"]), µs(v["join_p90"]), µs(v["leave_p50"]), µs(v["leave_p90"]), ttl, µs(v["kill_p50"]), µs(v["kill_p90"]),
				v["rounds"], v["kill_rounds"])
		}
		b.WriteString("\n")
	}
	if rs := of(st.Records, "balance"); len(rs) > 0 {
		b.WriteString("## Partitioner balance\n\n")
		b.WriteString("`BenchmarkBalance`: P partitions over N members of random names (the same sets every run), for the " +
			"default Balanced assignment and for Ring (tooz's placement). max/mean: the worst member's load over the mean, " +
			"worst set; idle sets: sets leaving a member with nothing while P ≥ N; moved/optimum: partitions that change " +
			"owner on one join plus one leave per set, over the least that must (the newcomer's share and the leaver's).\n\n")
		b.WriteString("| P | N | sets | balanced max/mean | idle sets | moved/optimum | ring max/mean | ring idle sets | ring moved/optimum |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			v := r.Values
			fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.2f | %.0f | %.3f | %.2f | %.0f/%.0f | %.3f |\n", v["parts"], v["members"], v["sets"],
				v["max_over_mean"], v["idle_sets"], v["moved_over_opt"], v["ring_max_over_mean"], v["ring_idle_sets"], v["ring_sets"], v["ring_moved_over_opt"])
		}
		b.WriteString("\n")
	}
	scaleSection(&b, st.Records)
	dates := map[string]bool{}
	for _, r := range st.Records {
		dates[r.Date[:10]] = true
	}
	if len(dates) > 1 {
		ds := slices.Sorted(func(yield func(string) bool) {
			for d := range dates {
				if !yield(d) {
					return
				}
			}
		})
		fmt.Fprintf(&b, "Rows were measured on %s (performance.json has each row's time).\n", strings.Join(ds, ", "))
	}
	return b.Bytes()
}

// scaleSection writes the scale tables (BenchmarkScaleLocks,
// BenchmarkScaleMembers, BenchmarkScaleBackends), where measured.
func scaleSection(b *bytes.Buffer, rs []record) {
	locks, members, backends := of(rs, "scale-locks"), of(rs, "scale-members"), of(rs, "scale-backends")
	if len(locks)+len(members)+len(backends) == 0 {
		return
	}
	b.WriteString("## Scale per process\n\n")
	b.WriteString("What one process pays to hold many grants, to watch a large group and to run many Backends " +
		"(`BenchmarkScaleLocks`, `BenchmarkScaleMembers`, `BenchmarkScaleBackends`, run once each). Heap: the live heap " +
		"after a collection, its growth divided by the count; goroutines: the process's, likewise.\n\n")
	if len(locks) > 0 {
		b.WriteString("**Many locks, one Backend** (3 s leases where the driver has them, renewed every second). Requests per renewal period: " +
			"refresh requests sent (a batch counts once), the lease refreshes they carry, and the session's renewals; " +
			"drivers whose locks ride the session (etcd3's lease, ZooKeeper's session) refresh nothing per lock.\n\n")
		b.WriteString("| backend | locks | heap per grant | goroutines per grant | goroutines in all | refresh requests / period | lease refreshes / period | session renewals / period | lost | acquire all | release all |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range locks {
			v := r.Values
			fmt.Fprintf(b, "| %s | %.0f | %.0f B | %.4f | %.0f | %.1f | %.1f | %.1f | %.0f | %s | %s |\n", r.Target, v["locks"],
				v["heap_per_grant"], v["goroutines_per_grant"], v["goroutines"], v["refresh_requests"], v["lease_refreshes"],
				v["session_renewals"], v["lost"], µs(v["acquire_s"]), µs(v["release_s"]))
		}
		b.WriteString("\n")
	}
	if len(members) > 0 {
		b.WriteString("**A large group.** Members (each its own Backend) join one group, 32 at a time, while another " +
			"Backend watches it: the time until every join returned, until the watcher has seen every member " +
			"(from the first join), and the heap the watcher retains (measured by closing it).\n\n")
		b.WriteString("| backend | members | all joined | watcher saw all | watcher heap | per member |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|\n")
		for _, r := range members {
			v := r.Values
			fmt.Fprintf(b, "| %s | %.0f | %s | %s | %.0f KiB | %.0f B |\n", r.Target, v["members"], µs(v["joined_s"]), µs(v["seen_s"]),
				v["watcher_bytes"]/1024, v["watcher_bytes"]/max(v["members"], 1))
		}
		b.WriteString("\n")
	}
	if len(backends) > 0 {
		b.WriteString("**Many Backends in one process** (a sidecar serving many tenants): goroutines and heap per " +
			"Backend, idle and holding one lock each.\n\n")
		b.WriteString("| backend | Backends | goroutines each, idle | heap each, idle | goroutines each, one lock | heap each, one lock |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|\n")
		for _, r := range backends {
			v := r.Values
			fmt.Fprintf(b, "| %s | %.0f | %.1f | %.0f KiB | %.1f | %.0f KiB |\n", r.Target, v["backends"], v["goroutines_idle"],
				v["heap_idle"]/1024, v["goroutines_locked"], v["heap_locked"]/1024)
		}
		b.WriteString("\n")
	}
}

// chart draws acquire+release latency per backend, baton against its
// peer and tooz, as horizontal bars on a logarithmic axis (SVG).
func chart(rs []record) []byte {
	rows := of(rs, "lock")
	const (
		left, right, top, barH, gap, width = 110.0, 30.0, 50.0, 9.0, 10.0, 760.0
	)
	series := []struct{ key, label, color string }{
		{"baton_s", "baton", "#1f77b4"}, {"peer_s", "best Go peer", "#ff7f0e"}, {"tooz_s", "tooz (Python)", "#2ca02c"},
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		for _, s := range series {
			if v := r.Values[s.key]; v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if len(rows) == 0 || math.IsInf(lo, 0) {
		lo, hi = 1e-6, 1e-3
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	plotW := width - left - right
	x := func(v float64) float64 {
		return left + plotW*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	groupH := barH*float64(len(series)) + gap
	height := top + groupH*float64(len(rows)) + 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="13" font-weight="bold">Uncontended lock acquire+release, time per operation (log scale; shorter is faster)</text>`+"\n", left)
	for i, s := range series {
		lx := left + float64(i)*150
		fmt.Fprintf(&b, `<rect x="%.0f" y="28" width="10" height="10" fill="%s"/><text x="%.0f" y="37">%s</text>`+"\n", lx, s.color, lx+14, s.label)
	}
	axisY := top + groupH*float64(len(rows))
	for d := lo; d <= hi*1.0001; d *= 10 {
		gx := x(d)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`+"\n", gx, top-4, gx, axisY)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx, axisY+14, html(tick(d)))
	}
	for i, r := range rows {
		gy := top + groupH*float64(i)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, gy+barH*1.5+4, html(r.Target))
		for j, s := range series {
			v := r.Values[s.key]
			if v <= 0 {
				continue
			}
			y := gy + barH*float64(j)
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				left, y, math.Max(1, x(v)-left), barH-1, s.color, html(r.Target), s.label, html(dur(time.Duration(v*1e9))))
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#555">Each backend against the best Go recipe on the same server (see performance.md).</text>`+"\n", left, axisY+32)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// tick labels a power of ten of seconds.
func tick(sec float64) string {
	switch {
	case sec < 1e-6:
		return fmt.Sprintf("%g ns", math.Round(sec*1e9))
	case sec < 1e-3:
		return fmt.Sprintf("%g µs", math.Round(sec*1e6))
	case sec < 1:
		return fmt.Sprintf("%g ms", math.Round(sec*1e3))
	}
	return fmt.Sprintf("%g s", math.Round(sec))
}

// html escapes s for SVG text.
func html(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

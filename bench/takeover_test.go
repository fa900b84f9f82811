package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/internal/testutil"
)

// settle is how long a successor campaigns before the leader goes, so
// that its request is queued on the server when the measurement starts.
// It is part of the set-up, not of the measurement.
const settle = 250 * time.Millisecond

// waitLimit bounds every wait of a round beyond the crash TTL.
const waitLimit = 60 * time.Second

// BenchmarkTakeover measures how long a group is without a working
// leader, baton (election.Run) against the peer's recipe, in alternating
// rounds (BATON_BENCH_ROUNDS per side, default 10):
//
//   - graceful: the leader's context is cancelled (it resigns); until the
//     successor's work function starts;
//   - crash: the leader's process is killed with SIGKILL (on mem:// its
//     session is cut off and expired); until the successor's work starts.
//     Server drivers use a 2s lease or session timeout here, and the kill
//     strikes at a random point of the leader's renewal period.
func BenchmarkTakeover(b *testing.B) {
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			for _, crash := range []bool{false, true} {
				b.Run(kindName(crash), func(b *testing.B) {
					measureOnce(b, func(b *testing.B) []metric {
						rounds := takeoverRounds(b)
						if !crash {
							// Graceful rounds are short: enough of them for a p90.
							rounds = max(rounds, 8)
						}
						row, ms := benchTakeover(b, t, crash, rounds)
						addTakeoverRow(row)
						return ms
					})
				})
			}
		})
	}
}

// side is one contender of the takeover benchmark: baton or the peer.
type side struct {
	peer  bool
	url   string // baton's connection string (baton only)
	name  string // the peer's lock or election name (peer only)
	crash bool   // use the crash rounds' TTL
}

// label is "baton" or "peer".
func (sd side) label() string {
	if sd.peer {
		return "peer"
	}
	return "baton"
}

// candidate returns a new candidate of the side, with a connection of
// its own, as member.
func (sd side) candidate(tb testing.TB, s *site, member string) elector {
	if !sd.peer {
		return newBatonElector(tb, sd.url, member, "leader")
	}
	return s.t.newElectPeer(tb, s, sd.crash, sd.name)
}

// kindName names a kind of takeover.
func kindName(crash bool) string {
	if crash {
		return "crash"
	}
	return "graceful"
}

// benchTakeover runs rounds takeover rounds of each side on target t.
func benchTakeover(b testing.TB, t *target, crash bool, rounds int) (takeoverRow, []metric) {
	s := newSite(b, t)
	sides := []side{{url: s.batonURL(crash), crash: crash}}
	if !crash || t.crashPeer {
		sides = append(sides, side{peer: true, name: "bench-" + testutil.Unique(), crash: crash})
	}
	times := make([][]time.Duration, len(sides))
	// Graceful rounds: two candidates per side, taking turns as leader.
	// Crash rounds: one successor per side; the leader is new each round.
	n := 2
	if crash {
		n = 1
	}
	cands := make([][]elector, len(sides))
	for i, sd := range sides {
		for k := range n {
			cands[i] = append(cands[i], sd.candidate(b, s, fmt.Sprintf("cand-%d", k)))
		}
	}
	for r := range rounds {
		// A crash on a TTL backend strikes at a random point of the
		// leader's renewal period (a third of the TTL), the same for both
		// sides of a round.
		var phase time.Duration
		if crash && t.ttl() > 0 {
			phase = rand.N(t.ttl() / 3)
		}
		for k := range sides {
			i := (k + r) % len(sides)
			var d time.Duration
			switch {
			case !crash:
				d = gracefulRound(b, cands[i][r%2], cands[i][(r+1)%2])
			case t.memFault:
				d = memCrashRound(b, s, sides[i], cands[i][0], r)
			default:
				d = childCrashRound(b, s, sides[i], cands[i][0], r, phase)
			}
			times[i] = append(times[i], d)
		}
	}
	for i, ts := range times {
		b.Logf("%s rounds: %v", sides[i].label(), ts)
	}
	row := takeoverRow{target: t.name, kind: kindName(crash), peer: t.electPeer, baton: times[0]}
	if crash {
		row.ttl = t.ttl()
	}
	msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50 := medianDuration(row.baton)
	ms := []metric{
		{float64(p50), "ns/op"},
		{msOf(p50), "baton-p50-ms"},
		{msOf(quantile(row.baton, 0.9)), "baton-p90-ms"},
	}
	if len(times) > 1 {
		row.peerTimes = times[1]
		pp50 := medianDuration(row.peerTimes)
		for r := range row.baton {
			row.vsPeer = append(row.vsPeer, float64(row.baton[r])/float64(row.peerTimes[r]))
		}
		ms = append(ms, metric{msOf(pp50), "peer-p50-ms"}, metric{msOf(quantile(row.peerTimes, 0.9)), "peer-p90-ms"},
			metric{median(row.vsPeer), "baton/peer"})
	}
	if row.ttl > 0 {
		ms = append(ms, metric{row.ttl.Seconds(), "ttl-s"})
	}
	if _, ok := b.(*testing.B); ok {
		v := map[string]float64{"baton_p50": p50.Seconds(), "baton_p90": quantile(row.baton, 0.9).Seconds(),
			"baton_p99": quantile(row.baton, 0.99).Seconds(), "ttl_s": row.ttl.Seconds(), "rounds": float64(rounds)}
		if len(row.peerTimes) > 0 {
			v["peer_p50"], v["peer_p90"] = medianDuration(row.peerTimes).Seconds(), quantile(row.peerTimes, 0.9).Seconds()
			v["peer_p99"] = quantile(row.peerTimes, 0.99).Seconds()
			v["vs_peer"], v["vs_peer_min"], v["vs_peer_max"] = median(row.vsPeer), slices.Min(row.vsPeer), slices.Max(row.vsPeer)
		}
		addRecord(record{Metric: "takeover", Target: t.name, Kind: row.kind, Peer: t.electPeer, Values: v})
	}
	return row, ms
}

// takeoverRounds is BATON_BENCH_ROUNDS (default 10).
func takeoverRounds(tb testing.TB) int {
	v := os.Getenv("BATON_BENCH_ROUNDS")
	if v == "" {
		return 10
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("BATON_BENCH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

// running is a candidate campaigning or leading in the background.
type running struct {
	cancel  context.CancelFunc
	started chan time.Time
	done    chan error
}

// start runs e.lead in the background; it is cancelled when tb ends.
func start(tb testing.TB, e elector) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, started: make(chan time.Time, 1), done: make(chan error, 1)}
	go func() { r.done <- e.lead(ctx, func(t time.Time) { r.started <- t }) }()
	tb.Cleanup(cancel)
	return r
}

// waitStarted returns when the candidate's work started, failing tb
// when it does not within d.
func (r *running) waitStarted(tb testing.TB, d time.Duration, who string) time.Time {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case t := <-r.started:
		return t
	case err := <-r.done:
		tb.Fatalf("%s ended without leading: %v", who, err)
	case <-timer.C:
		tb.Fatalf("%s did not lead within %v", who, d)
	}
	return time.Time{}
}

// notStarted fails tb if the candidate starts leading within d.
func (r *running) notStarted(tb testing.TB, d time.Duration, who string) {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-r.started:
		tb.Fatalf("%s led while the leader was alive", who)
	case err := <-r.done:
		tb.Fatalf("%s ended while campaigning: %v", who, err)
	case <-timer.C:
	}
}

// stop cancels the candidate and waits until it returned; lead's error
// is reported unless ignoreErr.
func (r *running) stop(tb testing.TB, who string, ignoreErr bool) {
	tb.Helper()
	r.cancel()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case err := <-r.done:
		if err != nil && !ignoreErr {
			tb.Fatalf("%s: %v", who, err)
		}
	case <-timer.C:
		tb.Fatalf("%s did not stop within %v", who, waitLimit)
	}
}

// gracefulRound lets leader lead with successor campaigning, then
// cancels the leader, and returns the time from the cancellation until
// the successor's work started.
func gracefulRound(tb testing.TB, leader, successor elector) time.Duration {
	tb.Helper()
	l := start(tb, leader)
	l.waitStarted(tb, waitLimit, "leader")
	s := start(tb, successor)
	s.notStarted(tb, settle, "successor")
	t0 := time.Now()
	l.cancel()
	t1 := s.waitStarted(tb, waitLimit, "successor")
	l.stop(tb, "leader", false)
	s.stop(tb, "successor", false)
	return t1.Sub(t0)
}

// memCrashRound opens a leader on the side's mem:// store, cuts it off
// and expires its session once successor campaigns, and returns the time
// from the fault until the successor's work started.
func memCrashRound(tb testing.TB, st *site, sd side, successor elector, round int) time.Duration {
	tb.Helper()
	member := fmt.Sprintf("crashed-%d", round)
	store := strings.TrimPrefix(sd.url, "mem://")
	l := start(tb, sd.candidate(tb, st, member))
	l.waitStarted(tb, waitLimit, "leader")
	s := start(tb, successor)
	s.notStarted(tb, settle, "successor")
	t0 := time.Now()
	if err := membackend.SetUnreachable(store, member, true); err != nil {
		tb.Fatal(err)
	}
	if err := membackend.ExpireSession(store, member); err != nil {
		tb.Fatal(err)
	}
	t1 := s.waitStarted(tb, waitLimit, "successor")
	l.stop(tb, "crashed leader", true) // it ends with its session lost
	s.stop(tb, "successor", false)
	return t1.Sub(t0)
}

// childCrashRound starts a leader in a child process, kills it with
// SIGKILL once successor campaigns and phase more has passed, and returns
// the time from the signal until the successor's work started.
func childCrashRound(tb testing.TB, st *site, sd side, successor elector, round int, phase time.Duration) time.Duration {
	tb.Helper()
	events := make(chan testutil.Event, 16)
	kind := sd.label()
	name := fmt.Sprintf("leader-%s-%d", kind, round)
	child := testutil.StartChild(tb, name, "TestHelperLeader", []string{
		"BENCH_TARGET=" + st.t.name, "BENCH_SIDE=" + kind, "BENCH_URL=" + sd.url, "BENCH_NAME=" + sd.name,
		"BENCH_SERVER_URL=" + st.url, "BENCH_DIR=" + st.dir,
	}, events)
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for led := false; !led; {
		select {
		case ev := <-events:
			switch ev.Kind {
			case "start":
				led = true
			case "error":
				tb.Fatalf("leader process %s: %s", name, ev.Note)
			}
		case <-timer.C:
			tb.Fatalf("leader process %s did not lead within %v", name, waitLimit)
		}
	}
	s := start(tb, successor)
	s.notStarted(tb, settle+phase, "successor")
	killedAt := child.Kill()
	t1 := s.waitStarted(tb, st.t.ttl()+waitLimit, "successor")
	s.stop(tb, "successor", false)
	return t1.Sub(killedAt)
}

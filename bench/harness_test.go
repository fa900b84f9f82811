package bench

import (
	"math"
	"testing"
	"time"
)

// TestHarness runs the benchmarks' machinery briefly on mem:// and
// file://, which need no server, so that `go test` exercises it: the
// contenders, the interleaving, the takeover rounds (the file:// crash
// round kills a leader process) and the report. It checks that every
// figure is a finite positive number, never how large it is.
func TestHarness(t *testing.T) {
	for _, name := range []string{"mem", "file"} {
		tg := targetNamed(name)
		t.Run(name+"/lock", func(t *testing.T) {
			row, ms := benchLock(t, tg, lockPlan{slice: 20 * time.Millisecond, rounds: 2})
			checkMetrics(t, ms)
			if row.rounds != 2 || len(row.vsPeer) != 2 || row.toozRate != 0 {
				t.Errorf("row = %+v, want 2 rounds against the peer only", row)
			}
		})
		for _, crash := range []bool{false, true} {
			t.Run(name+"/takeover/"+kindName(crash), func(t *testing.T) {
				row, ms := benchTakeover(t, tg, crash, 1)
				checkMetrics(t, ms)
				wantPeer := !crash || tg.crashPeer
				if len(row.baton) != 1 || (len(row.peerTimes) == 1) != wantPeer {
					t.Errorf("row = %+v, want one round of baton (and of the peer: %v)", row, wantPeer)
				}
			})
		}
	}
}

func checkMetrics(t *testing.T, ms []metric) {
	t.Helper()
	if len(ms) == 0 {
		t.Fatal("no metrics")
	}
	for _, m := range ms {
		if math.IsNaN(m.v) || math.IsInf(m.v, 0) || m.v <= 0 {
			t.Errorf("metric %s = %v, want a finite positive number", m.unit, m.v)
		}
	}
}

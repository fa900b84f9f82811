package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// watchRounds is how many joins and leaves BenchmarkWatch times per
// backend; pollRounds on a backend whose watches poll (each change then
// takes about a poll interval).
const (
	watchRounds = 50
	pollRounds  = 10
)

// BenchmarkWatch measures how long a membership change takes to reach a
// group watch on another Backend of the same server: from the start of
// the Join (or Leave) call, which includes its own round trips, until the
// watcher's joined (or left) event; p50 and p99 over watchRounds joins
// and leaves. Push backends deliver within a round trip or two of the
// change; polling ones within their poll interval (the driver's default),
// over pollRounds changes.
func BenchmarkWatch(b *testing.B) {
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			measureOnce(b, func(b *testing.B) []metric {
				s := newSite(b, t)
				join, leave := watchLatencies(b, s.batonURL(false), watchRounds)
				v := map[string]float64{"rounds": float64(len(join))}
				ms := quantiles(v, nil, "join", join, 0.5, 0.99)
				ms = quantiles(v, ms, "leave", leave, 0.5, 0.99)
				addRecord(record{Metric: "watch", Target: t.name, Values: v})
				return ms
			})
		})
	}
}

// quantiles records the quantiles qs of ds under name (name_p50, ... in
// seconds) in v, and appends them to ms in milliseconds.
func quantiles(v map[string]float64, ms []metric, name string, ds []time.Duration, qs ...float64) []metric {
	for _, q := range qs {
		d := quantile(ds, q)
		p := fmt.Sprintf("p%.0f", q*100)
		v[name+"_"+p] = d.Seconds()
		ms = append(ms, metric{float64(d.Microseconds()) / 1000, name + "-" + p + "-ms"})
	}
	return ms
}

// watchLatencies joins and leaves a group n times and returns, sorted,
// the delays from the start of each Join to the watcher's joined event,
// and from the start of each Leave to its left event.
func watchLatencies(tb testing.TB, url string, n int) (join, leave []time.Duration) {
	ctx := context.Background()
	w, m := openBackend(tb, url, "watcher"), openBackend(tb, url, "member")
	if w.Characteristics().Watch != driver.WatchPush {
		n = min(n, pollRounds)
	}
	if err := w.CreateGroup(ctx, "g"); err != nil {
		tb.Fatal(err)
	}
	watch, err := w.WatchGroup(ctx, "g")
	if err != nil {
		tb.Fatal(err)
	}
	defer watch.Close()
	next := func(want backend.EventType) time.Time {
		timer := time.NewTimer(20 * time.Second)
		defer timer.Stop()
		for {
			select {
			case ev, ok := <-watch.Events():
				if !ok {
					tb.Fatalf("watch ended: %v", watch.Err())
				}
				if ev.Member.ID != "member" {
					continue
				}
				if ev.Type != want {
					tb.Fatalf("event %v, want %v", ev, want)
				}
				return time.Now()
			case <-timer.C:
				tb.Fatalf("no %v event within 20s", want)
			}
		}
	}
	for range n {
		start := time.Now()
		if err := m.Join(ctx, "g", nil); err != nil {
			tb.Fatal(err)
		}
		join = append(join, next(backend.EventJoined).Sub(start))
		start = time.Now()
		if err := m.Leave(ctx, "g"); err != nil {
			tb.Fatal(err)
		}
		leave = append(leave, next(backend.EventLeft).Sub(start))
	}
	slices.Sort(join)
	slices.Sort(leave)
	return join, leave
}

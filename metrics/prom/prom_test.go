package prom_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/metrics/prom"
	"github.com/baton-go/baton/partitioner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func has(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("scrape lacks %q", l)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScrape(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := prom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	url := "mem://prom-scrape?liveness=ttl&ttl=2s"
	b, err := backend.Open(ctx, url, backend.WithObserver(m), backend.WithMemberID("m1"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	stop := m.Instrument(b)
	defer stop()

	g, err := b.Lock(ctx, "L", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lead, err := b.Campaign(ctx, "workers", backend.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.JoinCreate(ctx, "workers", nil); err != nil {
		t.Fatal(err)
	}
	w, err := b.WatchGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b2, err := backend.Open(ctx, url, backend.WithMemberID("m2"))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close(ctx)
	if err := b2.Join(ctx, "workers", nil); err != nil {
		t.Fatal(err)
	}
	<-w.Events()
	// The event is counted once delivered: by the watch's goroutine, just
	// after the channel send this test received.
	joined := `baton_watch_events_total{type="joined"} 1`
	eventually(t, "the joined event counted", func() bool {
		return strings.Contains(scrape(t, reg), "\n"+joined+"\n")
	})

	text := scrape(t, reg)
	has(t, text,
		`baton_grants_acquired_total{kind="lock"} 1`,
		`baton_grants_released_total{kind="lock"} 1`,
		`baton_grants_acquired_total{kind="leader"} 1`,
		`baton_leader{group="workers"} 1`,
		`baton_election_terms_total{group="workers"} 1`,
		`baton_lock_wait_seconds_count{kind="lock",result="acquired"} 1`,
		`baton_lock_wait_seconds_count{kind="leader",result="acquired"} 1`,
		`baton_watch_events_total{type="joined"} 1`,
		`baton_session_state{state="connected"} 1`,
		`baton_grants_lost_total{kind="leader",reason="suspended"} 0`,
	)
	eventually(t, "a renewal", func() bool {
		return !strings.Contains(scrape(t, reg), "\nbaton_renew_duration_seconds_count 0\n")
	})

	// The session expires on the server: the leadership is lost.
	name, _ := membackend.StoreName(b)
	if err := membackend.ExpireSession(name, "m1"); err != nil {
		t.Fatal(err)
	}
	<-lead.Context().Done()
	eventually(t, "the loss and the session state in the scrape", func() bool {
		text := scrape(t, reg)
		return strings.Contains(text, "\nbaton_leader{group=\"workers\"} 0\n") &&
			strings.Contains(text, "\nbaton_session_state{state=\"lost\"} 1\n")
	})
	text = scrape(t, reg)
	has(t, text, `baton_grant_held_seconds_count{kind="leader"} 1`, `baton_session_state{state="connected"} 0`)
	if !strings.Contains(text, `baton_grants_lost_total{kind="leader",reason="session-lost"} 1`) &&
		!strings.Contains(text, `baton_grants_lost_total{kind="leader",reason="no-longer-held"} 1`) {
		t.Errorf("no lost leadership in the scrape:\n%s", text)
	}
}

// BenchmarkLock compares a lock/unlock cycle on mem:// without an observer
// (the default) and with the Prometheus one.
func BenchmarkLock(b *testing.B) {
	for _, withObs := range []bool{false, true} {
		name := "observer=none"
		if withObs {
			name = "observer=prom"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var opts []backend.Option
			if withObs {
				m, err := prom.New(prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, backend.WithObserver(m))
			}
			be, err := backend.Open(ctx, "mem://prom-bench-"+name, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close(ctx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g, err := be.Lock(ctx, "L", backend.LockOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A partitioner whose OnRebalance is the metrics' callback: the scrape
// shows its rebalances, their duration and the partitions it owns.
func TestPartitionerMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := prom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := backend.Open(ctx, "mem://prom-partitioner", backend.WithMemberID("m1"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	p, err := partitioner.New(ctx, b, "jobs", partitioner.WithPartitions(8), partitioner.OnRebalance(m.Partitioner("jobs")))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	eventually(t, "the partitions owned", func() bool {
		return strings.Contains(scrape(t, reg), "\nbaton_partitions_owned{group=\"jobs\"} 8\n")
	})
	has(t, scrape(t, reg),
		`baton_partitioner_rebalances_total{change="gained",group="jobs"} 1`,
		`baton_partitioner_rebalance_duration_seconds_count{group="jobs"} 1`,
	)
}

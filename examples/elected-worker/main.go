// Command elected-worker runs a singleton job: of all the copies running
// against one backend, exactly one does the work at a time. Kill the
// leader (even with kill -9) and another copy takes over. With
// -metrics ADDR it serves Prometheus metrics on http://ADDR/metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
	"github.com/baton-go/baton/election"
	"github.com/baton-go/baton/examples/internal/exampleurl"
	"github.com/baton-go/baton/metrics/prom"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	url := exampleurl.Flag("elected-worker")
	group := flag.String("group", "singleton", "election group")
	metrics := flag.String("metrics", "", "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, url(), *group, *metrics); err != nil {
		fmt.Fprintln(os.Stderr, "elected-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, group, metricsAddr string) error {
	var opts []backend.Option
	var m *prom.Metrics
	if metricsAddr != "" {
		reg := prometheus.NewRegistry()
		var err error
		if m, err = prom.New(reg); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Printf("metrics on http://%s/metrics\n", ln.Addr())
		opts = append(opts, backend.WithObserver(m))
	}
	b, err := backend.Open(ctx, url, opts...)
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	if m != nil {
		defer m.Instrument(b)()
	}
	me := b.MemberID()
	fmt.Printf("%s: campaigning in %q on %s\n", me, group, b.Config())
	err = election.Run(ctx, b, group, func(ctx context.Context) error {
		fmt.Printf("%s: elected; working\n", me)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				fmt.Printf("%s: stopping work: %v\n", me, context.Cause(ctx))
				return nil
			case <-tick.C:
				fmt.Printf("%s: work item %d\n", me, n)
			}
		}
	}, election.OnNewLeader(func(c election.LeaderChange) {
		if c.Held {
			fmt.Printf("%s: leader is %s (term %d)\n", me, c.Leader, c.Token)
		} else {
			fmt.Printf("%s: no leader\n", me)
		}
	}))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

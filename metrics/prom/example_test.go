package prom_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/metrics/prom"
)

// gauge returns the value of the gauge name with one label pair, from reg.
func gauge(reg *prometheus.Registry, name, label, value string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// Export a Backend's grants and session state as Prometheus metrics (serve
// them with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})).
func Example() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := prom.New(reg)
	if err != nil {
		panic(err)
	}
	b, err := backend.Open(ctx, "mem://prom-example", backend.WithObserver(m))
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	stop := m.Instrument(b)
	defer stop()

	lead, err := b.Campaign(ctx, "workers", backend.LockOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("baton_leader while leading:", gauge(reg, "baton_leader", "group", "workers"))
	_ = lead.Release(ctx)
	fmt.Println("baton_leader after resigning:", gauge(reg, "baton_leader", "group", "workers"))
	// Output:
	// baton_leader while leading: 1
	// baton_leader after resigning: 0
}

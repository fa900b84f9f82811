// Package prom exports baton's operational events as Prometheus metrics
// (github.com/prometheus/client_golang, the Prometheus project's own
// client).
//
// Create one Metrics per process, pass it to every backend.Open with
// backend.WithObserver, and call Instrument on each Backend to follow its
// session state:
//
//	m, err := prom.New(prometheus.DefaultRegisterer)
//	b, err := backend.Open(ctx, url, backend.WithObserver(m))
//	stop := m.Instrument(b)
//	defer stop()
//
// # Metrics
//
//	baton_grants_acquired_total{kind}                 counter
//	baton_grants_released_total{kind}                 counter
//	baton_grants_lost_total{kind,reason}              counter (reason: expired,
//	                                                  suspended, no-longer-held,
//	                                                  session-lost, other)
//	baton_grant_held_seconds{kind}                    histogram, at release or loss
//	baton_lock_wait_seconds{kind,result}              histogram (result: acquired,
//	                                                  not-acquired)
//	baton_renew_duration_seconds                      histogram, session renewals
//	baton_renew_failures_total                        counter
//	baton_refresh_duration_seconds{kind}              histogram, own-lease refreshes
//	baton_refresh_failures_total{kind}                counter
//	baton_session_state{state}                        gauge, 1 for the current state
//	baton_session_state_changes_total{state}          counter (flaps)
//	baton_watch_events_total{type}                    counter (type: joined, left,
//	                                                  capabilities-changed,
//	                                                  group-deleted, resync)
//	baton_leader{group}                               gauge, 1 while this process leads
//	baton_election_terms_total{group}                 counter, terms won
//
// kind is "lock" or "leader". Lock names never become labels (they are
// unbounded); group names do only in the two election metrics.
package prom

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/partitioner"
)

// Metrics is a backend.Observer that records Prometheus metrics. It is
// safe for concurrent use by many Backends.
type Metrics struct {
	acquired     *prometheus.CounterVec
	released     *prometheus.CounterVec
	lost         *prometheus.CounterVec
	held         *prometheus.HistogramVec
	wait         *prometheus.HistogramVec
	renew        prometheus.Histogram
	renewFail    prometheus.Counter
	refresh      *prometheus.HistogramVec
	refreshFail  *prometheus.CounterVec
	state        *prometheus.GaugeVec
	stateChanges *prometheus.CounterVec
	watch        *prometheus.CounterVec
	leader       *prometheus.GaugeVec
	terms        *prometheus.CounterVec
	rebalances   *prometheus.CounterVec
	rebalanceDur *prometheus.HistogramVec
	owned        *prometheus.GaugeVec

	mu      sync.Mutex
	leading map[string]int // group -> grants of leadership held
}

var _ backend.Observer = (*Metrics)(nil)

// latencyBuckets cover a round trip on loopback (100µs) to a renewal
// near a 10s TTL's margin.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// durationBuckets cover lock waits and holding times: 1ms to 1h.
var durationBuckets = []float64{.001, .01, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}

var sessionStates = []backend.SessionState{
	backend.SessionConnected, backend.SessionRenewFailed, backend.SessionSuspended,
	backend.SessionResumed, backend.SessionLost, backend.SessionClosed,
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		acquired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_grants_acquired_total",
			Help: "Locks and leaderships granted."}, []string{"kind"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_grants_released_total",
			Help: "Grants released by their holder while still held."}, []string{"kind"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_grants_lost_total",
			Help: "Grants lost or put in doubt, by reason."}, []string{"kind", "reason"}),
		held: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_grant_held_seconds",
			Help: "How long grants were held, observed at release or loss.", Buckets: durationBuckets}, []string{"kind"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_lock_wait_seconds",
			Help: "Time spent in blocking Lock and Campaign calls.", Buckets: durationBuckets}, []string{"kind", "result"}),
		renew: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_renew_duration_seconds",
			Help: "Round-trip time of session renewals.", Buckets: latencyBuckets}),
		renewFail: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_renew_failures_total",
			Help: "Session renewals that failed."}),
		refresh: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_refresh_duration_seconds",
			Help: "Round-trip time of refreshes of grants' own leases.", Buckets: latencyBuckets}, []string{"kind"}),
		refreshFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_refresh_failures_total",
			Help: "Refreshes of grants' own leases that failed."}, []string{"kind"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_session_state",
			Help: "1 for the session's current state, 0 for the others."}, []string{"state"}),
		stateChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_session_state_changes_total",
			Help: "Session state changes, by the state entered."}, []string{"state"}),
		watch: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_watch_events_total",
			Help: "Membership watch events delivered, by type."}, []string{"type"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_leader",
			Help: "1 while this process leads the group."}, []string{"group"}),
		terms: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_election_terms_total",
			Help: "Leadership terms won by this process."}, []string{"group"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_partitioner_rebalances_total",
			Help: "Changes of this member's partitions, by direction (gained, lost)."}, []string{"group", "change"}),
		rebalanceDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_partitioner_rebalance_duration_seconds",
			Help:    "Time from the start of a rebalance to the report of a change (locks of gained partitions included).",
			Buckets: latencyBuckets}, []string{"group"}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_partitions_owned",
			Help: "Partitions this member owns."}, []string{"group"}),
		leading: map[string]int{},
	}
	for _, c := range []prometheus.Collector{m.acquired, m.released, m.lost, m.held, m.wait, m.renew, m.renewFail,
		m.refresh, m.refreshFail, m.state, m.stateChanges, m.watch, m.leader, m.terms,
		m.rebalances, m.rebalanceDur, m.owned} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series exist from the start, so that rate() and alerts see zeros.
	for _, k := range []string{"lock", "leader"} {
		m.acquired.WithLabelValues(k)
		m.released.WithLabelValues(k)
		for _, r := range []string{"expired", "suspended", "no-longer-held", "session-lost"} {
			m.lost.WithLabelValues(k, r)
		}
	}
	for _, s := range sessionStates {
		m.state.WithLabelValues(s.String())
		m.stateChanges.WithLabelValues(s.String())
	}
	return m, nil
}

// Instrument follows b's session state (backend.Backend.OnSessionState)
// until the returned function is called.
func (m *Metrics) Instrument(b *backend.Backend) (stop func()) {
	return b.OnSessionState(func(ev backend.SessionEvent) {
		for _, s := range sessionStates {
			v := 0.0
			if s == ev.State {
				v = 1
			}
			m.state.WithLabelValues(s.String()).Set(v)
		}
		m.stateChanges.WithLabelValues(ev.State.String()).Inc()
	})
}

// GrantAcquired implements backend.Observer.
func (m *Metrics) GrantAcquired(e backend.GrantEvent) {
	m.acquired.WithLabelValues(e.Kind.String()).Inc()
	if e.Kind == backend.GrantLeader {
		m.terms.WithLabelValues(e.Name).Inc()
		m.setLeading(e.Name, 1)
	}
}

// GrantReleased implements backend.Observer.
func (m *Metrics) GrantReleased(e backend.GrantEvent) {
	m.released.WithLabelValues(e.Kind.String()).Inc()
	m.ended(e)
}

// GrantLost implements backend.Observer.
func (m *Metrics) GrantLost(e backend.GrantEvent) {
	m.lost.WithLabelValues(e.Kind.String(), backend.LossReasonOf(e.Cause)).Inc()
	m.ended(e)
}

func (m *Metrics) ended(e backend.GrantEvent) {
	m.held.WithLabelValues(e.Kind.String()).Observe(e.Held.Seconds())
	if e.Kind == backend.GrantLeader {
		m.setLeading(e.Name, -1)
	}
}

func (m *Metrics) setLeading(group string, delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := max(m.leading[group]+delta, 0)
	m.leading[group] = n
	v := 0.0
	if n > 0 {
		v = 1
	}
	m.leader.WithLabelValues(group).Set(v)
}

// LockWaited implements backend.Observer.
func (m *Metrics) LockWaited(kind backend.GrantKind, _ string, d time.Duration, acquired bool) {
	result := "acquired"
	if !acquired {
		result = "not-acquired"
	}
	m.wait.WithLabelValues(kind.String(), result).Observe(d.Seconds())
}

// Renewed implements backend.Observer.
func (m *Metrics) Renewed(d time.Duration, err error) {
	m.renew.Observe(d.Seconds())
	if err != nil {
		m.renewFail.Inc()
	}
}

// Refreshed implements backend.Observer.
func (m *Metrics) Refreshed(kind backend.GrantKind, _ string, d time.Duration, err error) {
	m.refresh.WithLabelValues(kind.String()).Observe(d.Seconds())
	if err != nil {
		m.refreshFail.WithLabelValues(kind.String()).Inc()
	}
}

// WatchEvent implements backend.Observer.
func (m *Metrics) WatchEvent(_ string, t backend.EventType) {
	m.watch.WithLabelValues(t.String()).Inc()
}

// Partitioner returns a callback for partitioner.OnRebalance that counts
// the rebalances of group (baton_partitioner_rebalances_total), observes
// their duration (baton_partitioner_rebalance_duration_seconds) and sets
// the partitions owned (baton_partitions_owned). Chain it with the
// program's own callback when it has one.
func (m *Metrics) Partitioner(group string) func(partitioner.Rebalance) {
	gained, lost := m.rebalances.WithLabelValues(group, "gained"), m.rebalances.WithLabelValues(group, "lost")
	dur, owned := m.rebalanceDur.WithLabelValues(group), m.owned.WithLabelValues(group)
	return func(r partitioner.Rebalance) {
		if len(r.Gained) > 0 {
			gained.Inc()
		}
		if len(r.Lost) > 0 {
			lost.Inc()
		}
		dur.Observe(r.Took.Seconds())
		owned.Set(float64(len(r.Owned)))
	}
}

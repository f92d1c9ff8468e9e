package admin

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/pool"
)

// PoolCollector exports the pool's per-backend metrics to Prometheus. It
// keeps no series of its own: each scrape asks the pool for a Status
// snapshot and describes the backends in it, so a backend removed through
// the API leaves /metrics as soon as it has drained, and the number of
// series cannot grow without end. The request path pays nothing for this:
// the counters it feeds are atomics on the pool's Backend records, and the
// in-flight gauge is the very counter the pool balances on.
type PoolCollector struct {
	pool Pool

	up, inFlight, requests, retries, connFailures *prometheus.Desc
	changes, checks, checkDuration, backends      *prometheus.Desc
	ejections, weight, adminState, truncated      *prometheus.Desc
	allDown, queueLength                          *prometheus.Desc
}

// NewPoolCollector returns a collector over p.
func NewPoolCollector(p Pool) *PoolCollector {
	b := []string{"backend"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("switchyard_backend_"+name, help, labels, nil)
	}
	return &PoolCollector{
		pool:          p,
		up:            d("up", "1 if the backend is in rotation, else 0.", b...),
		inFlight:      d("in_flight_requests", "Requests in flight to the backend.", b...),
		requests:      d("requests_total", "Responses from the backend, by status class.", "backend", "code_class"),
		retries:       d("retries_total", "Failed attempts on the backend that were tried again on another.", b...),
		connFailures:  d("connection_failures_total", "Attempts that could not connect to the backend.", b...),
		changes:       d("state_changes_total", "Changes of the backend's state, by new state and cause.", "backend", "state", "cause"),
		checks:        d("health_checks_total", "Health checks of the backend, by result.", "backend", "result"),
		checkDuration: d("health_check_duration_seconds", "How long health checks of the backend took.", b...),
		ejections:     d("ejections_total", "Times passive health ejected the backend.", b...),
		weight:        d("effective_weight", "The weight the strategies use now (less than the configured one during slow start).", b...),
		adminState:    d("admin_state", "1 for the backend's admin state (ready, drain, maintenance), 0 for the others.", "backend", "state"),
		truncated:     d("truncated_responses_total", "Responses from the backend whose body ended early.", b...),
		backends: prometheus.NewDesc("switchyard_pool_backends",
			"Backends in the pool, by state.", []string{"state"}, nil),
		allDown: prometheus.NewDesc("switchyard_pool_when_all_down_in_effect",
			"1 while when_all_down try_all sends requests to backends whatever their health.", nil, nil),
		queueLength: prometheus.NewDesc("switchyard_queue_length",
			"Requests waiting for a backend slot (max_requests_per_backend).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.inFlight, c.requests, c.retries, c.connFailures,
		c.changes, c.checks, c.checkDuration, c.backends, c.ejections, c.weight, c.adminState, c.truncated,
		c.allDown, c.queueLength} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. If the pool does not answer (it
// has stopped), the scrape shows no pool metrics rather than failing.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := c.pool.Status(ctx)
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	states := map[pool.State]int{pool.StateUp: 0, pool.StateDown: 0, pool.StateEjected: 0, pool.StateDraining: 0}
	for _, b := range st.Backends {
		states[b.State]++
		up := 0.0
		if b.Alive() {
			up = 1
		}
		gauge(c.up, up, b.URL)
		gauge(c.inFlight, float64(b.InFlight), b.URL)
		for i, n := range b.Responses {
			counter(c.requests, n, b.URL, classNames[i])
		}
		counter(c.retries, b.Retries, b.URL)
		counter(c.ejections, b.Ejections, b.URL)
		counter(c.truncated, b.Truncated, b.URL)
		gauge(c.weight, b.EffectiveWeight, b.URL)
		if b.AdminState != "" {
			for _, a := range []pool.AdminState{pool.AdminReady, pool.AdminDrain, pool.AdminMaintenance} {
				v := 0.0
				if a == b.AdminState {
					v = 1
				}
				gauge(c.adminState, v, b.URL, string(a))
			}
		}
		counter(c.connFailures, b.ConnectionFailures, b.URL)
		for _, chg := range b.Changes {
			counter(c.changes, chg.Count, b.URL, string(chg.To), string(chg.Cause))
		}
		counter(c.checks, b.ChecksPassed, b.URL, "pass")
		counter(c.checks, b.ChecksFailed, b.URL, "fail")
		buckets := make(map[float64]uint64, len(pool.CheckDurationBuckets))
		for i, le := range pool.CheckDurationBuckets {
			buckets[le] = b.CheckDurations.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.checkDuration,
			b.CheckDurations.Count, b.CheckDurations.Sum, buckets, b.URL)
	}
	for s, n := range states {
		gauge(c.backends, float64(n), string(s))
	}
	allDown := 0.0
	if st.AllDown {
		allDown = 1
	}
	gauge(c.allDown, allDown)
	gauge(c.queueLength, float64(st.Queue.Length))
}

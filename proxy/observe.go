package proxy

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Error classes, for the access log: what went wrong with a request, in a
// word a log query can match.
const (
	classNoBackend  = "no_backend"  // 503: no backend up (or the pool stopped)
	classTimeout    = "timeout"     // 504: no response within the request timeout (or a gRPC call's deadline)
	classConnect    = "connect"     // 503: no backend could be connected to
	classQueue      = "queue"       // 503: every backend full, and the queue full or its wait too long
	classBackend    = "backend"     // 502: the backend failed before its response
	classClientGone = "client_gone" // 499: the client went away first
	classAborted    = "aborted"     // the response broke off after it had started
	classTruncated  = "truncated"   // the backend's response body ended early
	classClientBody = "client_body" // 400 or 408: the client's request body was malformed, short or too slow
	classRefused    = "refused"     // 400, 405 or 505: answered without a backend (faulty framing, CONNECT, TRACE, HTTP/2 preface)
)

// recorder notes what a handler sent: the status and how many body bytes.
// Unwrap lets http.ResponseController, which ReverseProxy uses to flush and
// to hijack upgraded connections, reach the server's writer.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// informational is set once an interim 1xx answer has been sent: after
	// that a failed attempt may not be retried. ReverseProxy writes those
	// from the Transport's goroutine while the handler waits in RoundTrip.
	informational atomic.Bool
}

func (r *recorder) WriteHeader(code int) {
	// 1xx answers are interim, except 101, which is the last this request
	// will see.
	switch {
	case code < 200 && code != http.StatusSwitchingProtocols:
		r.informational.Store(true)
	case r.status == 0:
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// writeHeaderAs sends status code but records logged: a gRPC error goes
// out as a 200 (its status is in grpc-status) and is counted as the HTTP
// status it stands for.
func (r *recorder) writeHeaderAs(code, logged int) {
	if r.status == 0 {
		r.status = logged
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// metrics are the proxy-wide counters. Per-backend counters live on the
// pool's Backend records. Nothing here takes a lock or allocates per
// request: codes is an array indexed by status code, the histogram is
// lock-free.
type metrics struct {
	codes    [600]atomic.Uint64
	duration prometheus.Histogram
	clients  atomic.Int64

	// The queue for a backend slot: how long requests waited, and how many
	// gave up because it was full or its wait too long.
	queueWait               prometheus.Histogram
	queueFull, queueTimeout atomic.Uint64

	requestsDesc, clientsDesc, droppedDesc, rejectedDesc *prometheus.Desc
}

func newMetrics() *metrics {
	return &metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response.",
			Buckets: prometheus.DefBuckets,
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_queue_wait_seconds",
			Help:    "Time requests waited in the queue for a backend slot (max_requests_per_backend).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 2.5, 5, 10, 30},
		}),
		rejectedDesc: prometheus.NewDesc("switchyard_queue_rejections_total",
			"Requests answered 503 because every backend was full and the queue was full (reason=full) or its wait ran out (reason=timeout).",
			[]string{"reason"}, nil),
		requestsDesc: prometheus.NewDesc("switchyard_requests_total",
			"Requests served, by the status code sent to the client; 499 means the client went away first.",
			[]string{"code"}, nil),
		clientsDesc: prometheus.NewDesc("switchyard_client_connections",
			"Client connections open to the proxy.", nil, nil),
		droppedDesc: prometheus.NewDesc("switchyard_access_log_dropped_total",
			"Access log lines dropped because the writer could not keep up.", nil, nil),
	}
}

// observe records a finished request: in the metrics unless disabled, and in
// the access log if there is one. It is deferred by ServeHTTP, and so sees a
// panic on its way out: ReverseProxy aborts a response that broke off half
// way with one. observe records the request, then lets the panic go on to
// the server, which closes the connection.
func (p *Proxy) observe(st *requestState, r *http.Request) {
	aborted := recover()
	status := st.rec.status
	if aborted != nil && st.errClass != classTruncated && st.errClass != classTimeout {
		st.errClass = classAborted
	}
	if st.client.Err() != nil && (aborted != nil || st.errClass == classClientGone) {
		status, st.errClass = 499, classClientGone
	}
	switch {
	case status == 0 && st.upgraded:
		// ReverseProxy writes the 101 itself, on the hijacked connection,
		// past the ResponseWriter.
		status = http.StatusSwitchingProtocols
	case status == 0:
		status = http.StatusOK // nothing written: net/http sends 200
	}
	took := time.Since(st.start)
	if p.metrics != nil {
		if status < len(p.metrics.codes) {
			p.metrics.codes[status].Add(1)
		}
		p.metrics.duration.Observe(took.Seconds())
	}
	if al := st.s.AccessLog; al != nil {
		e := accessEntry{
			start: st.start, client: r.RemoteAddr, method: r.Method, path: r.URL.Path,
			status: status, bytes: st.rec.bytes, took: took, attempts: len(st.tried), err: st.errClass,
		}
		if len(st.tried) > 0 {
			e.backend = st.tried[len(st.tried)-1].String()
		}
		al.log(e)
	}
	if aborted != nil {
		panic(aborted)
	}
}

// ConnState counts open client connections. Set it as the proxy server's
// http.Server.ConnState.
func (p *Proxy) ConnState(_ net.Conn, state http.ConnState) {
	if p.metrics == nil {
		return
	}
	switch state {
	case http.StateNew:
		p.metrics.clients.Add(1)
	case http.StateClosed, http.StateHijacked:
		p.metrics.clients.Add(-1)
	}
}

// Describe and Collect make the Proxy a prometheus.Collector of its own
// metrics; register it with the registry that serves /metrics.
func (p *Proxy) Describe(ch chan<- *prometheus.Desc) {
	if p.metrics == nil {
		return
	}
	ch <- p.metrics.requestsDesc
	ch <- p.metrics.clientsDesc
	ch <- p.metrics.droppedDesc
	ch <- p.metrics.rejectedDesc
	p.metrics.duration.Describe(ch)
	p.metrics.queueWait.Describe(ch)
}

func (p *Proxy) Collect(ch chan<- prometheus.Metric) {
	m := p.metrics
	if m == nil {
		return
	}
	for code := range m.codes {
		if n := m.codes[code].Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(m.requestsDesc, prometheus.CounterValue, float64(n), strconv.Itoa(code))
		}
	}
	ch <- prometheus.MustNewConstMetric(m.clientsDesc, prometheus.GaugeValue, float64(m.clients.Load()))
	var dropped uint64
	if al := p.current.Load().AccessLog; al != nil {
		dropped = al.Dropped()
	}
	ch <- prometheus.MustNewConstMetric(m.droppedDesc, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(m.rejectedDesc, prometheus.CounterValue, float64(m.queueFull.Load()), "full")
	ch <- prometheus.MustNewConstMetric(m.rejectedDesc, prometheus.CounterValue, float64(m.queueTimeout.Load()), "timeout")
	m.duration.Collect(ch)
	m.queueWait.Collect(ch)
}

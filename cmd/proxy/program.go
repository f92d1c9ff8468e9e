package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

// program is the proxy's parts, built from a checked config before anything
// serves, and the lists that say how they run and stop (lifecycle.go).
type program struct {
	cfg Config
	log *slog.Logger

	pool      *pool.Pool
	checker   *health.Checker
	proxy     *proxy.Proxy
	accessLog *proxy.AccessLog
	control   *control
	discovery *discovery.Watcher
	admin     *admin.Handler
	certs     *certs.Store // with tls; nil without
	// redirectPort is the TLS port the plain port redirects every request
	// to (tls.redirect_http), or 0 while it proxies; reloads change it.
	redirectPort atomic.Int32

	// The long-lived tasks, in the order they start. A task the config
	// leaves out is nil in its field and absent from tasks.
	tasks         []*task
	poolTask      *task
	healthTask    *task
	accessLogTask *task
	controlTask   *task
	discoveryTask *task
	certsTask     *task

	proxyServer, adminServer server
	tlsServer                server // srv is nil without tls
	demoServers              []server
	servers                  []server // all of the above, in the order they start

	// shuttingDown is closed by the first shutdown stage; /healthz answers
	// 503 from then on.
	shuttingDown chan struct{}
	// Requests' contexts descend from baseCtx rather than from the signal
	// context: a signal must not cancel the requests in flight, which the
	// shutdown lets finish. Cancelling it is how the shutdown ends what
	// Server.Shutdown does not.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	lns    listeners
	stdout io.Writer // for -demo's instructions
}

// source is where the config came from, for the reloads to come: the
// file, what it held at start, the environment, and SIGHUP.
type source struct {
	path string
	data []byte
	// backends is the file's backend list; the config's Backends are the
	// running set, which a state file may have restored otherwise.
	backends []pool.Spec
	env      func(string) string
	hup      <-chan os.Signal
}

// build makes the parts of the program that check their configuration, so
// that a config they refuse stops the program before anything listens.
// Nothing starts: serve does that, once attach has put the servers on their
// sockets. access is where the access log goes at first (nowhere when off).
func build(cfg Config, log *slog.Logger, stdout io.Writer, access accessLogFile, src source) (*program, error) {
	p := &program{cfg: cfg, log: log, stdout: stdout, shuttingDown: make(chan struct{})}
	var err error
	p.pool, err = pool.New(poolConfig(cfg, log), cfg.Backends...)
	if err != nil {
		return nil, err
	}
	if p.checker, err = health.New(p.pool, healthConfig(cfg, log)); err != nil {
		return nil, err
	}
	// The access log's writer runs whether the log is on or not, so that a
	// reload can turn it on.
	out := access.w
	if out == nil {
		out = discardWriter{}
	}
	if p.accessLog, err = proxy.NewAccessLog(out, 0); err != nil {
		return nil, err
	}
	if p.proxy, err = proxy.New(p.pool, p.proxyConfig(cfg)); err != nil {
		return nil, err
	}
	if p.discovery, err = discovery.New(discoverySink{p}, discovery.Config{Sources: cfg.Sources,
		Resolver: cfg.DNSResolver, Refresh: cfg.DNSRefresh, Logger: log.With("component", "discovery")}); err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		if p.certs, err = certs.NewStore(cfg.TLS.Set, certs.Config{Logger: log.With("component", "tls")}); err != nil {
			return nil, err
		}
	}
	p.setRedirect(cfg)
	p.control = newControl(p, src)
	p.control.accessOut = access
	adm, err := admin.New(p.control, admin.Config{
		Token:        cfg.AdminToken,
		Prober:       p.checker,
		ShuttingDown: p.shuttingDown,
		Metrics:      p.metricsHandler(),
		Info:         p.statusInfo,
		Reloader:     p.control,
		DisablePprof: !cfg.Pprof,
		Logger:       log.With("component", "admin"),
	})
	if err != nil {
		return nil, err
	}
	p.admin = adm
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	p.buildTasks()
	return p, nil
}

// proxyConfig is the proxy's part of cfg, at start and at every reload.
func (p *program) proxyConfig(cfg Config) proxy.Config {
	pc := proxy.Config{
		RequestTimeout: cfg.RequestTimeout,
		// A client told to come back before the next health check would most
		// likely find no backend up again.
		RetryAfter:          cfg.HealthCheckFrequency,
		TrustedProxies:      cfg.TrustedProxies,
		DialTimeout:         cfg.DialTimeout,
		IdleConnTimeout:     cfg.BackendIdleTimeout,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerBackend,
		HashKey:             cfg.HashKey,
		StickyCookie:        cfg.StickyCookie,
		BackendCAs:          cfg.BackendCAs,
		DisableMetrics:      !cfg.Metrics,
		Logger:              p.log.With("component", "proxy"),
	}
	if cfg.AccessLog != "off" {
		pc.AccessLog = p.accessLog
	}
	return pc
}

// healthConfig is the health checker's part of cfg.
func healthConfig(cfg Config, log *slog.Logger) health.Config {
	return health.Config{
		Interval:     cfg.HealthCheckFrequency,
		DownInterval: cfg.HealthCheckDownFrequency,
		Timeout:      cfg.HealthCheckTimeout,
		Path:         cfg.HealthCheckPath,
		GRPC:         cfg.HealthCheckGRPC,
		GRPCService:  cfg.HealthCheckService,
		BackendCAs:   cfg.BackendCAs,
		Logger:       log.With("component", "health"),
	}
}

// buildTasks lists the long-lived tasks in the order they start: the pool
// owner first, because everything else calls it.
func (p *program) buildTasks() {
	p.poolTask = &task{name: "pool owner", run: p.pool.Run,
		doc: "holds all backend state and answers the pool's messages; writes its log lines on a goroutine of its own that it waits for"}
	p.healthTask = &task{name: "health loop", run: p.checker.Run,
		doc: "probes every backend each `health_check_frequency`, one short-lived goroutine per probe, all waited for within the round"}
	p.accessLogTask = &task{name: "access log", run: p.accessLog.Run,
		doc: "writes the access log lines that handlers queue (to nowhere while `access_log` is off, so that a reload can turn it on)"}
	p.controlTask = &task{name: "config control", run: p.control.run,
		doc: "owns the config in force and the state file: reloads (SIGHUP, `POST /reload`) and the admin API's changes to the running set, one at a time"}
	p.discoveryTask = &task{name: "discovery", run: p.discovery.Run,
		doc: "looks up each DNS source every `dns_refresh`, one goroutine per source that it waits for, and hands each change to the pool as one message"}
	p.tasks = []*task{p.poolTask, p.healthTask, p.accessLogTask, p.controlTask, p.discoveryTask}
	if p.certs != nil {
		p.certsTask = &task{name: "certificates", run: p.certs.Run,
			doc: "with `tls`, reads the certificate files every 10 s and puts renewed ones in force (a bad renewal keeps the old ones serving)"}
		p.tasks = append(p.tasks, p.certsTask)
	}
}

// tlsConfig is what the TLS port shakes hands with: the certificates in
// force and tls.min_version. Nil without tls.
func (p *program) tlsConfig(cfg Config) *tls.Config {
	if p.certs == nil || cfg.TLS == nil {
		return nil
	}
	return p.certs.TLSConfig(cfg.TLS.MinVersion)
}

// setRedirect puts tls.redirect_http in force for the plain port.
func (p *program) setRedirect(cfg Config) {
	port := 0
	if cfg.TLS != nil && cfg.TLS.RedirectHTTP {
		port = cfg.TLS.Port
	}
	p.redirectPort.Store(int32(port))
}

// attach makes the servers, each on its bound listener in lns.
func (p *program) attach(lns listeners) {
	p.lns = lns
	adm := p.admin
	base := func(net.Listener) context.Context { return p.baseCtx }
	// A client's malformed request is its problem, not an event worth
	// logging above Debug.
	serverLog := slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	// The proxy's servers, on port and tls.port, differ only in their
	// listeners, their protocols and what the plain one does with
	// redirect_http.
	proxyServer := func(handler http.Handler, protocols func(*http.Protocols)) *http.Server {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
			IdleTimeout:       p.cfg.IdleTimeout,
			MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
			BaseContext:       base,
			ConnState:         p.proxy.ConnState,
			ErrorLog:          serverLog,
			// No ReadTimeout or WriteTimeout: they would cut off long uploads,
			// downloads and streams. request_timeout bounds the wait for a
			// backend; send_timeout and client_body_timeout, kept by the
			// connection guard, bound a client that stops reading or sending.
			// The guard leaves HTTP/2 to net/http, whose write timeout is
			// per frame written, as send_timeout is per write.
			HTTP2:     &http.HTTP2Config{WriteByteTimeout: p.cfg.SendTimeout},
			Protocols: new(http.Protocols),
		}
		protocols(srv.Protocols)
		framing.ConfigureServer(srv)
		return srv
	}
	p.proxyServer = server{name: "proxy server", lns: []net.Listener{p.lns.proxy}, stage: "servers",
		doc: "serves `port`; `net/http` runs a goroutine per connection and `ReverseProxy` one per upgraded connection, each ending with its connection",
		srv: proxyServer(p.plainHandler(), func(pr *http.Protocols) {
			pr.SetHTTP1(true)
			pr.SetUnencryptedHTTP2(p.cfg.H2C)
		})}
	p.servers = []server{p.proxyServer}
	if t := p.lns.tls; t != nil {
		p.tlsServer = server{name: "TLS server", lns: []net.Listener{t.h1, t.mux.HTTP2()}, stage: "servers",
			doc: "serves `tls.port`: one `Serve` for the connections that chose HTTP/1.1 and one for HTTP/2, and beside them the accept loop, " +
				"which shakes hands on each connection on a goroutine of its own (ending with the handshake, within `read_header_timeout`) before handing it over",
			srv: proxyServer(p.proxy, func(pr *http.Protocols) {
				pr.SetHTTP1(true)
				pr.SetHTTP2(true)
			}),
			feed: t.mux.Run}
		p.servers = append(p.servers, p.tlsServer)
	}
	p.adminServer = server{name: "admin server", lns: []net.Listener{p.lns.admin}, stage: "servers",
		doc: "serves the admin API on `admin_addr`",
		srv: &http.Server{
			Handler:           adm,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			// Longer than the 30 s CPU profile that /debug/pprof/profile
			// takes by default, which net/http/pprof refuses to start if the
			// server would cut it off.
			WriteTimeout:   90 * time.Second,
			IdleTimeout:    time.Minute,
			MaxHeaderBytes: 64 << 10,
			BaseContext:    base,
			ErrorLog:       serverLog,
		}}
	p.servers = append(p.servers, p.adminServer)
	for i, addr := range p.lns.demoAddrs {
		s := server{name: "demo backend", lns: []net.Listener{p.lns.demo[i]}, stage: "demo backends",
			doc: "with `-demo`, a test backend on each configured backend's address",
			srv: testbackend.Server(addr, p.log.With("component", "demo-backend"))}
		p.demoServers = append(p.demoServers, s)
		p.servers = append(p.servers, s)
	}
}

// poolConfig is the pool's part of cfg.
func poolConfig(cfg Config, log *slog.Logger) pool.Config {
	pc := pool.Config{
		Strategy:              cfg.Strategy,
		HealthyThreshold:      cfg.HealthyThreshold,
		UnhealthyThreshold:    cfg.UnhealthyThreshold,
		SlowStart:             cfg.SlowStart,
		Passive:               cfg.PassiveHealth,
		WhenAllDown:           cfg.WhenAllDown,
		MaxRequestsPerBackend: cfg.MaxRequestsPerBackend,
		MaxQueue:              cfg.MaxQueue,
		QueueTimeout:          cfg.QueueTimeout,
		Logger:                log.With("component", "pool"),
	}
	if cfg.StickyCookie != "" {
		pc.StickySecret = []byte(cfg.StickySecret)
	}
	return pc
}

// statusInfo is what /status shows of the proxy's own settings.
func (p *program) statusInfo() admin.Info {
	info := *p.control.info.Load()
	for _, st := range p.discovery.Status() {
		last := ""
		if !st.LastRefresh.IsZero() {
			last = st.LastRefresh.Format(time.RFC3339)
		}
		info.Sources = append(info.Sources, admin.SourceStatus{ID: st.Source, Name: st.Name, Discover: string(st.Discover),
			LastRefresh: last, Failing: st.Failing, LastError: st.LastError, Backends: append([]string{}, st.Backends...)})
	}
	return info
}

// metricsHandler serves /metrics, or is nil when metrics are off.
func (p *program) metricsHandler() http.Handler {
	if !p.cfg.Metrics {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.proxy, admin.NewPoolCollector(p.pool), p.control, guardCollector{p}, sourceCollector{p}, tlsCollector{p},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// discoverySink hands what discovery found to the pool, as one message per
// change, and checks the new backends at once, as POST /backends does.
type discoverySink struct{ p *program }

func (s discoverySink) SetSource(ctx context.Context, source string, targets []discovery.Target) error {
	specs := make([]pool.Spec, len(targets))
	for i, t := range targets {
		specs[i] = pool.Spec{URL: t.URL, Weight: t.Weight}
	}
	applied, err := s.p.pool.SetSource(ctx, source, specs)
	if errors.Is(err, actor.ErrStopped) || ctx.Err() != nil {
		return err // the pool is gone: discovery has nothing left to do
	}
	if err != nil {
		// A set the pool refuses (a backend it cannot use) changes
		// nothing; the next lookup tries again. It must not stop the
		// program.
		s.p.log.Error("discovery: the pool refused a source's backends", "source", source, "err", err)
		return nil
	}
	s.p.checker.ProbeAll(ctx, applied.Added) // at once, as POST /backends does
	return nil
}

// sourceCollector exports the discovery sources' state.
type sourceCollector struct{ p *program }

var (
	sourceFailingDesc = prometheus.NewDesc("switchyard_discovery_source_failing",
		"1 while a discovery source's lookups fail (its last good set is kept), else 0.", []string{"source"}, nil)
	sourceBackendsDesc = prometheus.NewDesc("switchyard_discovery_source_backends",
		"Backends a discovery source found at its last good lookup.", []string{"source"}, nil)
	sourceLookupsDesc = prometheus.NewDesc("switchyard_discovery_lookups_total",
		"DNS lookups made for a source, by result.", []string{"source", "result"}, nil)
)

func (sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourceFailingDesc
	ch <- sourceBackendsDesc
	ch <- sourceLookupsDesc
}

// Collect labels each source by its id, not its name: two sources may
// look up one name (on two ports, say), and series must not collide.
func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.p.discovery.Status() {
		failing := 0.0
		if st.Failing {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(sourceFailingDesc, prometheus.GaugeValue, failing, st.Source)
		ch <- prometheus.MustNewConstMetric(sourceBackendsDesc, prometheus.GaugeValue, float64(len(st.Backends)), st.Source)
		ch <- prometheus.MustNewConstMetric(sourceLookupsDesc, prometheus.CounterValue, float64(st.Lookups-st.FailedLookups), st.Source, "ok")
		ch <- prometheus.MustNewConstMetric(sourceLookupsDesc, prometheus.CounterValue, float64(st.FailedLookups), st.Source, "failed")
	}
}

// guardCollector exports the connection guard's counts: the limit on client
// connections and how often it made a connection wait.
type guardCollector struct{ p *program }

var (
	connLimitDesc = prometheus.NewDesc("switchyard_client_connections_limit",
		"max_connections: client connections allowed at once; 0 is no limit.", nil, nil)
	connWaitsDesc = prometheus.NewDesc("switchyard_client_connection_limit_waits_total",
		"Times a client connection waited in the kernel's accept backlog because max_connections were open.", nil, nil)
)

func (guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connLimitDesc
	ch <- connWaitsDesc
}

func (g guardCollector) Collect(ch chan<- prometheus.Metric) {
	if g.p.lns.guard == nil {
		return // not listening yet
	}
	st := g.p.lns.guard.Stats()
	waits := st.LimitWaits
	if t := g.p.lns.tls; t != nil {
		waits += t.guard.Stats().LimitWaits
	}
	ch <- prometheus.MustNewConstMetric(connLimitDesc, prometheus.GaugeValue, float64(st.Limit))
	ch <- prometheus.MustNewConstMetric(connWaitsDesc, prometheus.CounterValue, float64(waits))
}

// tlsCollector exports the TLS port's handshakes and certificates.
type tlsCollector struct{ p *program }

var (
	tlsHandshakesDesc = prometheus.NewDesc("switchyard_tls_handshakes_total",
		"TLS handshakes on tls.port, by result (failed: the client gave up, timed out, or agreed on nothing with us).", []string{"result"}, nil)
	certReloadsDesc = prometheus.NewDesc("switchyard_tls_certificate_reloads_total",
		"Times new certificates were put in force after start-up: by a reload, or because their files changed.", nil, nil)
	certFailuresDesc = prometheus.NewDesc("switchyard_tls_certificate_reload_failures_total",
		"Times changed certificate files could not be loaded; the certificates in force went on serving.", nil, nil)
	certExpiryDesc = prometheus.NewDesc("switchyard_tls_certificate_expiry_timestamp_seconds",
		"When a certificate in force expires (Unix time), by its place in tls.certificates and its serial number.", []string{"index", "serial"}, nil)
)

func (tlsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tlsHandshakesDesc
	ch <- certReloadsDesc
	ch <- certFailuresDesc
	ch <- certExpiryDesc
}

func (c tlsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.p.certs == nil {
		return
	}
	st := c.p.certs.Stats()
	ch <- prometheus.MustNewConstMetric(certReloadsDesc, prometheus.CounterValue, float64(st.Reloads))
	ch <- prometheus.MustNewConstMetric(certFailuresDesc, prometheus.CounterValue, float64(st.Failures))
	for _, info := range c.p.certs.Current().Certificates() {
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(info.NotAfter.Unix()),
			strconv.Itoa(info.Index), info.Serial)
	}
	if t := c.p.lns.tls; t != nil {
		hs := t.mux.Stats()
		ch <- prometheus.MustNewConstMetric(tlsHandshakesDesc, prometheus.CounterValue, float64(hs.Handshakes), "ok")
		ch <- prometheus.MustNewConstMetric(tlsHandshakesDesc, prometheus.CounterValue, float64(hs.Failures), "failed")
	}
}

// logStarted writes the startup line, and -demo's instructions.
func (p *program) logStarted() {
	tlsAddr := "off"
	if t := p.lns.tls; t != nil {
		tlsAddr = t.mux.HTTP2().Addr().String()
	}
	p.log.Info("switchyard started",
		"config", p.control.path,
		"generation", p.control.info.Load().Config.Generation,
		"proxy", p.lns.proxy.Addr().String(),
		"tls", tlsAddr,
		"h2c", p.cfg.H2C,
		"admin", p.lns.admin.Addr().String(),
		"strategy", string(p.cfg.Strategy),
		"backends", specURLs(p.cfg.Backends),
		"health_check_frequency", p.cfg.HealthCheckFrequency.String(),
		"fd_limit", fdLimit(),
		"memory_limit", memoryLimit())
	if len(p.demoServers) > 0 {
		printDemo(p.stdout, p.lns, p.cfg.AdminToken != "")
	}
}

// memoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT, or 90% of
// the cgroup's), or "none".
func memoryLimit() string {
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return "none"
}

// fdLimit is the number of files the process may open. Go raises the soft
// limit to the hard one at start, so this is the hard limit, unless
// something lowered it since.
func fdLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

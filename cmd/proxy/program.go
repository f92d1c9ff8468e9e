package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// program is the proxy's parts, built from a checked config before anything
// serves, and the lists that say how they run and stop (lifecycle.go).
type program struct {
	cfg Config
	log *slog.Logger

	pool      *pool.Pool
	checker   *health.Checker
	proxy     *proxy.Proxy
	accessLog *proxy.AccessLog // nil when access_log is off
	admin     *admin.Handler

	// The long-lived tasks, in the order they start. A task the config
	// leaves out is nil in its field and absent from tasks.
	tasks         []*task
	poolTask      *task
	healthTask    *task
	accessLogTask *task

	proxyServer, adminServer server
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

// build makes the parts of the program that check their configuration, so
// that a config they refuse stops the program before anything listens.
// Nothing starts: serve does that, once attach has put the servers on their
// sockets. accessOut, if not nil, receives the access log.
func build(cfg Config, log *slog.Logger, stdout, accessOut io.Writer) (*program, error) {
	p := &program{cfg: cfg, log: log, stdout: stdout, shuttingDown: make(chan struct{})}
	var err error
	p.pool, err = pool.New(poolConfig(cfg, log), cfg.Backends...)
	if err != nil {
		return nil, err
	}
	p.checker, err = health.New(p.pool, health.Config{
		Interval:     cfg.HealthCheckFrequency,
		DownInterval: cfg.HealthCheckDownFrequency,
		Timeout:      cfg.HealthCheckTimeout,
		Path:         cfg.HealthCheckPath,
		Logger:       log.With("component", "health"),
	})
	if err != nil {
		return nil, err
	}
	if accessOut != nil {
		if p.accessLog, err = proxy.NewAccessLog(accessOut, 0); err != nil {
			return nil, err
		}
	}
	p.proxy, err = proxy.New(p.pool, proxy.Config{
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
		DisableMetrics:      !cfg.Metrics,
		AccessLog:           p.accessLog,
		Logger:              log.With("component", "proxy"),
	})
	if err != nil {
		return nil, err
	}
	adm, err := admin.New(p.pool, admin.Config{
		Token:        cfg.AdminToken,
		Prober:       p.checker,
		ShuttingDown: p.shuttingDown,
		Metrics:      p.metricsHandler(),
		Info:         p.statusInfo,
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

// buildTasks lists the long-lived tasks in the order they start: the pool
// owner first, because everything else calls it.
func (p *program) buildTasks() {
	p.poolTask = &task{name: "pool owner", run: p.pool.Run, stage: "pool owner",
		doc: "holds all backend state and answers the pool's messages; writes its log lines on a goroutine of its own that it waits for"}
	p.healthTask = &task{name: "health loop", run: p.checker.Run, stage: "health loop",
		doc: "probes every backend each `health_check_frequency`, one short-lived goroutine per probe, all waited for within the round"}
	p.tasks = []*task{p.poolTask, p.healthTask}
	if p.accessLog != nil {
		p.accessLogTask = &task{name: "access log", run: p.accessLog.Run, stage: "access log",
			doc: "writes the access log lines that handlers queue"}
		p.tasks = append(p.tasks, p.accessLogTask)
	}
}

// attach makes the servers, each on its bound listener in lns.
func (p *program) attach(lns listeners) {
	p.lns = lns
	adm := p.admin
	base := func(net.Listener) context.Context { return p.baseCtx }
	// A client's malformed request is its problem, not an event worth
	// logging above Debug.
	serverLog := slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	p.proxyServer = server{name: "proxy server", ln: p.lns.proxy, stage: "servers",
		doc: "serves `port`; `net/http` runs a goroutine per connection and `ReverseProxy` one per upgraded connection, each ending with its connection",
		srv: &http.Server{
			Handler:           p.proxy,
			ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
			IdleTimeout:       p.cfg.IdleTimeout,
			MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
			BaseContext:       base,
			ConnState:         p.proxy.ConnState,
			ErrorLog:          serverLog,
			// No ReadTimeout or WriteTimeout: they would cut off long uploads,
			// downloads and streams. request_timeout bounds the wait for a
			// backend instead.
		}}
	p.adminServer = server{name: "admin server", ln: p.lns.admin, stage: "servers",
		doc: "serves the admin API on `admin_addr`",
		srv: &http.Server{
			Handler:           adm,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    64 << 10,
			BaseContext:       base,
			ErrorLog:          serverLog,
		}}
	p.servers = []server{p.proxyServer, p.adminServer}
	for i, addr := range p.lns.demoAddrs {
		s := server{name: "demo backend", ln: p.lns.demo[i], stage: "demo backends",
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
	return admin.Info{HashKey: p.cfg.HashKey.String(), StickyCookie: p.cfg.StickyCookie}
}

// metricsHandler serves /metrics, or is nil when metrics are off.
func (p *program) metricsHandler() http.Handler {
	if !p.cfg.Metrics {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.proxy, admin.NewPoolCollector(p.pool),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// logStarted writes the startup line, and -demo's instructions.
func (p *program) logStarted() {
	p.log.Info("switchyard started",
		"proxy", p.lns.proxy.Addr().String(),
		"admin", p.lns.admin.Addr().String(),
		"strategy", string(p.cfg.Strategy),
		"backends", backendURLs(p.cfg.Backends),
		"health_check_frequency", p.cfg.HealthCheckFrequency.String())
	if len(p.demoServers) > 0 {
		printDemo(p.stdout, p.lns, p.cfg.AdminToken != "")
	}
}

func backendURLs(specs []pool.Spec) []string {
	urls := make([]string, len(specs))
	for i, s := range specs {
		urls[i] = s.URL
	}
	return urls
}

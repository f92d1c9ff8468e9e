// Command proxy is switchyard, a load-balancing HTTP reverse proxy.
//
//	go run ./cmd/proxy                 # reads ./config.json
//	go run ./cmd/proxy -demo           # and runs the configured backends in-process
//	go run ./cmd/proxy -config /etc/switchyard.json -log-format json
//
// Goroutines: every long-lived goroutine of the program starts in serve, as a
// member of one errgroup, and has returned before run does:
//
//   - the pool owner (pool.Pool.Run), which every other part calls;
//   - the health loop (health.Checker.Run);
//   - the proxy server and the admin server, one Serve each;
//   - the access log writer (proxy.AccessLog.Run), when access_log is on;
//   - the pool's log writer (logQueue.run), so that the owner loop never
//     waits for stderr;
//   - with -demo, one Serve per test backend;
//   - the shutdown member, which waits for the group's context to end (on
//     SIGINT or SIGTERM, or when another member fails) and then stops the
//     others in order: /healthz answers 503; after shutdown_delay both servers
//     stop accepting and finish the requests in flight, for up to
//     shutdown_timeout; upgraded connections are closed; the access log
//     writes what is queued and stops; the health loop stops; the demo
//     backends stop; the pool owner stops last, because everything before it
//     calls it, and then its log is written out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // could not listen, or failed while running
	exitUsage = 2 // bad flags or a bad config file
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Once the first signal has started the shutdown, stop lets a second one
	// kill the process at once, for whoever will not wait for shutdown_timeout.
	// AfterFunc runs stop on a goroutine of its own that nobody waits for: it
	// only unregisters the handler.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it returns when ctx ends and everything has shut
// down, or at once if it cannot start. It returns the exit code. Problems that
// stop it from starting are written to stderr one per line; logs go to stderr
// too, and -demo's instructions to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.json", "the config file")
	demo := fs.Bool("demo", false, "also run a test backend on each configured backend's address (loopback only)")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "proxy: unexpected argument %q (flags only; see -help)\n", fs.Arg(0))
		return exitUsage
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: %v\n", err)
		return exitUsage
	}
	// The one place the default logger is set, so that anything logging
	// through package log or slog.Default lands in the same stream.
	slog.SetDefault(logger)

	data, err := os.ReadFile(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: %v (choose the file with -config PATH)\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(data, os.Getenv)
	if err != nil {
		// One line per problem, each naming the file and the field, as a
		// compiler would.
		for _, line := range splitLines(err) {
			fmt.Fprintf(stderr, "%s: %s\n", *configPath, line)
		}
		return exitUsage
	}
	var demoAddrs []string
	if *demo {
		if demoAddrs, err = demoAddresses(cfg.Backends); err != nil {
			fmt.Fprintf(stderr, "proxy: -demo: %v\n", err)
			return exitUsage
		}
	}

	// The proxy's live heap is small and nearly all its garbage lives for one
	// request: collecting at five times the live heap rather than twice
	// saves about 6% of CPU per request (bench/run.sh) for a few MB. GOGC,
	// when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	// Every port is bound before anything serves, so that a busy port stops
	// the program before any part of it is up (the program this one replaces
	// found out only after its admin API was already listening).
	accessLog, err := openAccessLog(cfg.AccessLog, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: cannot start: access_log: %v\n", err)
		return exitFail
	}
	defer accessLog.Close()
	// The parts that can refuse their configuration are built before
	// anything listens; loadConfig has checked what they check, so this is a
	// second line of defence.
	poolLog := newLogQueue(1024)
	p, checker, err := build(cfg, logger, poolLog)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: %v\n", err)
		return exitUsage
	}
	lns, err := listen(cfg, demoAddrs)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: cannot start: %v\n", err)
		return exitFail
	}
	if err := serve(ctx, cfg, p, checker, poolLog, lns, logger, stdout, accessLog.w); err != nil {
		logger.Error("switchyard stopped", "err", err)
		return exitFail
	}
	return exitOK
}

// splitLines returns the messages of a joined error, one per problem.
func splitLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range j.Unwrap() {
			lines = append(lines, splitLines(e)...)
		}
		return lines
	}
	return []string{err.Error()}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("-log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json, got %q", format)
}

// demoAddresses returns the address to run a test backend on for each
// configured backend (one per address, whatever the paths). The test
// backends are plain HTTP on this machine: a backend elsewhere cannot be run
// here, and one on https would not be reached.
func demoAddresses(backends []string) ([]string, error) {
	if len(backends) == 0 {
		return nil, errors.New("the config lists no backends to run")
	}
	var addrs []string
	for _, raw := range backends {
		u, err := url.Parse(raw) // already checked by pool.ParseURL
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("backend %s: the test backends speak plain http", raw)
		}
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("backend %s is not on this machine; -demo runs backends on localhost or 127.0.0.1 only", raw)
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if addr := net.JoinHostPort(u.Hostname(), port); !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// listeners are the program's bound sockets.
type listeners struct {
	proxy, admin net.Listener
	demo         []net.Listener // in the order of the addresses asked for
	demoAddrs    []string
}

func (l listeners) close() {
	for _, ln := range append([]net.Listener{l.proxy, l.admin}, l.demo...) {
		if ln != nil {
			ln.Close()
		}
	}
}

// listen binds every socket the program needs, or none. Its error names the
// config field (or flag) whose address could not be bound.
func listen(cfg Config, demoAddrs []string) (l listeners, err error) {
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.proxy, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.Port)); err != nil {
		return l, fmt.Errorf("port: %w", err)
	}
	if l.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return l, fmt.Errorf("admin_addr: %w", err)
	}
	if l.demo, err = testbackend.ListenAll(demoAddrs); err != nil {
		return l, fmt.Errorf("-demo: %w", err)
	}
	l.demoAddrs = demoAddrs
	return l, nil
}

// accessLogFile is where access_log says the access log goes: nowhere (w is
// nil), stdout, or a file opened for appending.
type accessLogFile struct {
	w io.Writer
	f *os.File
}

func openAccessLog(dest string, stdout io.Writer) (accessLogFile, error) {
	switch dest {
	case "off":
		return accessLogFile{}, nil
	case "stdout":
		return accessLogFile{w: stdout}, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return accessLogFile{}, err
	}
	return accessLogFile{w: f, f: f}, nil
}

func (a accessLogFile) Close() {
	if a.f != nil {
		a.f.Close()
	}
}

// build makes the pool and the health checker, the parts that check their
// own configuration. Neither starts a goroutine. The pool logs through
// poolLog, so that its owner loop never waits for stderr.
func build(cfg Config, log *slog.Logger, poolLog *logQueue) (*pool.Pool, *health.Checker, error) {
	p, err := pool.New(pool.Config{
		Strategy:           cfg.Strategy,
		HealthyThreshold:   cfg.HealthyThreshold,
		UnhealthyThreshold: cfg.UnhealthyThreshold,
		Logger:             slog.New(poolLog.handler(log.Handler())).With("component", "pool"),
	}, cfg.Backends...)
	if err != nil {
		return nil, nil, err
	}
	checker, err := health.New(p, health.Config{
		Interval: cfg.HealthCheckFrequency,
		Timeout:  cfg.HealthCheckTimeout,
		Path:     cfg.HealthCheckPath,
		Logger:   log.With("component", "health"),
	})
	if err != nil {
		return nil, nil, err
	}
	return p, checker, nil
}

// serve serves on lns until ctx ends or a part fails, and shuts everything
// down in order. accessOut, if not nil, receives the access log.
func serve(ctx context.Context, cfg Config, p *pool.Pool, checker *health.Checker, poolLog *logQueue,
	lns listeners, log *slog.Logger, stdout, accessOut io.Writer) error {
	var accessLog *proxy.AccessLog
	if accessOut != nil {
		accessLog = proxy.NewAccessLog(accessOut, 0)
	}
	px := proxy.New(p, proxy.Config{
		RequestTimeout: cfg.RequestTimeout,
		// A client told to come back before the next health check would most
		// likely find no backend up again.
		RetryAfter:          cfg.HealthCheckFrequency,
		TrustedProxies:      cfg.TrustedProxies,
		DialTimeout:         cfg.DialTimeout,
		IdleConnTimeout:     cfg.BackendIdleTimeout,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerBackend,
		DisableMetrics:      !cfg.Metrics,
		AccessLog:           accessLog,
		Logger:              log.With("component", "proxy"),
	})
	var metrics http.Handler
	if cfg.Metrics {
		reg := prometheus.NewRegistry()
		reg.MustRegister(px, admin.NewPoolCollector(p),
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	shuttingDown := make(chan struct{})
	adm := admin.New(p, admin.Config{
		Token:        cfg.AdminToken,
		Prober:       checker,
		ShuttingDown: shuttingDown,
		Metrics:      metrics,
		Logger:       log.With("component", "admin"),
	})

	// Requests' contexts descend from baseCtx rather than from ctx: a signal
	// must not cancel the requests in flight, which shutdown lets finish.
	// Cancelling it is the last step for the connections that Shutdown does
	// not handle.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	base := func(net.Listener) context.Context { return baseCtx }
	// A client's malformed request is its problem, not an event worth
	// logging above Debug.
	serverLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	proxySrv := &http.Server{
		Handler:           px,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		BaseContext:       base,
		ConnState:         px.ConnState,
		ErrorLog:          serverLog,
		// No ReadTimeout or WriteTimeout: they would cut off long uploads,
		// downloads and streams. request_timeout bounds the wait for a
		// backend instead.
	}
	adminSrv := &http.Server{
		Handler:           adm,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       base,
		ErrorLog:          serverLog,
	}
	var demoSrvs []*http.Server
	for _, addr := range lns.demoAddrs {
		demoSrvs = append(demoSrvs, testbackend.Server(addr, log.With("component", "demo-backend")))
	}

	// The health loop and the pool owner get contexts of their own, not the
	// group's: they must outlive the requests that still use them, and the
	// shutdown member cancels them in order once those have finished.
	healthCtx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHealth()
	poolCtx, stopPool := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPool()
	healthDone := make(chan struct{})
	// The access log is written until the last request has been logged.
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLog()
	logDone := make(chan struct{})

	// The pool's log is written until the pool owner has stopped.
	poolLogCtx, stopPoolLog := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPoolLog()

	// Every member below is waited for by g.Wait, at the end of serve.
	g, gctx := errgroup.WithContext(ctx)
	// g.Wait waits for the pool's log writer; the shutdown member stops it
	// once the pool owner has returned.
	g.Go(owned("pool log", poolLogCtx, poolLog.run))
	// g.Wait waits for the pool owner; stopPool ends it.
	g.Go(owned("pool owner", poolCtx, p.Run))
	// g.Wait waits for the health loop; stopHealth ends it, and the shutdown
	// member also waits for it, on healthDone, before stopping the pool.
	g.Go(owned("health loop", healthCtx, func(ctx context.Context) error {
		defer close(healthDone)
		return checker.Run(ctx)
	}))
	// g.Wait waits for the servers; the shutdown member's Shutdown and Close
	// end them.
	// g.Wait waits for the access log writer; stopLog ends it once every
	// handler has returned, and the shutdown member waits for it on logDone.
	if accessLog != nil {
		g.Go(owned("access log", logCtx, func(ctx context.Context) error {
			defer close(logDone)
			return accessLog.Run(ctx)
		}))
	} else {
		close(logDone)
	}
	g.Go(func() error { return serveUntilShutdown("proxy server", proxySrv, lns.proxy) })
	g.Go(func() error { return serveUntilShutdown("admin server", adminSrv, lns.admin) })
	for i, srv := range demoSrvs {
		g.Go(func() error { return serveUntilShutdown("demo backend", srv, lns.demo[i]) })
	}
	// g.Wait waits for the shutdown member; the group's context ends its wait.
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "cause", context.Cause(gctx).Error())

		// (a) A load balancer in front polls /healthz: give it shutdown_delay
		// to see the 503 and stop sending before the listeners close.
		close(shuttingDown)
		time.Sleep(cfg.ShutdownDelay)

		// (b) Stop accepting, and let the requests in flight finish.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for _, srv := range []*http.Server{proxySrv, adminSrv} {
			wg.Go(func() { // waited for just below
				if err := srv.Shutdown(sctx); err != nil {
					log.Warn("shutdown_timeout passed with requests in flight; ending them", "err", err)
				}
			})
		}
		wg.Wait()

		// (c) Shutdown neither closes nor waits for upgraded connections
		// (WebSockets and the like): they get what is left of shutdown_timeout
		// to end by themselves. Then ending the base context ends them, since
		// ReverseProxy closes an upgraded connection when its request's context
		// ends, along with any request still running past the deadline.
		handlersDone := make(chan struct{})
		go func() { px.Wait(); close(handlersDone) }() // waited for just below, on handlersDone
		select {
		case <-handlersDone:
		case <-sctx.Done():
			// Requests still running are cut off. Their connections are
			// closed before their contexts end, so that a client sees its
			// request broken off: the proxy takes an ended context for a
			// client that has gone and writes nothing, which net/http, on a
			// connection still open, would send as an empty 200.
			proxySrv.Close()
			adminSrv.Close()
		}
		cancelBase()
		<-handlersDone
		// Closing again is harmless, and closes what Shutdown left open if
		// the last handlers ended just as shutdown_timeout ran out.
		proxySrv.Close()
		adminSrv.Close()

		// Every request has been logged: write out what is queued.
		stopLog()
		<-logDone

		// (d) The health loop next: nothing needs it now.
		stopHealth()
		<-healthDone

		// The demo backends served only the proxy, whose requests are over.
		for _, srv := range demoSrvs {
			srv.Close()
		}

		// (e) The pool owner last: everything above called it. Then what it
		// logged on the way.
		stopPool()
		<-p.Done()
		stopPoolLog()
		px.CloseIdleConnections()
		return nil
	})

	log.Info("switchyard started",
		"proxy", lns.proxy.Addr().String(),
		"admin", lns.admin.Addr().String(),
		"strategy", string(cfg.Strategy),
		"backends", cfg.Backends,
		"health_check_frequency", cfg.HealthCheckFrequency.String())
	if len(demoSrvs) > 0 {
		printDemo(stdout, lns, cfg.AdminToken != "")
	}
	err := g.Wait()
	if err == nil {
		log.Info("switchyard stopped")
	}
	return err
}

// owned adapts a member that runs until its own ctx is cancelled, which only
// the shutdown member does. Returning before that, even with nil, is a
// failure: the member's work is not done, and the error shuts the group down
// (errgroup cancels only on an error).
func owned(name string, ctx context.Context, fn func(context.Context) error) func() error {
	return func() error {
		err := fn(ctx)
		if ctx.Err() == nil { // it was not asked to stop
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}

// serveUntilShutdown runs srv.Serve on ln. Serve returns ErrServerClosed only
// once Shutdown or Close has been called, which only the shutdown member does;
// any other return is a failure.
func serveUntilShutdown(name string, srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// printDemo tells a person running -demo what to try. The token itself is
// not printed: whoever set it knows it, and terminals get recorded.
func printDemo(w io.Writer, lns listeners, withToken bool) {
	_, proxyPort, _ := net.SplitHostPort(lns.proxy.Addr().String())
	auth := ""
	if withToken {
		auth = " -H 'Authorization: Bearer <admin_token>'"
	}
	fmt.Fprintf(w, `
switchyard demo: test backends on %[1]s, the proxy on port %[2]s, its admin API on %[3]s.
Try:
  curl localhost:%[2]s/
  curl 'localhost:%[2]s/?sleep=2s'
  curl%[5]s %[3]s/status
  curl%[5]s -X POST %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "http://localhost:8085"}'
  curl%[5]s -X DELETE %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "%[4]s"}'
A backend added with POST is used once a health check passes: start one with
  PORT=8085 go run ./cmd/testbackend
Ctrl-C stops everything.

`, strings.Join(lns.demoAddrs, ", "), proxyPort, lns.admin.Addr().String(), "http://"+lns.demoAddrs[0], auth)
}

// Command proxy is switchyard, a load-balancing HTTP reverse proxy.
//
//	go run ./cmd/proxy                 # reads ./config.json
//	go run ./cmd/proxy -demo           # and runs the configured backends in-process
//	go run ./cmd/proxy -config /etc/switchyard.json -log-format json
//
// Goroutines: every long-lived goroutine of the program is a member of one
// errgroup, started by program.serve and waited for before run returns. The
// tasks and servers it runs are listed once, in program.go (buildTasks,
// attach), and the order in which they stop once, in lifecycle.go
// (program.stages); the README's tables are rendered from those lists.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/switchyard-proxy/switchyard/cmd/internal/statefile"
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
	demoTLS := fs.Bool("tls", false, "with -demo and no tls in the config: also serve HTTPS and HTTP/2 on -tls-port, with a self-signed certificate made at start")
	demoTLSPort := fs.Int("tls-port", 8443, "the port of -demo -tls")
	check := fs.Bool("check", false, "check the config file (and the state file, if it names one) and exit: 0 if good, 2 if not; binds no port")
	probe := fs.String("probe", "", "GET this URL (such as http://127.0.0.1:8081/healthz) and exit 0 if it answers 2xx, 1 if not: an exec health probe for images without a shell")
	version := fs.Bool("version", false, "print the version and exit")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *demoTLS && !*demo {
		fmt.Fprintln(stderr, "proxy: -tls is for -demo; for TLS in earnest, set tls in the config file")
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "proxy: unexpected argument %q (flags only; see -help)\n", fs.Arg(0))
		return exitUsage
	}
	if *version {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	if *probe != "" {
		return runProbe(ctx, *probe, stderr)
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
	// A state file, if there is one, says what ran before: it is checked as
	// strictly as the config, and never silently ignored.
	fileBackends := cfg.Backends
	if cfg.StateFile != "" {
		st, ok, err := statefile.Load(cfg.StateFile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cfg.StateFile, err)
			fmt.Fprintf(stderr, "proxy: the state file (state_file in %s) cannot be used; to start without it, move it away\n", *configPath)
			return exitUsage
		}
		if ok && !*check {
			cfg.Backends = restore(st, cfg.Backends)
		}
	}
	if *check {
		// What does not stop the proxy but needs a person: a certificate
		// close to its expiry, or one no client can be given.
		if cfg.TLS != nil {
			for _, w := range cfg.TLS.Set.Warnings(time.Now()) {
				fmt.Fprintf(stderr, "%s: warning: tls.certificates[%d]: %v\n", *configPath, w.Index, w.Err)
			}
		}
		fmt.Fprintf(stdout, "config %s: ok\n", *configPath)
		return exitOK
	}
	var demoAddrs []string
	if *demo {
		if demoAddrs, err = demoAddresses(cfg.Backends); err != nil {
			fmt.Fprintf(stderr, "proxy: -demo: %v\n", err)
			return exitUsage
		}
	}
	if *demoTLS && cfg.TLS == nil {
		dir, err := os.MkdirTemp("", "switchyard-demo-tls-")
		if err == nil {
			defer os.RemoveAll(dir)
			cfg.TLS, err = demoTLSConfig(dir, *demoTLSPort)
		}
		if err != nil {
			fmt.Fprintf(stderr, "proxy: -tls: %v\n", err)
			return exitFail
		}
	}

	// The proxy's live heap is small and nearly all its garbage lives for one
	// request: collecting at five times the live heap rather than twice
	// saves about 6% of CPU per request (bench/run.sh) for a few MB. GOGC,
	// when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// Under a container's memory limit, a soft limit below it (memlimit.go).
	if limit, ok := cgroupMemoryLimit(os.DirFS("/")); ok && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit(limit))
	}

	// Every part that checks its configuration is built, and every port
	// bound, before anything serves, so that a busy port stops the program
	// before any part of it is up (the program this one replaces found out
	// only after its admin API was already listening).
	accessLog, err := openAccessLog(cfg.AccessLog, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: cannot start: access_log: %v\n", err)
		return exitFail
	}
	// SIGHUP (systemctl reload, logrotate) reloads the config; without this
	// it would end the process. Registered here rather than in main so that
	// tests of run can send it too.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// loadConfig has checked what the parts check, so this is a second line
	// of defence.
	prog, err := build(cfg, logger, stdout, accessLog, source{path: *configPath, data: data, backends: fileBackends, env: os.Getenv, hup: hup})
	if err != nil {
		accessLog.Close()
		fmt.Fprintf(stderr, "proxy: %v\n", err)
		return exitUsage
	}
	// The access log's destination may change with reloads; whatever it is
	// at the end is closed once everything has stopped.
	defer func() { prog.control.accessOut.Close() }()
	if cfg.StateFile != "" {
		// The file says what runs from now on, config_backends included.
		if err := statefile.Write(statefile.OS, cfg.StateFile, statefile.State{
			ConfigBackends: stateBackends(prog.control.fileBackends), Backends: stateBackends(cfg.Backends)}); err != nil {
			fmt.Fprintf(stderr, "proxy: cannot start: state_file: %v\n", err)
			return exitFail
		}
	}
	lns, err := listen(cfg, demoAddrs, prog.tlsConfig(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "proxy: cannot start: %v\n", err)
		return exitFail
	}
	prog.attach(lns)
	if err := prog.serve(ctx); err != nil {
		logger.Error("switchyard stopped", "err", err)
		return exitFail
	}
	return exitOK
}

// versionString is the module's version and the VCS revision it was built
// from, as the Go toolchain recorded them.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "switchyard (no build information)"
	}
	v := "switchyard " + info.Main.Version
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	if at != "" {
		v += " " + at
	}
	return v + " " + info.GoVersion
}

// runProbe is -probe: one GET, bounded by a few seconds.
func runProbe(ctx context.Context, url string, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: -probe: %v\n", err)
		return exitUsage
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: -probe: %v\n", err)
		return exitFail
	}
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		fmt.Fprintf(stderr, "proxy: -probe: %s\n", res.Status)
		return exitFail
	}
	return exitOK
}

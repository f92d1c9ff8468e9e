// Package health runs active health checks against the pool's backends and
// reports each result to the pool's owner loop, which applies the thresholds
// and changes a backend's state.
//
// A probe is an HTTP GET on a new connection; a 2xx or 3xx answer within the
// timeout is a pass, anything else a failure.
//
// Goroutines: Checker.Run is a loop the caller runs (cmd/proxy does, in its
// errgroup). Each round of it probes with ProbeAll, which starts one
// goroutine per backend and waits for all of them before it returns, so no
// goroutine of this package outlives a round (or a caller's ProbeAll), and
// rounds never overlap. Cancelling Run's context cuts the probes short and
// ends the loop. Checker.Probe runs in its caller's goroutine.
package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout      = 2 * time.Second
	DefaultDownInterval = 2 * time.Second
	DefaultPath         = "/"
	DefaultUserAgent    = "switchyard-health-check/1.0"
)

// maxDrain bounds how much of a response body a probe reads. A health page is
// small; a backend that answers the check with a large body should not cost
// more than a check is worth.
const maxDrain = 64 << 10

// Pool is what the checker needs from the pool. *pool.Pool satisfies it.
type Pool interface {
	// Backends are those to check every Interval; DownBackends those of them
	// to check every DownInterval too.
	Backends(ctx context.Context) ([]*pool.Backend, error)
	DownBackends(ctx context.Context) ([]*pool.Backend, error)
	ReportProbe(ctx context.Context, b *pool.Backend, r pool.ProbeResult) error
}

// Config says how often and how to check.
type Config struct {
	// Interval is the time between the starts of two rounds. It must be
	// positive. A round that takes longer delays the next one.
	Interval time.Duration
	// DownInterval is the time between the rounds that check only the
	// backends that are down or ejected, so that one that comes back is
	// noticed sooner than the next full round (HAProxy's downinter). Zero
	// means the smaller of 2s and Interval; it must not exceed Interval.
	DownInterval time.Duration
	// Timeout bounds each probe, from dialling to the end of the response.
	// Zero means DefaultTimeout. It must be less than Interval, so that a round of
	// probes that time out still ends before the next one is due.
	Timeout time.Duration
	// Path is requested on every backend, after the backend URL's own path.
	// It must begin with "/" and may carry a query. Zero means "/".
	Path string
	// UserAgent is sent with every probe, so that backends can leave checks
	// out of their access logs. Zero means DefaultUserAgent.
	UserAgent string
	// BackendCAs verify https backends' certificates, as the proxy's
	// traffic does. Nil means the system's roots.
	BackendCAs *x509.CertPool
	// GRPC checks with the gRPC health protocol instead of a GET of Path:
	// a grpc.health.v1.Health/Check call, which passes when the backend
	// answers SERVING for GRPCService ("" is the server as a whole, as
	// grpc_health_probe and Kubernetes' gRPC probes ask). A gRPC server
	// answers a GET with 415, so this is the check for gRPC backends. It
	// goes over HTTP/2: with prior knowledge for http:// and h2c://
	// backends, over TLS for https:// ones.
	GRPC        bool
	GRPCService string
	// Logger receives failed checks at Debug: the pool logs the state changes
	// they cause at Info. Nil means no logging.
	Logger *slog.Logger
}

// A Checker probes the pool's backends. Its methods are safe for concurrent
// use: the admin API calls Probe while Run is running.
type Checker struct {
	pool Pool
	log  *slog.Logger
	// cur are the settings in force; Reconfigure replaces them and tells
	// Run on changed (capacity 1: a change pending is news enough).
	cur     atomic.Pointer[settings]
	changed chan struct{}

	// probeFn does one check of b within ctx, under s, and says why it
	// passed or failed. It is probe except in tests that run in a synctest
	// bubble, where a real socket would not block durably and fake time
	// could not advance.
	probeFn func(ctx context.Context, s *settings, b *pool.Backend) (ok bool, reason string)
}

// settings are a Config checked.
type settings struct {
	interval, downInterval, timeout time.Duration
	path                            *url.URL // only Path and RawQuery are set
	userAgent                       string
	grpc                            bool
	grpcRequest                     []byte // the Check call's one message, framed
	// A probe goes over the kind of connection the traffic uses, or it
	// would pass a backend whose TLS or HTTP/2 is broken: one client per
	// backend scheme.
	plain, tls, h2c *http.Client
}

// client returns the client for a backend URL's scheme.
func (s *settings) client(scheme string) *http.Client {
	switch scheme {
	case "https":
		return s.tls
	case "h2c":
		return s.h2c
	}
	return s.plain
}

// newClient builds a probe client speaking the given protocols.
func newClient(roots *x509.CertPool, protocols func(*http.Protocols)) *http.Client {
	tr := &http.Transport{
		// Proxy is left nil: a check goes straight to the backend, whatever
		// HTTP_PROXY says, or it would be checking the proxy. The dial, like
		// the rest of the check, is bounded by the probe's context.
		DialContext: (&net.Dialer{}).DialContext,
		// A check must show that a new connection can be made now, as
		// HAProxy's do: a connection kept alive from the last round would
		// hide a backend that has stopped accepting.
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Protocols:              new(http.Protocols),
	}
	protocols(tr.Protocols)
	return &http.Client{
		Transport: tr,
		// A redirect is an answer: the backend is serving. Following it
		// would check some other server, perhaps not one of ours.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// New returns a checker for p. It reports every problem with cfg at once.
func New(p Pool, cfg Config) (*Checker, error) {
	var errs []error
	if p == nil {
		errs = append(errs, errors.New("health: Pool is nil"))
	}
	s, err := check(cfg)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		pool:    p,
		log:     cfg.Logger,
		changed: make(chan struct{}, 1),
	}
	c.cur.Store(s)
	c.probeFn = probe
	return c, nil
}

// check validates cfg and fills in its defaults.
func check(cfg Config) (*settings, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	var errs []error
	if cfg.Interval <= 0 {
		errs = append(errs, fmt.Errorf("health: Interval must be positive, got %v", cfg.Interval))
	}
	if cfg.DownInterval == 0 {
		cfg.DownInterval = min(DefaultDownInterval, cfg.Interval)
	}
	if cfg.DownInterval < 0 || (cfg.Interval > 0 && cfg.DownInterval > cfg.Interval) {
		errs = append(errs, fmt.Errorf("health: DownInterval must be positive and at most Interval (%v), got %v", cfg.Interval, cfg.DownInterval))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("health: Timeout must not be negative, got %v", cfg.Timeout))
	} else if cfg.Interval > 0 && cfg.Timeout >= cfg.Interval {
		errs = append(errs, fmt.Errorf("health: Timeout (%v) must be less than Interval (%v)", cfg.Timeout, cfg.Interval))
	}
	path, err := ParsePath(cfg.Path)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &settings{interval: cfg.Interval, downInterval: cfg.DownInterval, timeout: cfg.Timeout,
		path: &url.URL{Path: path.Path, RawPath: path.RawPath, RawQuery: path.RawQuery}, userAgent: cfg.UserAgent,
		grpc: cfg.GRPC, grpcRequest: grpcCheckRequest(cfg.GRPCService),
		plain: newClient(nil, func(p *http.Protocols) { p.SetHTTP1(true) }),
		tls:   newClient(cfg.BackendCAs, func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) }),
		h2c:   newClient(nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }),
	}, nil
}

// Reconfigure puts cfg in force: Run starts its schedule anew with the new
// intervals once the round under way (if any) has ended, and the next
// probes use the new timeout and path. cfg.Logger is ignored. It checks cfg
// as New does and changes nothing on error.
func (c *Checker) Reconfigure(cfg Config) error {
	s, err := check(cfg)
	if err != nil {
		return err
	}
	c.cur.Store(s)
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// ParsePath checks a health-check path: absolute, with an optional query,
// and nothing else (no scheme, host or fragment).
func ParsePath(p string) (*url.URL, error) {
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Fragment != "" || strings.Contains(p, "#") ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(p, "//") {
		return nil, fmt.Errorf("health: Path must be an absolute path such as /healthz, got %q", p)
	}
	return u, nil
}

// Run checks every backend at once, then again every Interval, and the
// backends that are down or ejected also every DownInterval, until ctx
// ends; then it returns nil. Rounds run one after another: one that
// outlasts its interval delays the next rather than overlapping it, so a
// backend is never probed twice at the same time by Run.
//
// Run returns an error only if the pool stops answering while ctx is still
// live, since a checker without a pool has nothing left to do.
func (c *Checker) Run(ctx context.Context) error {
	// Keep-alives are off, so there should be nothing idle to close; this
	// makes sure of it for whatever the transports keep.
	defer func() {
		s := c.cur.Load()
		for _, cl := range []*http.Client{s.plain, s.tls, s.h2c} {
			cl.CloseIdleConnections()
		}
	}()
	roundNow := true // the first round runs at once
	for {
		again, err := c.schedule(ctx, c.cur.Load(), roundNow)
		if !again {
			return err
		}
		roundNow = false // after a change of settings, the new schedule starts now
	}
}

// schedule runs rounds at the intervals of s until ctx ends or the settings
// change; it reports whether they changed. With roundNow, a full round runs
// first.
func (c *Checker) schedule(ctx context.Context, s *settings, roundNow bool) (bool, error) {
	// Tickers, not a sleep after each round, keep rounds on a fixed
	// schedule; when a round overruns, a ticker drops the ticks it missed
	// and the next round starts as soon as this one ends.
	full := time.NewTicker(s.interval)
	defer full.Stop()
	var downTicks <-chan time.Time // nil, never ready, when it would add nothing
	restartDown := func() {}
	if s.downInterval < s.interval {
		down := time.NewTicker(s.downInterval)
		defer down.Stop()
		downTicks = down.C
		restartDown = func() { down.Reset(s.downInterval) }
	}
	var list func(context.Context) ([]*pool.Backend, error) // the next round's listing; nil for none
	if roundNow {
		list = c.pool.Backends
	}
	for {
		if list != nil {
			if err := c.round(ctx, list); err != nil {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, err
			}
		}
		// A full round checks the down backends too: it restarts the down
		// rounds' schedule, and wins when both fall due at once.
		select {
		case <-full.C:
			list = c.pool.Backends
			restartDown()
		case <-downTicks:
			select {
			case <-full.C:
				list = c.pool.Backends
				restartDown()
			default:
				list = c.pool.DownBackends
			}
		case <-c.changed:
			return true, nil
		case <-ctx.Done():
			return false, nil
		}
	}
}

// round probes the backends list names, concurrently, and returns when all
// probes have.
func (c *Checker) round(ctx context.Context, list func(context.Context) ([]*pool.Backend, error)) error {
	backends, err := list(ctx)
	if err != nil {
		return fmt.Errorf("health: listing backends: %w", err)
	}
	c.ProbeAll(ctx, backends)
	return nil
}

// ProbeAll probes every backend of bs at once, as Probe does, and returns
// when the last probe has. One goroutine per probe, so that a slow backend
// does not hold up the checks of the others; each ends by its timeout or
// when ctx is cancelled, and ProbeAll waits for all of them, so a round (and
// so Run) never returns while a probe is running. A result that could not be
// delivered (ctx ended, or the pool stopped) is dropped: the next round, or
// the next listing, finds that out.
func (c *Checker) ProbeAll(ctx context.Context, bs []*pool.Backend) {
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() { _, _ = c.Probe(ctx, b) }) // waited for just below
	}
	wg.Wait()
}

// Probe checks b now, bounded by the configured timeout, and reports the
// result to the pool. The pool's thresholds decide whether b's state changes.
//
// It returns an error only if the result could not be delivered: the pool has
// stopped, or ctx ended. A probe cut short by ctx is not reported, because it
// says nothing about the backend.
func (c *Checker) Probe(ctx context.Context, b *pool.Backend) (ok bool, err error) {
	// Loaded once: a Reconfigure during the probe must not give it the
	// timeout of one config and the path or client of another.
	s := c.cur.Load()
	probeCtx, cancel := context.WithTimeout(ctx, s.timeout)
	start := time.Now()
	ok, reason := c.probeFn(probeCtx, s, b)
	took := time.Since(start)
	cancel()
	if ctx.Err() != nil {
		return false, fmt.Errorf("health: probe of %s: %w", b, ctx.Err())
	}
	if !ok {
		c.log.Debug("health check failed", "backend", b.String(), "reason", reason)
	}
	if err = c.pool.ReportProbe(ctx, b, pool.ProbeResult{OK: ok, Reason: reason, Duration: took}); err != nil {
		return ok, fmt.Errorf("health: reporting probe of %s: %w", b, err)
	}
	return ok, nil
}

// probe is the real check, of the kind s says.
func probe(ctx context.Context, s *settings, b *pool.Backend) (bool, string) {
	if s.grpc {
		return grpcProbe(ctx, s, b)
	}
	return httpProbe(ctx, s, b)
}

// toWire gives u the scheme that goes on the wire: h2c is the pool's name
// for a backend that speaks HTTP/2 without TLS; on the wire it is http, and
// the probe client's protocols make it HTTP/2 with prior knowledge.
func toWire(u *url.URL) {
	if u.Scheme == "h2c" {
		u.Scheme = "http"
	}
}

// httpProbe is the HTTP check: GET the health path on a new connection.
func httpProbe(ctx context.Context, s *settings, b *pool.Backend) (bool, string) {
	target := b.URL().JoinPath(s.path.EscapedPath())
	target.RawQuery = s.path.RawQuery
	client := s.client(target.Scheme)
	toWire(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return false, "health check: " + err.Error()
	}
	req.Header.Set("User-Agent", s.userAgent)

	resp, err := client.Do(req)
	if err != nil {
		return false, failure("health check", ctx, s, err)
	}
	// With keep-alives off the connection is not reused, but reading what a
	// small health page sends lets the backend finish its write instead of
	// meeting a reset when we hang up.
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()

	code := resp.StatusCode
	if code < 200 || code > 399 {
		return false, fmt.Sprintf("health check: status %d", code)
	}
	// StatusText rather than resp.Status: the reason is ours to word, not
	// the backend's.
	return true, fmt.Sprintf("health check: %d %s", code, http.StatusText(code))
}

// failure words why a probe's exchange failed.
func failure(what string, ctx context.Context, s *settings, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("%s: timeout after %v", what, s.timeout)
	}
	// A *url.Error repeats the method and URL; the backend is already
	// named wherever the reason is shown.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return what + ": " + err.Error()
}

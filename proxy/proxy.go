package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/h1"
)

// Pool is what the proxy needs from the backend pool. *pool.Pool
// satisfies it.
type Pool interface {
	// PickFor returns a backend for a request, ErrBusy when every one that
	// could take it is full.
	PickFor(ctx context.Context, req pool.PickRequest) (*pool.Backend, error)
	// Wait queues for a backend slot, and returns the backend acquired.
	Wait(ctx context.Context, req pool.PickRequest) (*pool.Backend, error)
	// MarkDown takes a backend out of rotation at once.
	MarkDown(ctx context.Context, b *pool.Backend, reason string) error
	// ReportOutcome is passive health: the result of each attempt.
	ReportOutcome(ctx context.Context, b *pool.Backend, status int, transportFailure bool) error
}

// Config tunes the proxy. The zero value of each field picks the default
// given beside it.
type Config struct {
	// RequestTimeout bounds how long a request waits for a backend's response
	// headers, across all its attempts. It does not cut a response that has
	// started (a long download, a stream) or an upgraded connection. It does
	// not apply to gRPC calls, which the client's grpc-timeout bounds
	// instead (see grpc.go). Zero means 30s, the original program's fixed
	// deadline.
	RequestTimeout time.Duration
	// RetryAfter is announced to clients in the Retry-After header of a 503
	// sent when no backend is up. Zero means 1s.
	RetryAfter time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For, X-Forwarded-Host and
	// X-Forwarded-Proto are kept (and appended to). From anyone else they are
	// replaced: a client must not choose the address a backend sees.
	TrustedProxies []netip.Prefix
	// MaxAttempts is how many backends one request may try. Zero means 3.
	MaxAttempts int
	// DialTimeout bounds connecting to a backend. Zero means 3s.
	DialTimeout time.Duration
	// IdleConnTimeout closes a backend connection idle this long. It should
	// be below the backends' own keep-alive timeout, so that the proxy, not
	// the backend, closes idle connections and never reuses one being closed.
	// Zero means 30s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections are kept per backend:
	// about the expected concurrency. Zero means 256. (The standard default,
	// 2, makes a busy proxy open a new connection for most requests.)
	MaxIdleConnsPerHost int
	// MaxResponseHeaderBytes caps a backend's response headers; more is a
	// 502. Zero means 64 KiB.
	MaxResponseHeaderBytes int64
	// BackendCAs verify https backends' certificates. Nil means the system's
	// roots.
	BackendCAs *x509.CertPool
	// HashKey is the part of a request that the pool's Hash strategy hashes.
	// Zero means none: picks carry no key (set it when the strategy is
	// Hash).
	HashKey HashKey
	// StickyCookie is the name of the session-affinity cookie. Empty means
	// no sticky sessions; the pool must have a StickySecret for them.
	StickyCookie string
	// DisableMetrics turns off the proxy's request metrics (the counters on
	// pool.Backend records are always kept).
	DisableMetrics bool
	// AccessLog, if not nil, receives one entry per request. Its Run must be
	// running.
	AccessLog *AccessLog
	// Logger receives errors at Warn and clients that went away at Debug.
	// Nil means no logging.
	Logger *slog.Logger
}

// errTimeout is the cause given to a request's context when RequestTimeout
// passes before a backend has answered, or a gRPC call's deadline passes.
var errTimeout = errors.New("proxy: no response from a backend within the request timeout")

// Proxy is the proxy's http.Handler.
type Proxy struct {
	rp       *httputil.ReverseProxy
	pool     Pool
	current  atomic.Pointer[settings]
	log      *slog.Logger
	handlers tracker
	metrics  *metrics // nil when disabled
	// buffers lend ReverseProxy its copy buffers, and request bodies the
	// space to keep their first bytes in (countingBody).
	buffers *bufferPool
}

// New returns a Proxy that sends requests to backends chosen by p. Zero
// values in cfg mean the defaults documented on Config; a negative value is
// an error naming the field, as are all of them at once.
func New(p Pool, cfg Config) (*Proxy, error) {
	var errs []error
	if p == nil {
		errs = append(errs, errors.New("proxy: Pool is nil"))
	}
	s, err := newSettings(cfg, nil)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	px := &Proxy{pool: p, log: log, buffers: newBufferPool()}
	px.current.Store(s)
	if !cfg.DisableMetrics {
		px.metrics = newMetrics()
	}
	px.rp = &httputil.ReverseProxy{
		Rewrite:      px.rewrite,
		Transport:    &retrier{proxy: px},
		BufferPool:   px.buffers,
		ErrorHandler: px.handleError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return px, nil
}

// settings are the Config in force, with the transports built for it. A
// request reads them once, when it arrives, and keeps them to the end:
// Reconfigure swaps them for requests that arrive after.
type settings struct {
	Config
	transports
}

// transports are one per kind of backend, so that a connection of one kind
// is never reused for another (an h2c connection for an https backend, say:
// golang/go#81656): plain HTTP/1.1, TLS (HTTP/2 when the backend offers it,
// verified against the system's roots or BackendCAs), and h2c (HTTP/2
// without TLS, as gRPC servers speak it).
//
// Plain HTTP/1.1, the common case, goes through proxy/h1, which does each
// exchange on the handler's goroutine: http.Transport's two goroutines per
// connection, and the channel handoffs between them and the handler, were
// the largest part of the proxy's own CPU per request (see the README's
// Performance section). The others keep http.Transport, which HTTP/2 needs.
type transports struct {
	plain    roundTripper
	tls, h2c *http.Transport
}

// A roundTripper is a transport whose idle connections can be closed.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// forScheme returns the transport for a backend URL's scheme.
func (t transports) forScheme(scheme string) http.RoundTripper {
	switch scheme {
	case "https":
		return t.tls
	case "h2c":
		return t.h2c
	}
	return t.plain
}

func (t transports) closeIdle() {
	for _, tr := range []roundTripper{t.plain, t.tls, t.h2c} {
		tr.CloseIdleConnections()
	}
}

// newSettings checks cfg and builds its transport, or reuses old's when
// nothing the transport depends on has changed, so that a reload keeps the
// backend connections.
func newSettings(cfg Config, old *settings) (*settings, error) {
	var errs []error
	orDefault(&errs, "RequestTimeout", &cfg.RequestTimeout, 30*time.Second)
	orDefault(&errs, "RetryAfter", &cfg.RetryAfter, time.Second)
	orDefault(&errs, "MaxAttempts", &cfg.MaxAttempts, 3)
	// The backend connection defaults are proxy/h1's, whichever transport
	// a backend's scheme gets.
	orDefault(&errs, "DialTimeout", &cfg.DialTimeout, h1.DefaultDialTimeout)
	orDefault(&errs, "IdleConnTimeout", &cfg.IdleConnTimeout, h1.DefaultIdleConnTimeout)
	orDefault(&errs, "MaxIdleConnsPerHost", &cfg.MaxIdleConnsPerHost, h1.DefaultMaxIdleConnsPerHost)
	orDefault(&errs, "MaxResponseHeaderBytes", &cfg.MaxResponseHeaderBytes, h1.DefaultMaxResponseHeaderBytes)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &settings{Config: cfg}
	if old != nil && old.DialTimeout == cfg.DialTimeout && old.IdleConnTimeout == cfg.IdleConnTimeout &&
		old.MaxIdleConnsPerHost == cfg.MaxIdleConnsPerHost && old.MaxResponseHeaderBytes == cfg.MaxResponseHeaderBytes &&
		old.BackendCAs.Equal(cfg.BackendCAs) {
		s.transports = old.transports
		return s, nil
	}
	s.transports = newTransports(cfg)
	return s, nil
}

// An HTTP/2 backend connection that has been silent for sendPingTimeout is
// pinged, and closed if no answer comes within pingTimeout: its streams
// fail and the next request dials anew. Variables only so that a test can
// shorten them (export_test.go); they are no setting.
var (
	sendPingTimeout = 10 * time.Second
	pingTimeout     = 5 * time.Second
)

// stdTransport makes plain HTTP/1.1 backends go through http.Transport, as
// before proxy/h1: the tests run once with each (see TestMain).
var stdTransport = false

// newTransports builds the transports for cfg.
func newTransports(cfg Config) transports {
	build := func(protocols func(*http.Protocols)) *http.Transport {
		tr := &http.Transport{
			// Backends are reached directly, never through HTTP_PROXY.
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: h1.DefaultKeepAlive}).DialContext,
			TLSHandshakeTimeout:    cfg.DialTimeout,
			MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:        cfg.IdleConnTimeout,
			MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
			ExpectContinueTimeout:  h1.DefaultExpectContinueTimeout,
			// A proxy passes bodies through as they are. With compression on,
			// the Transport would ask for gzip on the client's behalf and
			// unpack it again, spending CPU to change nothing.
			DisableCompression: true,
			// An HTTP/2 connection whose backend vanished without a FIN is
			// found out by a ping within seconds, rather than swallowing
			// streams until the kernel gives up on it.
			HTTP2: &http.HTTP2Config{SendPingTimeout: sendPingTimeout, PingTimeout: pingTimeout},
		}
		tr.Protocols = new(http.Protocols)
		protocols(tr.Protocols)
		return tr
	}
	t := transports{
		plain: &h1.Transport{
			DialTimeout:            cfg.DialTimeout,
			IdleConnTimeout:        cfg.IdleConnTimeout,
			MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
			MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
			ExpectContinueTimeout:  h1.DefaultExpectContinueTimeout,
		},
		tls: build(func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) }),
		h2c: build(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }),
	}
	if stdTransport {
		t.plain = build(func(p *http.Protocols) { p.SetHTTP1(true) })
	}
	t.tls.TLSClientConfig = &tls.Config{RootCAs: cfg.BackendCAs, MinVersion: tls.VersionTLS12}
	return t
}

// Reconfigure puts cfg in force for the requests that arrive from now on;
// those in flight, and upgraded connections, go on under the settings they
// started with. DisableMetrics and Logger cannot change: they are the ones
// New was given. It checks cfg as New does and changes nothing on error.
// When the backend connection settings change, a new transport takes over
// and the old one's idle connections are closed.
func (p *Proxy) Reconfigure(cfg Config) error {
	old := p.current.Load()
	cfg.DisableMetrics, cfg.Logger = old.DisableMetrics, old.Logger
	s, err := newSettings(cfg, old)
	if err != nil {
		return err
	}
	p.current.Store(s)
	if s.transports != old.transports {
		old.closeIdle()
	}
	return nil
}

// orDefault applies the rule every constructor of this project follows: a
// zero value means the documented default, a negative one is an error
// naming the field.
func orDefault[T int | int64 | time.Duration](errs *[]error, name string, v *T, def T) {
	switch {
	case *v < 0:
		*errs = append(*errs, fmt.Errorf("proxy: %s must not be negative, got %v", name, *v))
	case *v == 0:
		*v = def
	}
}

// requestState is one request's bookkeeping, shared between ServeHTTP and the
// retrier through the request's context.
type requestState struct {
	// s are the settings in force when the request arrived.
	s *settings
	// client is the inbound request's context: when it is done the client
	// has gone away, as opposed to the request timing out.
	client context.Context
	// timer cancels the request with errTimeout unless a response arrives;
	// for a gRPC call, when its deadline passes, answer or not. Nil for a
	// gRPC call without a deadline.
	timer *time.Timer
	// grpc is set for a gRPC call; deadline is its grpc-timeout counted
	// from its arrival, zero if it has none.
	grpc     bool
	deadline time.Time
	// tried are the backends attempted so far; buf saves an allocation.
	tried []*pool.Backend
	buf   [3]*pool.Backend
	// serving is the backend whose response is being sent to the client. It
	// holds an in-flight count until ServeHTTP returns.
	serving *pool.Backend
	// cut watches the response body of the backend that answered.
	cut cutBody
	// What the pick needs of the request: its sticky cookie, its hash key;
	// whether a cookie set on the response must be Secure; and whether the
	// peer is one of TrustedProxies, whose forwarding headers are kept.
	sticky  string
	hash    uint64
	hasHash bool
	secure  bool
	trusted bool

	// What was sent to the client (the retrier needs to know of 1xx
	// answers), and for metrics and the access log when the request
	// arrived and the class of error if any.
	start    time.Time
	rec      recorder
	errClass string
	upgraded bool // a backend answered 101 Switching Protocols
}

type stateKey struct{}

// ServeHTTP proxies one request. The backend that answers is counted in
// flight until the response has been sent, or the upgraded connection has
// closed, whichever way ServeHTTP ends: normally, by the client going away,
// or by a panic (ReverseProxy aborts a broken response with one).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handlers.add()
	defer p.handlers.done()

	s := p.current.Load()
	st := &requestState{s: s, client: r.Context()}
	st.tried = st.buf[:0]
	st.rec.ResponseWriter = w
	w = &st.rec
	if p.metrics != nil || s.AccessLog != nil {
		st.start = time.Now()
		defer p.observe(st, r)
	}
	// What no backend may see is answered before anything is spent on
	// the request (and before anything reads it: the framing verdict must
	// be taken first).
	if p.refuse(w, r, st) {
		return
	}

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	// The peer's address is parsed once for all who need it, and only
	// when someone does; it stays invalid if RemoteAddr is no address.
	var peer netip.Addr
	if len(s.TrustedProxies) > 0 || s.HashKey.Kind == "client_ip" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			peer = ap.Addr().Unmap()
			st.trusted = s.trustedAddr(peer)
		}
	}
	if s.HashKey.Kind != "" {
		st.hash, st.hasHash = s.hash(r, peer, st.trusted)
	}
	if s.StickyCookie != "" {
		if c, err := r.Cookie(s.StickyCookie); err == nil {
			st.sticky = c.Value
		}
		st.secure = r.TLS != nil || (st.trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
	}
	if st.grpc = isGRPC(r); st.grpc {
		// request_timeout would cut a stream whose server sends its
		// headers late; the call's own deadline bounds it instead. A
		// malformed grpc-timeout is the backend's to refuse.
		if d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout")); ok {
			st.deadline = time.Now().Add(d)
			st.timer = time.AfterFunc(d, func() { cancel(errTimeout) })
		}
	} else {
		st.timer = time.AfterFunc(s.RequestTimeout, func() { cancel(errTimeout) })
	}
	if st.timer != nil {
		defer st.timer.Stop()
	}
	defer func() {
		if st.serving != nil {
			st.serving.Release()
		}
	}()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
}

// Wait blocks until every ServeHTTP call has returned. http.Server.Shutdown
// does not wait for upgraded connections; whoever shuts the server down ends
// them by cancelling the server's base context, then calls Wait.
func (p *Proxy) Wait() { p.handlers.wait() }

// CloseIdleConnections closes the idle connections to backends.
func (p *Proxy) CloseIdleConnections() { p.current.Load().closeIdle() }

// handleError is the one place where a failed request gets its status:
// 503 when no backend is up, 504 when the request timed out, 502 for anything
// else a backend did wrong. The client never sees the error's text. A gRPC
// client gets the same as a gRPC status (UNAVAILABLE, or DEADLINE_EXCEEDED
// for the timeout), counted and logged under the HTTP status.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	// Every request ReverseProxy reports an error for derives from the one
	// ServeHTTP gave it, which carries the state.
	st := r.Context().Value(stateKey{}).(*requestState)
	if errors.Is(err, errClientBody) && p.clientBodyError(w, r, st, err) {
		return
	}
	attrs := []any{"method", r.Method, "path", r.URL.Path, "error", err, "attempts", len(st.tried)}
	if len(st.tried) > 0 {
		attrs = append(attrs, "backend", st.tried[len(st.tried)-1].String())
	}
	if st.client.Err() != nil {
		// The client went away: there is nobody to answer, and the backend
		// is not to blame. 499 is nginx's name for this. Nothing must be
		// written, and returning would not do: a handler that returns
		// without writing is sent as an empty 200, which a client that
		// only half-closed its side (net/http ends the request's context
		// on that too) would take for a success. Aborting closes the
		// connection unanswered.
		st.errClass = classClientGone
		p.log.Debug("client went away", append(attrs, "status", 499)...)
		panic(http.ErrAbortHandler)
	}
	code, class := http.StatusBadGateway, classBackend
	switch {
	case errors.Is(err, errTimeout), errors.Is(context.Cause(r.Context()), errTimeout):
		code, class = http.StatusGatewayTimeout, classTimeout
	case errors.Is(err, pool.ErrNoBackend), errors.Is(err, actor.ErrStopped):
		code, class = http.StatusServiceUnavailable, classNoBackend
	case errors.Is(err, errNoConnection):
		// Nothing reached a backend: unavailable, not a gateway's failure
		// (HAProxy and Envoy answer so too).
		code, class = http.StatusServiceUnavailable, classConnect
	case errors.Is(err, pool.ErrQueueFull), errors.Is(err, pool.ErrQueueTimeout):
		code, class = http.StatusServiceUnavailable, classQueue
	case isDialError(err):
		class = classConnect
	}
	var retryAfter time.Duration
	if code == http.StatusServiceUnavailable {
		retryAfter = st.s.RetryAfter
	}
	p.log.Warn("proxy error", append(attrs, "status", code)...)
	st.errClass = class
	if st.grpc {
		grpcCode, msg := grpcAnswer(class, err)
		writeGRPCError(&st.rec, grpcCode, msg, retryAfter, code)
		return
	}
	if retryAfter > 0 {
		secs := int((retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	http.Error(w, http.StatusText(code), code)
}

// clientBodyError answers a request whose body could not be read: the
// client's fault, not the backend's, so a Debug line with no backend named,
// and the connection closed, since what is left of the body cannot be
// framed. A client that stopped sending (client_body_timeout) is told 408
// although net/http has ended the request's context on the read's timeout:
// it is still there, and an answer-less return would be sent as an empty
// 200. It reports false for a client that has left: the caller answers it
// as one.
func (p *Proxy) clientBodyError(w http.ResponseWriter, r *http.Request, st *requestState, err error) bool {
	code := clientBodyStatus(err)
	if code != http.StatusRequestTimeout && st.client.Err() != nil {
		return false
	}
	st.errClass = classClientBody
	p.log.Debug("client's request body could not be read", "method", r.Method, "path", r.URL.Path, "error", err, "status", code)
	if st.grpc {
		// The HTTP-to-gRPC mapping of the gRPC spec: 400 is INTERNAL, 408
		// has no gRPC meaning. An HTTP/2 stream's framing is the
		// connection's, intact: no reason to close it, and its other
		// calls with it.
		grpcCode := grpcInternal
		if code == http.StatusRequestTimeout {
			grpcCode = grpcUnknown
		}
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		writeGRPCError(&st.rec, grpcCode, "switchyard: the request's body could not be read", 0, code)
		return true
	}
	w.Header().Set("Connection", "close")
	http.Error(w, http.StatusText(code), code)
	return true
}

// tracker counts running handlers, so that the owner of the server can wait
// for the ones http.Server.Shutdown does not wait for (upgraded connections).
//
// A sync.WaitGroup would not do: requests on kept-alive connections may
// still start while Wait is waiting, and a WaitGroup forbids Add from zero
// during a Wait. A mutex around the count would do, but every request would
// take it twice, and the request path shares no lock between requests. So
// the count is an atomic, and the mutex is taken only once someone waits:
// by done when the count reaches zero, and by wait. The two atomics are
// ordered so that one side always sees the other, as in WaitGroup: wait
// sets waiting before it reads the count, done lowers the count before it
// reads waiting. If done misses waiting, wait sees the count at zero and
// returns; if wait sees a count above zero, done sees waiting and closes
// idle.
type tracker struct {
	n       atomic.Int64
	waiting atomic.Bool // set for good by the first wait

	mu   sync.Mutex
	idle chan struct{} // closed when n drops to zero; nil when nobody waits
}

func (t *tracker) add() { t.n.Add(1) }

func (t *tracker) done() {
	if t.n.Add(-1) != 0 || !t.waiting.Load() {
		return // the common path: one atomic add, no lock
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n.Load() == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

func (t *tracker) wait() {
	t.mu.Lock()
	t.waiting.Store(true)
	if t.n.Load() == 0 {
		t.mu.Unlock()
		return
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	<-idle
}

// bufferPool lends ReverseProxy its body-copy buffers, so that each response
// does not allocate 32 KiB of its own. It holds array pointers, which go in
// and out of the sync.Pool without allocating.
type bufferPool struct{ p sync.Pool }

const bufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(s []byte) {
	if cap(s) >= bufferSize {
		b.p.Put((*[bufferSize]byte)(s[:bufferSize]))
	}
}

package h1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"
)

// Errors returned by the Transport. Each is wrapped with details; check them
// with errors.Is.
var (
	// ErrConfig says that a field of the Transport holds a value it cannot
	// use. The message names the field.
	ErrConfig = errors.New("h1: invalid configuration")
	// ErrUnsupportedScheme is returned for a URL that is not "http". There is
	// no fallback to another transport: the caller chooses one.
	ErrUnsupportedScheme = errors.New("h1: unsupported protocol scheme")
	// ErrHeaderTooLarge says that the backend's response headers (with those
	// of any 1xx responses not reported through httptrace) exceeded
	// MaxResponseHeaderBytes.
	ErrHeaderTooLarge = errors.New("h1: response headers too large")
	// ErrNoResponse says that the connection failed or was closed by the
	// backend after the request was sent and before any byte of a response
	// arrived.
	ErrNoResponse = errors.New("h1: connection closed before a response")
	// ErrBodyClosed is returned by a read of a response body after its Close.
	ErrBodyClosed = errors.New("h1: read on closed response body")
)

// Defaults for the Transport's zero fields.
const (
	DefaultDialTimeout            = 3 * time.Second
	DefaultIdleConnTimeout        = 30 * time.Second
	DefaultMaxIdleConnsPerHost    = 256
	DefaultMaxResponseHeaderBytes = 64 << 10
	DefaultExpectContinueTimeout  = time.Second
)

// DefaultKeepAlive is the TCP keep-alive period of the dialer that a nil
// DialContext stands for.
const DefaultKeepAlive = 30 * time.Second

// Transport is an http.RoundTripper for "http" URLs over HTTP/1.1. It keeps
// a bounded pool of idle connections per backend (per URL Host, as written).
//
// The zero value is ready to use with the defaults given beside each field.
// A negative field is an error, not a default: Validate reports it, and
// RoundTrip returns it (wrapping ErrConfig) for every request. The fields
// must not be changed after the first RoundTrip: like http.Transport, it
// reads them once. A Transport must not be copied after first use.
//
// Compared with http.Transport for plain HTTP/1.1: there is no Proxy,
// compression, Request.Cancel, CancelRequest or ResponseHeaderTimeout (use
// the request's context), and Request.GetBody is not used: a request with a
// body is sent again on another connection only when nothing of it was sent
// (see RoundTrip). Invalid header names and values are not refused as
// http.Transport refuses them; (*http.Request).Write drops such names and
// replaces newlines in values, so nothing can be smuggled. (A proxy forwards
// headers that its http.Server has already checked.)
type Transport struct {
	// DialContext connects to a backend. Nil means a net.Dialer with
	// DialTimeout and a 30 s TCP keep-alive. A custom DialContext gets a
	// context that ends after DialTimeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds connecting to a backend. Zero means 3 s.
	DialTimeout time.Duration
	// IdleConnTimeout is how long an idle connection is kept: then its
	// socket is closed. It should be below the backends' own keep-alive
	// timeout, so that the proxy, not the backend, closes idle connections.
	// Zero means 30 s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle connections are kept per
	// host:port; a connection finishing a request beyond that is closed.
	// Zero means 256. (http.Transport's default, 2, makes a busy proxy open a
	// connection for most requests.)
	MaxIdleConnsPerHost int
	// MaxResponseHeaderBytes caps the size of a response's headers; more is
	// an error wrapping ErrHeaderTooLarge. Zero means 64 KiB.
	MaxResponseHeaderBytes int64
	// ExpectContinueTimeout is how long a request with "Expect:
	// 100-continue" and a body waits for the backend's 100 Continue before
	// sending the body anyway. Zero means 1 s.
	ExpectContinueTimeout time.Duration

	once  sync.Once
	s     settings
	err   error    // from Validate, returned by every RoundTrip
	pools sync.Map // URL host -> *hostPool, until it has had no connection for idleTimeout
}

// settings are the Transport's fields with defaults filled in, read once.
type settings struct {
	dial            func(ctx context.Context, network, addr string) (net.Conn, error)
	customDial      bool // dial is the user's: bound it with dialTimeout ourselves
	dialTimeout     time.Duration
	idleTimeout     time.Duration
	maxIdle         int
	maxHeaderBytes  int64
	continueTimeout time.Duration
}

// Validate reports every field that holds a value the Transport cannot use
// (a negative one), each error naming its field and wrapping ErrConfig.
func (t *Transport) Validate() error {
	var errs []error
	bad := func(field string, v any) {
		errs = append(errs, fmt.Errorf("%w: %s must not be negative, got %v", ErrConfig, field, v))
	}
	if t.DialTimeout < 0 {
		bad("DialTimeout", t.DialTimeout)
	}
	if t.IdleConnTimeout < 0 {
		bad("IdleConnTimeout", t.IdleConnTimeout)
	}
	if t.MaxIdleConnsPerHost < 0 {
		bad("MaxIdleConnsPerHost", t.MaxIdleConnsPerHost)
	}
	if t.MaxResponseHeaderBytes < 0 {
		bad("MaxResponseHeaderBytes", t.MaxResponseHeaderBytes)
	}
	if t.ExpectContinueTimeout < 0 {
		bad("ExpectContinueTimeout", t.ExpectContinueTimeout)
	}
	return errors.Join(errs...)
}

func (t *Transport) init() {
	if t.err = t.Validate(); t.err != nil {
		return
	}
	s := settings{
		dial:            t.DialContext,
		customDial:      t.DialContext != nil,
		dialTimeout:     orDefault(t.DialTimeout, DefaultDialTimeout),
		idleTimeout:     orDefault(t.IdleConnTimeout, DefaultIdleConnTimeout),
		maxIdle:         orDefault(t.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost),
		maxHeaderBytes:  orDefault(t.MaxResponseHeaderBytes, DefaultMaxResponseHeaderBytes),
		continueTimeout: orDefault(t.ExpectContinueTimeout, DefaultExpectContinueTimeout),
	}
	if s.dial == nil {
		s.dial = (&net.Dialer{Timeout: s.dialTimeout, KeepAlive: DefaultKeepAlive}).DialContext
	}
	t.s = s
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (t *Transport) settings() (*settings, error) {
	t.once.Do(t.init)
	return &t.s, t.err
}

// RoundTrip sends req and returns the backend's response, as
// http.RoundTripper says. It serves "http" URLs only.
//
// The exchange runs on the calling goroutine; a request with a body gets a
// second goroutine that writes it while the response is read (see the
// package documentation). The response body must be read to EOF, or closed,
// as always; at EOF the connection goes back to the pool if both sides
// allow it. A 101 Switching Protocols response's Body is an
// io.ReadWriteCloser over the connection, which is the caller's from then
// on: the request's context no longer closes it.
//
// When the request's context ends, the connection is closed at once,
// whatever stage the exchange is at, and the error returned (by RoundTrip or
// by a read of the response body) is context.Cause of that context, as
// http.Transport returns it. A dial error is the dialer's own, a
// *net.OpError with Op "dial" for the default dialer.
//
// A backend may close an idle connection at any time. An idle connection is
// checked before it is reused (a non-blocking peek at its socket, where the
// platform allows it) and closed instead if the backend has closed it or
// sent anything. When a reused connection fails after the request was sent
// and before any byte of the response arrived, the request is sent again on
// another connection if that is safe as http.Transport judges it: it has no
// body, and either its method may be repeated (GET, HEAD, OPTIONS, TRACE, or
// an Idempotency-Key header) or none of it reached the socket. A request
// with a body is not sent again once writing it has begun (http.Transport
// would need Request.GetBody for that, which a proxy does not set); the
// check before reuse is what keeps it off a connection already closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := t.settings()
	if err == nil {
		err = checkRequest(req)
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	hp := t.hostPool(req.URL, s)
	for {
		if ctx.Err() != nil {
			closeBody(req)
			return nil, context.Cause(ctx)
		}
		c, err := t.getConn(ctx, hp, s, trace)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		res, err := c.roundTrip(ctx, req, s, trace)
		if err == errRetry {
			continue // c is closed; the request and its body are untouched
		}
		return res, err
	}
}

// errRetry is returned by conn.roundTrip when a reused connection failed in
// a way that allows sending the request again on another.
var errRetry = errors.New("h1: retry on another connection")

func checkRequest(req *http.Request) error {
	switch {
	case req.URL == nil:
		return errors.New("h1: nil Request.URL")
	case req.Header == nil:
		return errors.New("h1: nil Request.Header")
	case req.URL.Scheme != "http":
		return fmt.Errorf("%w %q", ErrUnsupportedScheme, req.URL.Scheme)
	case req.URL.Host == "":
		return errors.New("h1: no Host in request URL")
	}
	return nil
}

// closeBody closes the request body when RoundTrip fails before handing it
// to (*http.Request).Write, which closes it otherwise, as the RoundTripper
// contract asks.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort is the address to dial: the URL's host with port 80 if it names
// none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// hostPool returns the pool for u's host, making it if there is none. The
// pools are keyed by the URL's host as written, so that finding one costs no
// work on the address: "a" and "a:80" have a pool each, for the same address.
// (A proxy's backend is always written the same way.)
func (t *Transport) hostPool(u *url.URL, s *settings) *hostPool {
	key := u.Host
	if p, ok := t.pools.Load(key); ok {
		return p.(*hostPool)
	}
	hp := newHostPool(hostPort(u), s.maxIdle, s.idleTimeout)
	hp.forget = func() { t.pools.CompareAndDelete(key, hp) }
	// Stopped until release; made before the pool is shared, since
	// whoever finds it may release it.
	hp.linger = time.AfterFunc(s.idleTimeout, hp.lapse)
	hp.linger.Stop()
	p, _ := t.pools.LoadOrStore(key, hp)
	return p.(*hostPool)
}

// getConn returns an idle connection that is still open, or a new one.
func (t *Transport) getConn(ctx context.Context, hp *hostPool, s *settings, trace *httptrace.ClientTrace) (*conn, error) {
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(hp.addr)
	}
	for {
		c := hp.get()
		if c == nil {
			break
		}
		if !c.stillOpen() {
			c.close()
			continue
		}
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: true, WasIdle: true})
		}
		return c, nil
	}

	dctx := ctx
	if s.customDial {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, s.dialTimeout)
		defer cancel()
	}
	nc, err := s.dial(dctx, "tcp", hp.addr)
	if err != nil {
		if hp.live.Load() == 0 {
			hp.release() // the pool was made for this dial, or has lost its connections
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		// The dialer's own error, unwrapped: callers classify "could not
		// connect" by its type (*net.OpError, Op "dial").
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("h1: DialContext returned neither a connection nor an error")
	}
	c := newConn(nc, hp)
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: nc})
	}
	return c, nil
}

// CloseIdleConnections closes every idle connection. Connections in use are
// not interrupted; they may become idle afterwards.
func (t *Transport) CloseIdleConnections() {
	t.pools.Range(func(_, p any) bool {
		hp := p.(*hostPool)
		hp.closeIdle()
		if hp.live.Load() == 0 {
			// Nothing is left in it: forget it now rather than at the end
			// of its lingering, as the caller asks of what is idle.
			hp.linger.Stop()
			hp.forget()
		}
		return true
	})
}

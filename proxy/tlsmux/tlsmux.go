// Package tlsmux shakes hands with the clients of a TLS port and sorts
// their connections by the protocol they chose by ALPN: those that chose
// HTTP/2 come out of one listener as *tls.Conn, for an http.Server to
// serve as it does any TLS connection, and the others (HTTP/1.1, or no
// ALPN at all) out of another.
//
// The split is there for the HTTP/1 connections. net/http negotiates
// HTTP/2 only on a *tls.Conn it is given as it is, so a wrapper that
// watches the plaintext of HTTP/1 requests (proxy/framing, which refuses
// ambiguous framing before it can smuggle a request past the proxy) can
// only go around connections that will not be HTTP/2; and which those are
// is known only once the handshake is over. So the handshake happens here,
// before the server sees the connection: HTTP/1 connections then pass the
// framing guard like those of the plain port, and HTTP/2 ones, whose
// framing is binary and net/http's own business, go straight to the
// server.
//
// Goroutines: Mux.Run is the accept loop, on its caller's goroutine
// (cmd/proxy runs it in its errgroup). It starts one goroutine per
// connection for the handshake, which ends when the handshake has failed
// or its connection has been taken by an Accept of the listener it chose,
// and at the latest by the handshake timeout or Close; Run waits for all
// of them before it returns. Close (or closing either listener) closes
// the inner listener, which ends Run, and interrupts the handshakes under
// way.
package tlsmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is what the listeners' Accept returns once the Mux is closed.
// It wraps net.ErrClosed, which net/http's Serve takes for the end.
var ErrClosed = fmt.Errorf("tlsmux: closed: %w", net.ErrClosed)

// DefaultHandshakeTimeout is the handshake limit when New is given zero.
const DefaultHandshakeTimeout = 10 * time.Second

// A Mux accepts from an inner listener and shakes hands on each
// connection. Its methods are safe for concurrent use.
type Mux struct {
	inner   net.Listener
	cfg     atomic.Pointer[tls.Config]
	timeout time.Duration

	h1, h2 *side

	// ctx ends when the Mux closes: it interrupts handshakes, and wakes
	// the handshakes waiting for an Accept.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	handshakes atomic.Uint64
	failures   atomic.Uint64
}

// New returns a Mux over inner that shakes hands with cfg, each handshake
// within handshakeTimeout (zero means DefaultHandshakeTimeout). cfg's
// NextProtos say what clients may choose: offer "h2" for the HTTP/2
// listener to have any connections. The Mux takes cfg over; SetConfig
// replaces it.
func New(inner net.Listener, cfg *tls.Config, handshakeTimeout time.Duration) (*Mux, error) {
	var errs []error
	if inner == nil {
		errs = append(errs, errors.New("tlsmux: the inner listener is nil"))
	}
	if cfg == nil {
		errs = append(errs, errors.New("tlsmux: the TLS config is nil"))
	}
	if handshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("tlsmux: the handshake timeout must not be negative, got %v", handshakeTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if handshakeTimeout == 0 {
		handshakeTimeout = DefaultHandshakeTimeout
	}
	m := &Mux{inner: inner, timeout: handshakeTimeout}
	m.cfg.Store(cfg)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.h1 = &side{m: m, conns: make(chan *tls.Conn)}
	m.h2 = &side{m: m, conns: make(chan *tls.Conn)}
	return m, nil
}

// SetConfig makes the next handshakes use cfg; connections already open
// keep what they agreed on. A nil cfg panics: it is a programmer's error.
func (m *Mux) SetConfig(cfg *tls.Config) {
	if cfg == nil {
		panic("tlsmux: SetConfig(nil)")
	}
	m.cfg.Store(cfg)
}

// HTTP1 is the listener of the connections that chose HTTP/1.1 or no
// protocol at all. Its Accept returns *tls.Conn, handshake done; closing it
// closes the Mux.
func (m *Mux) HTTP1() net.Listener { return m.h1 }

// HTTP2 is the listener of the connections that chose "h2". Its Accept
// returns *tls.Conn, handshake done, for an http.Server to serve in
// HTTP/2; closing it closes the Mux.
func (m *Mux) HTTP2() net.Listener { return m.h2 }

// Run accepts connections from the inner listener and shakes hands on each,
// on a goroutine of its own, until the Mux is closed; then it waits for the
// handshakes to end and returns nil. It returns the inner listener's error
// if Accept fails for good before that. Call it once.
func (m *Mux) Run() error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := m.inner.Accept()
		if err != nil {
			if m.ctx.Err() != nil {
				return nil
			}
			if isTemporary(err) {
				// Out of file descriptors, or the like: as net/http's Serve
				// does, back off and try again, rather than spin or give up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-m.ctx.Done():
				}
				continue
			}
			m.Close()
			return fmt.Errorf("tlsmux: accept: %w", err)
		}
		backoff = 0
		wg.Go(func() { m.handshake(c) }) // waited for by the deferred wg.Wait
	}
}

// isTemporary reports whether an Accept error may pass (EMFILE, ENFILE,
// ECONNABORTED): the test net/http's Serve makes.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handshake shakes hands on c and hands it to the listener of the protocol
// chosen, or closes it.
func (m *Mux) handshake(c net.Conn) {
	tc := tls.Server(c, m.cfg.Load())
	// The deadline bounds a client that never finishes; ctx, a Close.
	_ = c.SetDeadline(time.Now().Add(m.timeout))
	if err := tc.HandshakeContext(m.ctx); err != nil {
		m.failures.Add(1)
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	m.handshakes.Add(1)
	to := m.h1
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		to = m.h2
	}
	select {
	case to.conns <- tc:
	case <-m.ctx.Done():
		_ = tc.Close()
	}
}

// Close closes the inner listener and both listeners of the Mux, and
// interrupts the handshakes under way. Connections already accepted by a
// server stay open: they are its own. Closing again returns the first
// Close's result.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.closeErr = m.inner.Close()
	})
	return m.closeErr
}

// Stats are the Mux's counters.
type Stats struct {
	// Handshakes counts the handshakes completed.
	Handshakes uint64
	// Failures counts those that failed: a client that gave up or timed
	// out, spoke something other than TLS, or agreed on nothing with us
	// (no common version or cipher suite, no certificate for it).
	Failures uint64
}

// Stats returns the counters now.
func (m *Mux) Stats() Stats {
	return Stats{Handshakes: m.handshakes.Load(), Failures: m.failures.Load()}
}

// side is one of the Mux's two listeners.
type side struct {
	m     *Mux
	conns chan *tls.Conn
}

// Accept returns the next connection that chose this side's protocol.
func (s *side) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.m.ctx.Done():
		return nil, ErrClosed
	}
}

// Close closes the Mux: the two sides share one socket.
func (s *side) Close() error { return s.m.Close() }

// Addr is the inner listener's address.
func (s *side) Addr() net.Addr { return s.m.inner.Addr() }

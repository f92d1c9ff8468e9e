package framing

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

var (
	// ErrInvalidConfig is wrapped by every error about a Config field.
	ErrInvalidConfig = errors.New("framing: invalid config")
	// ErrClosed is returned by Accept once the Listener is closed. It
	// wraps net.ErrClosed.
	ErrClosed = fmt.Errorf("framing: listener closed: %w", net.ErrClosed)
)

// Config is the Listener's configuration. Zero values mean the documented
// defaults; negative values are errors.
type Config struct {
	// MaxHeaderBytes must be the http.Server's MaxHeaderBytes: it tells the
	// framer how long a request head the server can accept. 0 means
	// http.DefaultMaxHeaderBytes, as for the server.
	MaxHeaderBytes int
	// SendTimeout (nginx's send_timeout) bounds each write to a client:
	// a write that makes no progress for this long fails, and net/http
	// closes the connection. It is measured per write, so a slow but
	// steady download is never cut: a large write is cut into 64 KiB
	// segments, each with its own deadline. Progress is as the kernel
	// reports it: Linux wakes a blocked writer only once about half of the
	// socket's send buffer (autotuned up to a few MiB) is free, so a client
	// must take in about that much per SendTimeout. The server's own write
	// deadline applies when it is earlier. HTTP/1 only: not after a hijack
	// or on HTTP/2. The cut comes between 1 and 1.0625 times SendTimeout
	// after the last progress (the deadline is re-armed lazily). 0 means
	// off.
	SendTimeout time.Duration
	// BodyTimeout (nginx's client_body_timeout) bounds each read of a
	// request body: while the server waits for body bytes, a read that
	// gets none for this long fails with a timeout. (Not net/http's
	// one-byte background read during a handler, even when it would read
	// a pipelined request's body.) The server's own read
	// deadline applies when it is earlier; outside a body only the
	// server's deadlines apply (ReadHeaderTimeout, IdleTimeout). As with
	// SendTimeout, the cut comes between 1 and 1.0625 times BodyTimeout.
	// HTTP/1 only. 0 means off.
	BodyTimeout time.Duration
	// MaxConns (nginx's and HAProxy's maxconn) bounds the client
	// connections open at once, hijacked ones included. Beyond it Accept
	// does not accept: further connections wait in the kernel's accept
	// backlog (they are neither accepted nor dropped) until one closes.
	// 0 means unlimited.
	MaxConns int
	// Opaque says that the inner listener's bytes are not plaintext
	// HTTP/1 but TLS records, as on a TLS port's socket before the
	// handshake: its connections only count against MaxConns, with no
	// framing and no timeouts of this package (a second Listener over the
	// handshaken connections does those; see Listener). It is read as each
	// connection is accepted.
	Opaque bool
	// TLSHandshakeTimeout bounds the TLS handshake when the inner listener
	// yields *tls.Conn: net/http does not recognise the wrapped conn as
	// TLS, so the handshake runs when it asks for the connection state
	// (see Listener). 0 means 10 seconds.
	TLSHandshakeTimeout time.Duration
}

// defaultTLSHandshakeTimeout is http.Transport's usual handshake limit.
const defaultTLSHandshakeTimeout = 10 * time.Second

// settings is a validated Config with its defaults filled in. Connections
// load it on each read and write, so a SetConfig reaches them at once.
type settings struct {
	headLimit        int
	sendTimeout      time.Duration
	bodyTimeout      time.Duration
	maxConns         int
	handshakeTimeout time.Duration
	opaque           bool
}

// settings validates c, reporting every problem at once, each naming its
// field.
func (c Config) settings() (*settings, error) {
	var errs []error
	negative := func(field string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: must not be negative, got %d", ErrInvalidConfig, field, v))
		}
	}
	negativeDuration := func(field string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: must not be negative, got %v", ErrInvalidConfig, field, d))
		}
	}
	negative("MaxHeaderBytes", int64(c.MaxHeaderBytes))
	negativeDuration("SendTimeout", c.SendTimeout)
	negativeDuration("BodyTimeout", c.BodyTimeout)
	negative("MaxConns", int64(c.MaxConns))
	negativeDuration("TLSHandshakeTimeout", c.TLSHandshakeTimeout)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	mhb := c.MaxHeaderBytes
	if mhb == 0 {
		mhb = http.DefaultMaxHeaderBytes
	}
	s := &settings{
		// net/http reads a head through a read limit of MaxHeaderBytes +
		// 4096 (Server.initialReadLimitSize), set when it starts reading
		// the head; bytes it had already buffered (up to its 4096-byte
		// bufio buffer, plus the one byte of its background read) do not
		// count. So a head longer than this sum is surely refused, and the
		// framer never gives up on a head the server accepts.
		headLimit:        mhb + 4096 + serverBufSize + 1,
		sendTimeout:      c.SendTimeout,
		bodyTimeout:      c.BodyTimeout,
		maxConns:         c.MaxConns,
		handshakeTimeout: c.TLSHandshakeTimeout,
		opaque:           c.Opaque,
	}
	if s.handshakeTimeout == 0 {
		s.handshakeTimeout = defaultTLSHandshakeTimeout
	}
	return s, nil
}

// Stats is a snapshot of a Listener's counters.
type Stats struct {
	// Open is the number of connections accepted and not yet closed,
	// hijacked ones included.
	Open int64
	// LimitWaits counts the Accept calls that had to wait for a connection
	// to close because MaxConns were open.
	LimitWaits uint64
	// Limit is the MaxConns in force (0: unlimited).
	Limit int
}

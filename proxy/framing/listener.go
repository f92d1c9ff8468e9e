package framing

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// Listener wraps a net.Listener for an http.Server: the connections it
// accepts frame the requests they carry (see Next), enforce SendTimeout
// and BodyTimeout, and count against MaxConns.
//
// When the inner listener yields connections with a ConnectionState method
// (*tls.Conn), so do the Listener's, so that net/http still sets
// Request.TLS; net/http only asks for that state before it reads, so the
// Listener's ConnectionState completes the handshake first, bounded by
// TLSHandshakeTimeout. net/http does not recognise the wrapped connection
// as a *tls.Conn: it cannot negotiate HTTP/2 by ALPN, so the TLS config of
// the inner listener should not offer "h2". To serve HTTP/2 over TLS as
// well, put a Listener with Opaque set over the socket (it only counts
// connections against MaxConns), shake hands on its connections, give
// those that chose "h2" to the server as they are and wrap the others in a
// second Listener, over a listener that yields them.
//
// A Listener is safe for concurrent use.
type Listener struct {
	inner net.Listener
	cfg   atomic.Pointer[settings]

	mu      sync.Mutex
	inUse   int           // slots taken: open connections and Accepts under way
	wake    chan struct{} // closed, and replaced, to wake Accepts waiting for a slot
	waiting int           // Accepts waiting on wake
	closed  bool
	done    chan struct{} // closed by Close

	open       atomic.Int64
	limitWaits atomic.Uint64
}

// NewListener wraps inner. It fails, naming the fields, if cfg has negative
// values.
func NewListener(inner net.Listener, cfg Config) (*Listener, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	l := &Listener{inner: inner, wake: make(chan struct{}), done: make(chan struct{})}
	l.cfg.Store(s)
	return l, nil
}

// SetConfig changes the configuration of a running Listener: new limits
// apply to the next Accept and to the next read or write of every open
// connection. A higher MaxConns lets waiting Accepts proceed at once; a
// lower one closes nothing. An invalid cfg changes nothing.
func (l *Listener) SetConfig(cfg Config) error {
	s, err := cfg.settings()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.cfg.Store(s)
	l.broadcastLocked()
	l.mu.Unlock()
	return nil
}

// Accept waits for a free slot under MaxConns, then for the inner
// listener's next connection. While it waits for a slot it does not call
// the inner Accept, so new connections stay in the kernel's backlog. After
// Close it returns ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	if err := l.acquire(); err != nil {
		return nil, err
	}
	c, err := l.inner.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.open.Add(1)
	fc := l.newConn(c)
	if l.cfg.Load().opaque {
		fc.raw.Store(true)
		return fc, nil
	}
	if st, ok := c.(connectionStater); ok {
		return &tlsConn{conn: fc, state: st}, nil
	}
	return fc, nil
}

// newConn wraps c, tying its framer to its ledger and letting a turn to
// HTTP/2 make it raw. It takes no slot and counts nothing open: the caller
// does that bookkeeping.
func (l *Listener) newConn(c net.Conn) *conn {
	fc := &conn{Conn: c, l: l}
	fc.f.led = &fc.led
	fc.f.h2 = func() { fc.raw.Store(true) }
	return fc
}

// connectionStater is what net/http looks for to set Request.TLS on
// connections that are not *tls.Conn.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// acquire takes a slot, waiting while MaxConns are taken.
func (l *Listener) acquire() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	waited := false
	for {
		if l.closed {
			return ErrClosed
		}
		if limit := l.cfg.Load().maxConns; limit == 0 || l.inUse < limit {
			l.inUse++
			return nil
		}
		if !waited {
			waited = true
			l.limitWaits.Add(1)
		}
		wake := l.wake
		l.waiting++
		l.mu.Unlock()
		select {
		case <-wake:
		case <-l.done:
		}
		l.mu.Lock()
		l.waiting--
	}
}

// release frees a slot.
func (l *Listener) release() {
	l.mu.Lock()
	l.inUse--
	l.broadcastLocked()
	l.mu.Unlock()
}

// broadcastLocked wakes every waiting Accept. l.mu must be held.
func (l *Listener) broadcastLocked() {
	if l.waiting > 0 {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// Close closes the inner listener and makes Accept return ErrClosed,
// waking Accepts that wait for a slot. Accepted connections stay open:
// they belong to the server.
func (l *Listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	return l.inner.Close()
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Stats returns the current counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Open:       l.open.Load(),
		LimitWaits: l.limitWaits.Load(),
		Limit:      l.cfg.Load().maxConns,
	}
}

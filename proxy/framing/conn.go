package framing

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a client connection accepted by a Listener. Its Read reads from
// the socket into p and then shows p[:n] to the framer: it never alters,
// holds back or reorders a byte, and it blocks only where the socket does,
// so errors, deadlines and aborted reads pass through unchanged.
type conn struct {
	net.Conn
	l *Listener
	// raw: hijacked, or turned to HTTP/2. No framing and no timeouts of
	// ours from then on.
	raw    atomic.Bool
	closed atomic.Bool

	// f is used only by the goroutine inside Read: net/http never has two
	// reads of a connection in flight, and orders them with its own lock.
	f   framer
	led ledger // shared by the framer and Next

	// The read deadline is the earliest of the server's and, while a read
	// of a body is in flight, BodyTimeout's. Every change of the inner
	// deadline happens under rmu and from the latest values, so an abort
	// (net/http sets a deadline in the past from another goroutine, then
	// waits for the pending Read) is never overwritten by a later one.
	rmu      sync.Mutex
	srvRead  time.Time // as the server set it
	bodyRead time.Time // BodyTimeout's, while a body read is in flight
	lastBody time.Time // BodyTimeout's last deadline, to reuse while it is due
	appliedR time.Time // as set on the inner conn

	wmu      sync.Mutex // guards srvWrite, lastSend and appliedW
	srvWrite time.Time
	lastSend time.Time // SendTimeout's last deadline, to reuse while it is due
	appliedW time.Time
	// wseq keeps a write that is cut into segments (so that SendTimeout
	// is measured per segment) whole against other writers, as one
	// net.Conn Write is.
	wseq sync.Mutex
}

// sendSegment is the most one write to the socket carries under a single
// SendTimeout deadline: a large Write is cut so that a slow but steady
// reader, which makes progress on every segment, is never cut off.
const sendSegment = 64 << 10

// Read reads from the socket and frames what it read.
func (c *conn) Read(p []byte) (int, error) {
	if c.raw.Load() {
		return c.Conn.Read(p)
	}
	s := c.l.cfg.Load()
	// A body read of net/http fills its 4 KiB buffer; the one-byte read is
	// its background read, which waits, while a handler runs, for the
	// next request or the client's close. The framer may already be inside
	// the next request's body then (its head was read ahead), but nobody
	// waits for body bytes, and a timeout there would cancel the running
	// request's context.
	timed := s.bodyTimeout > 0 && len(p) > 1 && c.f.inBody()
	c.rmu.Lock()
	if timed {
		c.bodyRead = lazyDeadline(c.lastBody, s.bodyTimeout)
		c.lastBody = c.bodyRead
	}
	_ = c.applyReadLocked() // the read's own error is the one to report
	c.rmu.Unlock()

	n, err := c.Conn.Read(p)

	if timed {
		// Outside this read the body deadline must not hold (a background
		// read of net/http waits without one). It stays set on the socket
		// until the next Read or SetReadDeadline, which both apply the
		// deadline afresh before anything waits on it.
		c.rmu.Lock()
		c.bodyRead = time.Time{}
		c.rmu.Unlock()
	}
	if n > 0 && !c.raw.Load() {
		c.f.feed(p[:n], s.headLimit)
	}
	return n, err
}

// applyReadLocked sets the inner read deadline from the current values.
// c.rmu must be held.
func (c *conn) applyReadLocked() error {
	d := earliest(c.srvRead, c.bodyRead)
	if d.Equal(c.appliedR) {
		return nil
	}
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return err
	}
	c.appliedR = d
	return nil
}

// armWriteLocked sets the inner write deadline for a write about to start.
// c.wmu must be held.
func (c *conn) armWriteLocked(sendTimeout time.Duration) {
	d := c.srvWrite
	if sendTimeout > 0 {
		c.lastSend = lazyDeadline(c.lastSend, sendTimeout)
		d = earliest(d, c.lastSend)
	}
	if !d.Equal(c.appliedW) && c.Conn.SetWriteDeadline(d) == nil {
		c.appliedW = d
	}
}

func (c *conn) armWrite(sendTimeout time.Duration) {
	c.wmu.Lock()
	c.armWriteLocked(sendTimeout)
	c.wmu.Unlock()
}

// Write writes p, each segment of it under SendTimeout.
func (c *conn) Write(p []byte) (int, error) {
	if c.raw.Load() {
		return c.Conn.Write(p)
	}
	st := c.l.cfg.Load().sendTimeout
	if st == 0 {
		c.armWrite(0) // SendTimeout may just have been turned off
		return c.Conn.Write(p)
	}
	c.wseq.Lock()
	defer c.wseq.Unlock()
	n := 0
	for {
		seg := p[n:]
		if len(seg) > sendSegment {
			seg = seg[:sendSegment]
		}
		c.armWrite(st)
		m, err := c.Conn.Write(seg)
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
}

// SetReadDeadline records the server's read deadline and applies it, or
// BodyTimeout's if a body read is in flight and that is earlier.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.srvRead = t
	return c.applyReadLocked()
}

// SetWriteDeadline records the server's write deadline and applies it.
// SendTimeout is applied by each write; its deadline stays armed between
// writes (net/http clears the write deadline after every request, and
// re-arming the timer for the next response would cost more than the
// clearing saves), which is harmless, as every write arms its own.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.srvWrite = t
	d := t
	if !c.raw.Load() && c.l.cfg.Load().sendTimeout > 0 && c.lastSend.After(time.Now()) {
		// Only while it is ahead: a *tls.Conn may write inside a Read
		// (a KeyUpdate's answer), and must not meet a deadline passed.
		d = earliest(t, c.lastSend)
	}
	if d.Equal(c.appliedW) {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return err
	}
	c.appliedW = d
	return nil
}

// becomeRaw stops framing and timing, and leaves on the socket exactly
// the deadlines the server set: net/http clears them before it reports a
// hijack, and a send deadline kept armed must not outlive that.
func (c *conn) becomeRaw() {
	c.raw.Store(true)
	c.rmu.Lock()
	if c.Conn.SetReadDeadline(c.srvRead) == nil {
		c.appliedR = c.srvRead
	}
	c.rmu.Unlock()
	c.wmu.Lock()
	if c.Conn.SetWriteDeadline(c.srvWrite) == nil {
		c.appliedW = c.srvWrite
	}
	c.wmu.Unlock()
}

// SetDeadline sets both deadlines as SetReadDeadline and SetWriteDeadline
// do.
func (c *conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Close closes the connection and frees its slot under MaxConns, once.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.release()
	}
	return err
}

// CloseWrite half-closes the connection if the inner one can. net/http
// uses it to shut down its side before a lingering close, so that a client
// still sending gets the response before the reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

var errNoCloseWrite = errors.New("framing: the connection cannot half-close")

// ReadFrom keeps the kernel's fast paths (sendfile, splice) of the inner
// connection wherever no per-write deadline is due: after a hijack, or with
// SendTimeout off. Otherwise it copies through Write, so that every segment
// gets its deadline.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok && (c.raw.Load() || c.l.cfg.Load().sendTimeout == 0) {
		if !c.raw.Load() {
			c.armWrite(0)
		}
		return rf.ReadFrom(r)
	}
	return copyPooled(writerOnly{c}, readerOnly{r})
}

// WriteTo hands over to the inner connection's fast path after a hijack;
// before that every byte read must pass the framer, so it copies through
// Read.
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok && c.raw.Load() {
		return wt.WriteTo(w)
	}
	return copyPooled(w, readerOnly{c})
}

// writerOnly and readerOnly hide every method but Write and Read, so that
// io.CopyBuffer uses the buffer it is given instead of calling back into
// ReadFrom or WriteTo.
type writerOnly struct{ io.Writer }

type readerOnly struct{ io.Reader }

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func copyPooled(dst io.Writer, src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(dst, src, buf[:])
}

// lazyDeadline returns the deadline for an operation starting now under
// timeout: prev if that still lies between now+timeout and timeout/16
// later, else now+timeout+timeout/16. Re-arming the runtime's deadline
// timer on every read or write costs about half a microsecond; this way it
// is re-armed at most once per timeout/16, and an operation without
// progress is cut after between 1 and 1.0625 times the timeout.
func lazyDeadline(prev time.Time, timeout time.Duration) time.Time {
	due := time.Now().Add(timeout)
	late := due.Add(timeout / 16)
	if !prev.Before(due) && !prev.After(late) {
		return prev
	}
	return late
}

// earliest returns the earlier of two deadlines, the zero time meaning
// none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// tlsConn is a conn over a connection with a TLS state: net/http sets
// Request.TLS from ConnectionState for connections that are not *tls.Conn.
type tlsConn struct {
	*conn
	state connectionStater
}

// ConnectionState returns the inner connection's TLS state, completing the
// handshake first: net/http asks before its first read, when a *tls.Conn
// has not yet shaken hands, and would otherwise give handlers a state
// without peer certificates or negotiated protocol. The handshake is
// bounded by TLSHandshakeTimeout; if it fails, the state is incomplete and
// the first read returns the handshake's error, on which net/http closes.
func (c *tlsConn) ConnectionState() tls.ConnectionState {
	st := c.state.ConnectionState()
	hs, ok := c.conn.Conn.(interface{ Handshake() error })
	if st.HandshakeComplete || !ok {
		return st
	}
	_ = c.conn.Conn.SetDeadline(time.Now().Add(c.l.cfg.Load().handshakeTimeout))
	_ = hs.Handshake()
	// Put back the deadlines the server set (none, so early). By hand, not
	// through applyReadLocked and armWriteLocked: the handshake's deadline
	// went to the inner conn behind appliedR and appliedW, so their short
	// cut for an unchanged deadline would leave it on the socket.
	c.rmu.Lock()
	if d := earliest(c.srvRead, c.bodyRead); c.Conn.SetReadDeadline(d) == nil {
		c.appliedR = d
	}
	c.rmu.Unlock()
	c.wmu.Lock()
	if c.Conn.SetWriteDeadline(c.srvWrite) == nil {
		c.appliedW = c.srvWrite
	}
	c.wmu.Unlock()
	return c.state.ConnectionState()
}

// connKey is the context key under which ConnContext stores the conn.
type connKey struct{}

// ConnContext is for http.Server.ConnContext: it makes the connection
// known to Next. Connections that are not from a Listener are left out.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc := asConn(c); fc != nil {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// ConnState is for http.Server.ConnState: when a handler hijacks a
// connection (a WebSocket upgrade), it stops framing and timing it; the
// bytes are no longer HTTP/1. net/http calls the hook after it has aborted
// its pending background read and before it hands the connection over.
func ConnState(c net.Conn, s http.ConnState) {
	if s != http.StateHijacked {
		return
	}
	if fc := asConn(c); fc != nil {
		fc.becomeRaw()
	}
}

func asConn(c net.Conn) *conn {
	switch c := c.(type) {
	case *conn:
		return c
	case *tlsConn:
		return c.conn
	}
	return nil
}

// ConfigureServer prepares srv to serve from a Listener: it sets
// DisableGeneralOptionsHandler (so that "OPTIONS *" reaches the handler,
// which must call Next for every request), and adds ConnContext and
// ConnState in front of the hooks srv already has. The handler must still
// call Next, and srv.MaxHeaderBytes must match the Listener's.
func ConfigureServer(srv *http.Server) {
	srv.DisableGeneralOptionsHandler = true
	if prev := srv.ConnContext; prev != nil {
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return ConnContext(prev(ctx, c), c)
		}
	} else {
		srv.ConnContext = ConnContext
	}
	if prev := srv.ConnState; prev != nil {
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			ConnState(c, s)
			prev(c, s)
		}
	} else {
		srv.ConnState = ConnState
	}
}

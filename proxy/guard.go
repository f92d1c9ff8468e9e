package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

// What the proxy refuses before any backend is picked, and what it blames
// on the client rather than the backend.

// allowed is the Allow header of a 405: the methods a reverse proxy passes
// on.
const allowed = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"

// refuse answers the requests no backend may see, and reports whether it
// did:
//   - one whose framing the connection guard found faulty (both
//     Content-Length and Transfer-Encoding, or Transfer-Encoding on
//     HTTP/1.0): 400, and the connection closed (RFC 9112 section 6.1);
//   - CONNECT: a reverse proxy is no tunnel, and a backend's 2xx would make
//     the client believe it had one: 405;
//   - TRACE: it reflects the request's headers, cookies and authorization
//     included, back to whatever script sent it (cross-site tracing): 405,
//     as nginx does;
//   - the HTTP/2 connection preface on a port that does not speak HTTP/2
//     (PRI * HTTP/2.0, what h2c clients with prior knowledge send): 505 and
//     the connection closed, never forwarded as PRI /%2A HTTP/1.1;
//   - OPTIONS *, a question about this server and not about any resource:
//     answered here, as net/http would; the asterisk with another method is
//     malformed: 400.
//
// A connection the guard could not follow (framing net/http will refuse
// itself) is served and then closed.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	// Next passes HTTP/2 requests itself.
	switch v := framing.Next(r); v.Action {
	case framing.Reject:
		st.errClass = classRefused
		p.log.Info("request refused: its framing is faulty", "reason", v.Reason, "client", r.RemoteAddr)
		framing.Refuse(w)
		return true
	case framing.Close:
		w.Header().Set("Connection", "close")
	}
	switch {
	case r.Method == http.MethodConnect || r.Method == http.MethodTrace:
		st.errClass = classRefused
		w.Header().Set("Allow", allowed)
		http.Error(w, fmt.Sprintf("%s is not served here", r.Method), http.StatusMethodNotAllowed)
		return true
	case r.Method == "PRI" && r.ProtoMajor == 2:
		st.errClass = classRefused
		w.Header().Set("Connection", "close")
		http.Error(w, "HTTP/2 without TLS is not served on this port; use HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return true
	case r.Method == http.MethodOptions && r.RequestURI == "*":
		w.Header().Set("Allow", allowed)
		w.Header().Set("Content-Length", "0")
		return true
	case r.RequestURI == "*":
		// Only OPTIONS may ask about the server as a whole (RFC 9112
		// section 3.2.4); net/http lets any method through, which would
		// reach a backend as a request for /%2A.
		st.errClass = classRefused
		http.Error(w, "the asterisk target is for OPTIONS only", http.StatusBadRequest)
		return true
	}
	return false
}

// errClientBody says that reading the client's request body failed: the
// body was malformed (bad chunking), shorter than its Content-Length, or
// the client stopped sending it for client_body_timeout. It is the
// client's doing: never a 502, never counted against the backend.
var errClientBody = errors.New("proxy: the client's request body could not be read")

// countingBody tells the retrier whether any of the request body has been
// read, and whether reading it failed. Close does nothing, as
// ReverseProxy's own wrapper does: the Transport closes the body of a
// request that failed, and a retry needs it open. The server closes the
// real body when the handler returns.
//
// It also keeps the body's first bytes (up to one 32 KiB buffer) while no
// answer has come, so that a request the backend refused unprocessed can
// be sent again whole, to it on a new connection or to another backend.
// Go's HTTP/2 Transport sends a request again itself after a REFUSED_STREAM
// or a GOAWAY that left it unprocessed, if GetBody gives it the body anew:
// getBody does, once per attempt, and the next time returns errNotProcessed
// instead, so that the retrier picks another backend rather than the
// Transport backing off for seconds on this one. A gRPC unary call fits in
// the buffer; a body longer than it cannot be sent again once read, and the
// request fails unsent (503, UNAVAILABLE).
//
// Reads come from one goroutine at a time (the Transport's body writer
// for the attempt in flight: the Transport calls GetBody only after that
// writer has returned, and getBody refuses while a read is under way);
// rewind, getBody and finish come from the handler's. mu guards what they
// share; it is never held across a read of the client's body.
type countingBody struct {
	r       io.Reader
	n       atomic.Int64 // read by the handler goroutine, written by the Transport's
	fail    atomic.Pointer[error]
	reading atomic.Int32 // reads under way
	buffers *bufferPool
	keep    bool // whether to keep the first bytes (the request has a GetBody)

	mu      sync.Mutex
	kept    []byte // the first bytes read, in a pooled buffer
	replay  int    // how many of kept the current attempt has been given
	lost    bool   // bytes were read that kept does not hold: no replay
	stopped bool   // keep no more: an answer came, or too much was read
	// The current attempt has been handed the body again by getBody, and
	// has read from it since.
	rewound, readSince bool
	rewinds            int // getBody's hand-backs in the current attempt
}

func (c *countingBody) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Add(-1)
	if c.keep {
		c.mu.Lock()
		c.readSince = true
		if c.replay < len(c.kept) {
			// A new attempt is first given what the last one was.
			n := copy(p, c.kept[c.replay:])
			c.replay += n
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
	}
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF {
		c.fail.CompareAndSwap(nil, &err)
	}
	if n > 0 && c.keep {
		c.hold(p[:n])
	}
	return n, err
}

// hold keeps b, read from the client, unless the buffer is full or the
// request needs it no more.
func (c *countingBody) hold(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		c.lost = true
		c.release()
		return
	}
	if c.kept == nil {
		c.kept = c.buffers.Get()[:0]
	}
	if len(c.kept)+len(b) > cap(c.kept) {
		c.lost, c.stopped = true, true
		c.release()
		return
	}
	c.kept = append(c.kept, b...)
	c.replay = len(c.kept)
}

// release gives the buffer back once no attempt is still to be given what
// it holds. If one is (an answer came while a new attempt was being sent
// the kept bytes), the buffer is left to the garbage collector, since a
// reader may still copy from it. Called with mu held.
func (c *countingBody) release() {
	if c.kept != nil && c.replay == len(c.kept) {
		c.buffers.Put(c.kept)
		c.kept, c.replay = nil, 0
	}
}

func (c *countingBody) Close() error { return nil }

// failed returns the error reading the body met, if any.
func (c *countingBody) failed() error {
	if c == nil {
		return nil
	}
	if e := c.fail.Load(); e != nil {
		return *e
	}
	return nil
}

// replayable reports whether a new attempt can be sent the whole body:
// there is none, nothing of it has been read, or all that has is kept; and
// no read of it is under way.
func (c *countingBody) replayable() bool {
	if c == nil {
		return true
	}
	if c.reading.Load() != 0 {
		return false
	}
	if c.n.Load() == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keep && !c.lost
}

// rewind starts a new attempt at the body's first byte.
func (c *countingBody) rewind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replay, c.rewound, c.readSince, c.rewinds = 0, false, false, 0
}

// getBody is the request's GetBody: the Transport calls it when the backend
// did not process the request and it means to send it again. It hands the
// body back, from its first byte, once per attempt; otherwise (the body was
// handed back and sent again, and refused again; or it cannot be whole) it
// says errNotProcessed, which the Transport returns, so that the retrier
// decides. A body handed back and not read since (the HTTP/2 Transport asks
// for it, finds no connection, and the Transport around it dials one and
// asks again) may be handed back again, up to three times in all, so that
// a backend refusing streams before a byte of the body is sent cannot keep
// the Transport backing off on it.
func (c *countingBody) getBody() (io.ReadCloser, error) {
	if !c.replayable() {
		return nil, errNotProcessed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rewound && c.readSince || c.rewinds >= 3 {
		return nil, errNotProcessed
	}
	c.replay, c.rewound, c.readSince = 0, true, false
	c.rewinds++
	return c, nil
}

// finish stops keeping the body: the request has its answer or has failed
// for good. The Transport may go on reading it (a streamed upload).
func (c *countingBody) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.release()
}

// errNotProcessed says that a backend refused the request before
// processing it (RFC 9113 section 8.7): it is safe to send again, if its
// body can be sent whole.
var errNotProcessed = errors.New("proxy: the backend refused the request unprocessed")

// clientBodyStatus is the status for a client whose body could not be read:
// 408 when it stopped sending, 400 when what it sent was malformed.
func clientBodyStatus(err error) int {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}

// cutBody watches a backend's response body on its way to the client, to
// tell a body the backend cut short (short of its Content-Length, or
// broken mid-chunk) from one that ended: the first is counted against the
// backend and logged. It lives in the request's state, so that watching
// costs no allocation.
type cutBody struct {
	io.ReadCloser
	p  *Proxy
	st *requestState
	b  *pool.Backend
	// ctx is the request's context as the proxy bounds it: when it has
	// ended (the client left, a gRPC call's deadline passed) the body's
	// read was cut by the proxy, not the backend.
	ctx  context.Context
	want int64 // Content-Length, -1 if not known
	got  int64
	seen bool // an error has been looked at
}

func (c *cutBody) Read(buf []byte) (int, error) {
	n, err := c.ReadCloser.Read(buf)
	c.got += int64(n)
	if err != nil && err != io.EOF && !c.seen {
		c.seen = true
		switch {
		case errors.Is(context.Cause(c.ctx), errTimeout), c.st.pastDeadline():
			c.st.errClass = classTimeout // a gRPC call's deadline, mid-answer
		case c.ctx.Err() == nil: // not the client's leaving, which cancels the backend's read
			c.b.CountTruncated()
			c.st.errClass = classTruncated
			want := "unknown (chunked)"
			if c.want >= 0 {
				want = fmt.Sprint(c.want)
			}
			c.p.log.Warn("backend response cut short", "backend", c.b.String(), "bytes", c.got, "of", want, "error", err)
		}
	}
	return n, err
}

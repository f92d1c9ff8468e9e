package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	if r.ProtoMajor == 1 || r.Method == "PRI" {
		switch v := framing.Next(r); v.Action {
		case framing.Reject:
			st.errClass = classRefused
			p.log.Info("request refused: its framing is faulty", "reason", v.Reason, "client", r.RemoteAddr)
			framing.Refuse(w)
			return true
		case framing.Close:
			w.Header().Set("Connection", "close")
		}
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
type countingBody struct {
	r    io.Reader
	n    atomic.Int64 // read by the handler goroutine, written by the Transport's
	fail atomic.Pointer[error]
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF {
		c.fail.CompareAndSwap(nil, &err)
	}
	return n, err
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
	p    *Proxy
	st   *requestState
	b    *pool.Backend
	want int64 // Content-Length, -1 if not known
	got  int64
	seen bool // an error has been looked at
}

func (c *cutBody) Read(buf []byte) (int, error) {
	n, err := c.ReadCloser.Read(buf)
	c.got += int64(n)
	if err != nil && err != io.EOF && !c.seen {
		c.seen = true
		if c.st.client.Err() == nil { // not the client's leaving, which cancels the backend's read
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

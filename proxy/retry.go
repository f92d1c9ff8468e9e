package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"

	"github.com/switchyard-proxy/switchyard/pool"
)

// retrier stands where ReverseProxy expects its Transport. For each attempt
// it picks a backend, points the request at it and hands it to the shared
// http.Transport; when the attempt fails in a way that is safe to repeat, it
// tries another backend.
//
// An attempt may be repeated when the request never reached its backend (the
// connection could not be made: nothing was sent, whatever the method), or
// when the backend dropped the connection before answering a GET, HEAD or
// OPTIONS without a body (safe methods, RFC 9110 section 9.2.1). It is never
// repeated once the client has gone, once the request has timed out, when
// part of the request body has been read, after MaxAttempts backends, or
// once an interim answer (a 1xx such as 103 Early Hints, which ReverseProxy
// forwards as it arrives) has reached the client: a response is only
// returned once a backend has sent its final headers, so until then nothing
// else has.
type retrier struct {
	proxy *Proxy
}

func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.proxy
	ctx := req.Context()
	st := ctx.Value(stateKey{}).(*requestState)

	// Each attempt rewrites the URL from the inbound one.
	inbound := *req.URL
	host := req.Host
	var body *countingBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &countingBody{r: req.Body}
		req.Body = body
	}

	var lastErr error
	var failed *pool.Backend // the last attempt's backend, until another takes over
	for {
		b, err := p.pool.Pick(ctx, st.tried)
		if err != nil {
			if lastErr != nil && errors.Is(err, pool.ErrNoBackend) {
				// Every backend left has been tried. The client is told what
				// went wrong with the last one (502), not that the pool was
				// empty to begin with (503).
				return nil, lastErr
			}
			return nil, err
		}
		res, err := t.attempt(req, st, b, inbound, host)
		if errors.Is(err, errRemoved) {
			continue // not an attempt; the pool will not offer b again
		}
		if failed != nil {
			failed.CountRetry() // its request is now another backend's
			failed = nil
		}
		if err == nil {
			return res, nil
		}

		reached := !isDialError(err)
		if !reached {
			b.CountConnectFailure()
		}
		if !reached && ctx.Err() == nil {
			// The backend refused or could not be reached: take it out of
			// rotation now rather than at the next health check. A failure
			// after the connection was made (a reset, a handler that
			// panicked) says nothing about the next request, so it does not.
			_ = p.pool.MarkDown(context.WithoutCancel(ctx), b, err.Error())
		}
		if !t.mayRetry(req, st, body, reached) {
			return nil, err
		}
		lastErr, failed = err, b
		p.log.Debug("retrying on another backend", "backend", b.String(), "error", err)
	}
}

// errRemoved says that a picked backend was removed before it was acquired.
var errRemoved = errors.New("proxy: backend removed before use")

// attempt sends req to b. b is counted in flight for the attempt, whichever
// way it ends, panics included; when it brings a response, the count passes
// to st.serving, which ServeHTTP releases once the response is finished.
func (t *retrier) attempt(req *http.Request, st *requestState, b *pool.Backend, inbound url.URL, host string) (res *http.Response, err error) {
	b.Acquire()
	defer func() {
		if st.serving != b {
			b.Release()
		}
	}()
	if b.Removed() {
		// Removed between the pick and the Acquire: it may already be gone
		// from the pool, with nothing seen in flight (see Backend.Removed).
		return nil, errRemoved
	}
	st.tried = append(st.tried, b)

	// The request is ours alone (ReverseProxy made it for this call), so
	// rewriting it in place saves a copy per attempt.
	*req.URL = inbound
	pr := httputil.ProxyRequest{Out: req}
	pr.SetURL(b.URL())
	req.Host = host // SetURL clears it; the backend sees the client's Host.

	res, err = t.proxy.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if !st.timer.Stop() {
		// The deadline passed as the headers arrived. The timer's function
		// may not have cancelled the context yet, so say so here.
		res.Body.Close()
		return nil, errTimeout
	}
	st.serving = b
	b.CountResponse(res.StatusCode)
	return res, nil
}

func (t *retrier) mayRetry(req *http.Request, st *requestState, body *countingBody, reached bool) bool {
	switch {
	case req.Context().Err() != nil:
		return false // the client went away or the deadline passed
	case len(st.tried) >= t.proxy.cfg.MaxAttempts:
		return false
	case !reached:
		// Nothing was sent. The Transport did not read the body either, so it
		// is still whole.
		return body == nil || body.n.Load() == 0
	default:
		// Sent but not answered. Only a safe method may be sent again, only
		// without a body (the Transport may still be reading one), and only
		// if no interim 1xx answer of this backend has gone to the client.
		safe := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions
		return safe && body == nil && !st.rec.informational.Load()
	}
}

// isDialError reports whether err says that no connection to the backend
// could be made: refused, unreachable, no such host, reset or timed out while
// connecting. It goes by the error's type, never its text.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// countingBody tells the retrier whether any of the request body has been
// read. Close does nothing, as ReverseProxy's own wrapper does: the Transport
// closes the body of a request that failed, and a retry needs it open. The
// server closes the real body when the handler returns.
type countingBody struct {
	r io.Reader
	n atomic.Int64 // read by the handler goroutine, written by the Transport's
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingBody) Close() error { return nil }

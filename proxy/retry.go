package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
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
// part of the request body has been read, or after MaxAttempts backends.
// Nothing has been sent to the client at this point: a response is only
// returned once a backend has sent its headers.
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
		b.Acquire()
		if b.Removed() {
			// Removed between the pick and the Acquire: it may already be
			// gone from the pool, with nothing seen in flight. Not an
			// attempt; the pool will not offer it again.
			b.Release()
			continue
		}
		st.tried = append(st.tried, b)

		// The request is ours alone (ReverseProxy made it for this call), so
		// rewriting it in place saves a copy per attempt.
		*req.URL = inbound
		pr := httputil.ProxyRequest{Out: req}
		pr.SetURL(b.URL())
		req.Host = host // SetURL clears it; the backend sees the client's Host.

		res, err := p.transport.RoundTrip(req)
		if err == nil {
			if !st.timer.Stop() {
				// The deadline passed as the headers arrived: the context is
				// cancelled, so the body could not be read anyway.
				res.Body.Close()
				b.Release()
				return nil, context.Cause(ctx)
			}
			st.serving = b
			b.CountResponse(res.StatusCode)
			return res, nil
		}
		b.Release()

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
		lastErr = err
		b.CountRetry()
		p.log.Debug("retrying on another backend", "backend", b.String(), "error", err)
	}
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
		// Sent but not answered. Only a safe method may be sent again, and only
		// without a body: the Transport may still be reading one.
		safe := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions
		return safe && body == nil
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
// read. Close does nothing: the Transport closes the body of a request that
// failed, and a retry needs it open. The server closes the real body when the
// handler returns.
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

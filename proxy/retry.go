package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy/h1"
)

// retrier stands where ReverseProxy expects its Transport. For each attempt
// it picks a backend, points the request at it and hands it to the shared
// http.Transport; when the attempt fails in a way that is safe to repeat, it
// tries another backend.
//
// An attempt may be repeated when the request never reached its backend (the
// connection could not be made: nothing was sent, whatever the method), when
// the backend refused it unprocessed (an HTTP/2 REFUSED_STREAM, or a GOAWAY
// whose last stream is below the request's: RFC 9113 section 8.7; the
// Transport tries those once more itself, see countingBody) and its body
// can be sent again whole, or
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
		body = &countingBody{r: req.Body, buffers: p.buffers}
		req.Body = body
		// The Transport sends a request again (on a new connection) when
		// the backend did not process it, if GetBody gives it the body
		// anew. It also asks GetBody for the body of a request it takes
		// for one it may send again after a failure that may have been
		// processed (h1.Replayable: a safe method, or an idempotency key;
		// http.Transport has the same rule), and then the first attempt's
		// body writer may still be reading it: those get no GetBody, and
		// so no such retry. The proxy itself never sends again a request
		// with a body that may have been processed.
		if !h1.Replayable(req) {
			body.keep = true
			req.GetBody = body.getBody
		}
		defer body.finish()
	}

	var lastErr error
	reachedAny := false      // some attempt connected to its backend
	var failed *pool.Backend // the last attempt's backend, until another takes over
	for {
		b, err := t.acquire(ctx, st)
		if err != nil {
			if lastErr != nil && errors.Is(err, pool.ErrNoBackend) {
				// Every backend left has been tried. If one was reached, the
				// client is told what went wrong there (502); if none could
				// be connected to, that nothing is available (503).
				if !reachedAny {
					return nil, fmt.Errorf("%w: %w", errNoConnection, lastErr)
				}
				return nil, lastErr
			}
			return nil, err
		}
		res, err := t.attempt(req, st, b, body, inbound, host)
		if failed != nil {
			failed.CountRetry() // its request is now another backend's
			failed = nil
		}
		if err == nil {
			return res, nil
		}
		if berr := body.failed(); berr != nil {
			// The attempt failed because the client's body did: nothing to
			// hold against the backend, nothing to retry.
			return nil, fmt.Errorf("%w: %w", errClientBody, berr)
		}

		dialFailed := isDialError(err)
		// reached: the backend may have processed the request. One that
		// refused it unprocessed did not.
		reached := !dialFailed && !errors.Is(err, errNotProcessed)
		reachedAny = reachedAny || reached
		if dialFailed {
			b.CountConnectFailure()
		}
		if st.client.Err() == nil {
			// A failure before the response headers counts against the
			// backend for passive health, unless the client left first.
			_ = p.pool.ReportOutcome(ctx, b, 0, true)
		}
		if dialFailed && ctx.Err() == nil {
			// The backend refused or could not be reached: take it out of
			// rotation now rather than at the next health check. A failure
			// after the connection was made (a reset, a handler that
			// panicked, a refused stream) says nothing about the next
			// request, so it does not.
			_ = p.pool.MarkDown(context.WithoutCancel(ctx), b, err.Error())
		}
		if !t.mayRetry(req, st, body, reached) {
			if !reachedAny && ctx.Err() == nil {
				return nil, fmt.Errorf("%w: %w", errNoConnection, err)
			}
			return nil, err
		}
		lastErr, failed = err, b
		p.log.Debug("retrying on another backend", "backend", b.String(), "error", err)
	}
}

// acquire finds a backend for the next attempt and takes a slot on it: a
// pick, then the slot (which a full backend refuses: pick again, skipping
// it), then the check that it was not removed meanwhile. When every backend
// that could take the request is at max_requests_per_backend, it waits in
// the pool's queue, and the slot comes with the grant.
func (t *retrier) acquire(ctx context.Context, st *requestState) (*pool.Backend, error) {
	p := t.proxy
	req := pool.PickRequest{Skip: st.tried, Sticky: st.sticky, Hash: st.hash, HasHash: st.hasHash}
	queued := req // what the queue is asked for: without the backends skipped as full
	for {
		b, err := p.pool.PickFor(ctx, req)
		if errors.Is(err, pool.ErrBusy) || (errors.Is(err, pool.ErrNoBackend) && len(req.Skip) > len(queued.Skip)) {
			// Busy, or nothing left but backends that filled up under us.
			return p.queue(ctx, queued)
		}
		if err != nil {
			return nil, err
		}
		if !b.TryAcquire() {
			// Filled between the pick and the take. Skip it for this
			// attempt only: a copy, so that st.tried is not changed.
			req.Skip = append(slices.Clip(req.Skip), b)
			continue
		}
		if b.Removed() {
			// Removed between the pick and the take: it may already be gone
			// from the pool, with nothing seen in flight (see
			// Backend.Removed). The pool will not offer it again.
			b.Release()
			continue
		}
		return b, nil
	}
}

// queue waits in the pool's queue for a backend slot, and counts the wait.
func (p *Proxy) queue(ctx context.Context, req pool.PickRequest) (*pool.Backend, error) {
	start := time.Now()
	b, err := p.pool.Wait(ctx, req)
	if p.metrics != nil {
		p.metrics.queueWait.Observe(time.Since(start).Seconds())
		switch {
		case errors.Is(err, pool.ErrQueueFull):
			p.metrics.queueFull.Add(1)
		case errors.Is(err, pool.ErrQueueTimeout):
			p.metrics.queueTimeout.Add(1)
		}
	}
	return b, err
}

// attempt sends req to b, which the caller has acquired; body is req's Body,
// or nil when req has none. b's count is released when the attempt ends,
// whichever way, panics included; when it brings a response, the count
// passes to st.serving, which ServeHTTP releases once the response is
// finished.
func (t *retrier) attempt(req *http.Request, st *requestState, b *pool.Backend, body *countingBody, inbound url.URL, host string) (res *http.Response, err error) {
	defer func() {
		if st.serving != b {
			b.Release()
		}
	}()
	st.tried = append(st.tried, b)

	// The request is ours alone (ReverseProxy made it for this call), so
	// rewriting it in place saves a copy per attempt.
	*req.URL = inbound
	pr := httputil.ProxyRequest{Out: req}
	pr.SetURL(b.URL())
	req.Host = host // SetURL clears it; the backend sees the client's Host.
	tr := st.s.forScheme(req.URL.Scheme)
	if req.URL.Scheme == "h2c" {
		req.URL.Scheme = "http" // h2c is a kind of backend; on the wire it is http
	}
	if !st.deadline.IsZero() {
		// The backend is told what is left of the call's deadline, not the
		// client's whole timeout: a queue wait or a failed attempt has
		// spent some of it.
		left := time.Until(st.deadline)
		if left <= 0 {
			return nil, errTimeout
		}
		req.Header.Set("Grpc-Timeout", formatGRPCTimeout(left))
	}
	if body != nil {
		body.rewind() // from its first byte, if an earlier attempt read some
	}

	res, err = tr.RoundTrip(req)
	if err != nil {
		if st.pastDeadline() {
			return nil, errTimeout
		}
		return nil, err
	}
	switch {
	case st.grpc:
		// A gRPC call's deadline (if any) goes on running to the end of
		// the call. If it passed as the headers arrived, the answer is
		// DEADLINE_EXCEEDED, not a stream cut at once.
		if errors.Is(context.Cause(req.Context()), errTimeout) {
			res.Body.Close()
			return nil, errTimeout
		}
	case !st.timer.Stop():
		// The deadline passed as the headers arrived. The timer's function
		// may not have cancelled the context yet, so say so here.
		res.Body.Close()
		return nil, errTimeout
	}
	st.serving = b
	b.CountResponse(res.StatusCode)
	_ = t.proxy.pool.ReportOutcome(req.Context(), b, res.StatusCode, false)
	if c := stickyCookie(b, st); c != nil {
		res.Header.Add("Set-Cookie", c.String())
	}
	st.upgraded = res.StatusCode == http.StatusSwitchingProtocols
	if !st.upgraded { // an upgrade's body must stay a ReadWriteCloser
		st.cut = cutBody{ReadCloser: res.Body, p: t.proxy, st: st, b: b, ctx: req.Context(), want: res.ContentLength}
		res.Body = &st.cut
	}
	return res, nil
}

func (t *retrier) mayRetry(req *http.Request, st *requestState, body *countingBody, reached bool) bool {
	switch {
	case req.Context().Err() != nil:
		return false // the client went away or the deadline passed
	case len(st.tried) >= st.s.MaxAttempts:
		return false
	case !reached:
		// Nothing was sent (no connection), or nothing was processed (a
		// refused stream). The body may be sent again if it can be whole:
		// nothing of it was read, or all that was is kept. A backend that
		// sent an interim answer before refusing has been heard from.
		return body.replayable() && !st.rec.informational.Load()
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

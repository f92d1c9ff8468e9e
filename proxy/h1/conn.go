package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"
)

// Buffer sizes, as http.Transport has them.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
)

// maxWriteWait is how long the end of an exchange waits for the request
// body's writer to report, when the response ended first, before giving up
// on reusing the connection. http.Transport waits as long.
const maxWriteWait = 50 * time.Millisecond

// conn is one connection to a backend. It belongs to one exchange at a time:
// to the goroutine that took it from the pool (and, while a request body is
// being written, to writeRequest for writing), then to whoever reads the
// response body, until it goes back to the pool. The only fields touched by
// others are closed and, through the pool's slots, the idle timer.
type conn struct {
	nc net.Conn
	hp *hostPool
	br *bufio.Reader // reads through conn.Read
	bw *bufio.Writer // writes through conn.Write

	// closeFn is c.close, made once so that registering it with
	// context.AfterFunc for each request does not allocate it again.
	closeFn func()
	// idle closes c when it has been idle for IdleConnTimeout. It exists
	// from the start, stopped, so that put only resets it.
	idle *time.Timer
	// writeDone receives writeRequest's result. Capacity 1: the writer
	// never blocks on it. It is empty whenever c is in the pool.
	writeDone chan error
	peek      peeker // the liveness check of an idle connection

	readLimit int64 // bytes Read may still return; bounds the headers
	sawEOF    bool  // the backend closed its side
	nwrite    int64 // bytes written, to tell whether a failed write sent any
	werr      error // the last write error of the socket itself
	reused    bool  // c has served a request before this one

	closed atomic.Bool
}

func newConn(nc net.Conn, hp *hostPool) *conn {
	hp.live.Add(1)
	c := &conn{nc: nc, hp: hp, writeDone: make(chan error, 1)}
	c.br = bufio.NewReaderSize(c, readBufferSize)
	c.bw = bufio.NewWriterSize(c, writeBufferSize)
	c.closeFn = c.close
	c.idle = time.AfterFunc(hp.idleTimeout, c.expire)
	c.idle.Stop()
	c.peek.init(c)
	return c
}

// Read is the bufio.Reader's source. It stops at readLimit, as
// http.Transport does, so that endless headers are an error, not a memory
// exhaustion.
func (c *conn) Read(p []byte) (int, error) {
	if c.readLimit <= 0 {
		return 0, ErrHeaderTooLarge
	}
	if int64(len(p)) > c.readLimit {
		p = p[:c.readLimit]
	}
	n, err := c.nc.Read(p)
	if err == io.EOF {
		c.sawEOF = true
	}
	c.readLimit -= int64(n)
	return n, err
}

// Write is the bufio.Writer's sink. It counts what reached the socket, so
// that a failed request can be told apart from one the backend may have
// seen.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwrite += int64(n)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// close closes the socket, once. Any goroutine may call it: a request's
// context ending, the idle timer, CloseIdleConnections, or the owner.
func (c *conn) close() {
	if c.closed.CompareAndSwap(false, true) {
		c.idle.Stop()
		c.nc.Close()
		if c.hp.live.Add(-1) == 0 {
			c.hp.release()
		}
	}
}

// expire runs on the idle timer's goroutine.
func (c *conn) expire() {
	if c.hp.remove(c) {
		c.close()
	}
}

// stillOpen reports whether an idle connection may carry a request: its
// backend has neither closed it nor sent anything (anything it sent while
// idle, such as a 408, is not an answer to a request of ours).
func (c *conn) stillOpen() bool {
	return c.br.Buffered() == 0 && c.peek.open()
}

// roundTrip does one exchange on c: it writes req, reads the response and
// arranges for c's return to the pool. It returns errRetry, having closed c,
// when c was reused and failed in a way that makes sending req again on
// another connection safe.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, s *settings, trace *httptrace.ClientTrace) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody

	// From here on the request's context closes the socket when it ends:
	// whatever c's owner is blocked in (a write, a read of headers or of
	// the body) then fails at once, with no goroutine watching.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.closeFn)
	}
	fail := func(err error) (*http.Response, error) {
		c.close()
		if stop != nil {
			stop()
		}
		if ctx.Err() != nil {
			// Whatever broke, the context ending explains it best.
			return nil, context.Cause(ctx)
		}
		return nil, err
	}

	c.readLimit = s.maxHeaderBytes
	var cont chan bool // the writer awaits a 100 Continue; see readResponse
	if hasBody {
		var rb *reqBody
		rb, cont = newReqBody(req, s, trace)
		w := *req // Write takes the body from the request; req is not ours to change
		w.Body = rb
		go c.writeRequest(&w, rb) // its result is received by wroteRequest, or nobody once c is closed; see the package doc
	} else {
		start := c.nwrite
		err := req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			if c.reused && c.werr != nil && c.nwrite == start && ctx.Err() == nil {
				// The socket refused the first byte: the backend cannot have
				// seen the request, whatever its method.
				c.close()
				stop0(stop)
				return nil, errRetry
			}
			return fail(fmt.Errorf("h1: writing request: %w", err))
		}
	}

	res, err := c.readResponse(req, s, trace, cont)
	if err != nil {
		var werr error
		if hasBody {
			// A writer that failed first (its body could not be read, or it
			// was not what its headers announced) closed c, which is why
			// the read failed: its error says more. It sends before it
			// closes, so it is there if it is the cause.
			select {
			case werr = <-c.writeDone:
			default:
			}
		}
		if werr != nil && werr != errBodyNotSent {
			return fail(werr)
		}
		if errors.Is(err, ErrNoResponse) && c.reused && !hasBody && Replayable(req) && ctx.Err() == nil {
			// Most likely the backend closed c, idle, as the request
			// went out. It has not answered, and the request may be
			// repeated: send it on another connection, as http.Transport
			// does.
			c.close()
			stop0(stop)
			return nil, errRetry
		}
		return fail(err)
	}
	c.readLimit = math.MaxInt64 // the body has no limit

	if res.StatusCode == http.StatusSwitchingProtocols {
		return c.upgrade(ctx, res, stop, hasBody)
	}
	// The rules of http.Transport: reuse only if neither side asked to close
	// (an HTTP/1.0 response without keep-alive, or one whose body ends with
	// the connection, sets res.Close).
	keep := !res.Close && !req.Close
	if req.Method == http.MethodHead || res.ContentLength == 0 {
		// No body to wait for (ReadResponse made it http.NoBody).
		c.finish(keep, stop, hasBody, trace)
		return res, nil
	}
	res.Body = &body{c: c, rc: res.Body, ctx: ctx, stop: stop, keep: keep, wrote: hasBody, trace: trace}
	return res, nil
}

func stop0(stop func() bool) {
	if stop != nil {
		stop()
	}
}

// readResponse reads the final response to req, reporting 1xx responses
// through trace as http.Transport does. cont, when not nil, is how the
// request's writer learns whether to send a body announced with "Expect:
// 100-continue": true on a 100, or on a final status if the connection is
// to be kept (then the body must be sent for the connection to stay in
// step); false, not to send it, on a final status that closes the connection
// or on any failure.
func (c *conn) readResponse(req *http.Request, s *settings, trace *httptrace.ClientTrace, cont chan bool) (res *http.Response, err error) {
	if cont != nil {
		defer func() {
			if cont != nil {
				cont <- false
			}
		}()
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoResponse, err)
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	for {
		res, err = http.ReadResponse(c.br, req)
		if err != nil {
			if c.readLimit <= 0 {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, s.maxHeaderBytes)
			}
			return nil, fmt.Errorf("h1: reading response: %w", err)
		}
		code := res.StatusCode
		if cont != nil && code == http.StatusContinue {
			if trace != nil && trace.Got100Continue != nil {
				trace.Got100Continue()
			}
			cont <- true
			cont = nil
		}
		// 101 is final: the connection speaks another protocol after it.
		if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
					return nil, err
				}
				// Whoever sees the 1xx responses limits how many they take;
				// unseen, they count towards the final response's limit.
				c.readLimit = s.maxHeaderBytes
			}
			continue
		}
		if cont != nil {
			cont <- !res.Close && !req.Close
			cont = nil
		}
		return res, nil
	}
}

// Replayable reports whether a request without a body may be sent again
// after it may have reached the backend, on a kept-alive connection that
// closed under it: http.Transport's rule, which the Transport follows too. It
// holds for a safe method (GET, HEAD, OPTIONS, TRACE; an empty Method is
// GET) and for a request with an Idempotency-Key or X-Idempotency-Key
// header.
func Replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	_, xok := req.Header["X-Idempotency-Key"]
	return ok || xok
}

// finish ends an exchange whose response has been read: c goes back to the
// pool if keep allows, the context did not close it, the request was
// written whole, and the backend sent nothing more; otherwise it is closed.
func (c *conn) finish(keep bool, stop func() bool, wrote bool, trace *httptrace.ClientTrace) {
	if stop != nil && !stop() {
		keep = false // the context ended: the socket is closed or closing
	}
	if keep && wrote {
		keep = c.wroteRequest()
	}
	if keep && !c.sawEOF && c.br.Buffered() == 0 && c.hp.put(c) {
		if trace != nil && trace.PutIdleConn != nil {
			trace.PutIdleConn(nil)
		}
		return
	}
	c.close()
}

// wroteRequest receives the writer's result: whether the whole request went
// out. A response can end before its request has (a backend answering an
// upload early); then the writer gets maxWriteWait to finish.
func (c *conn) wroteRequest() bool {
	select {
	case err := <-c.writeDone:
		return err == nil
	default:
	}
	t := time.NewTimer(maxWriteWait)
	defer t.Stop()
	select {
	case err := <-c.writeDone:
		return err == nil
	case <-t.C:
		return false // c will be closed, which ends the writer
	}
}

// writeRequest writes req, body and trailers included, on its own goroutine
// so that the response can be read meanwhile (see the package doc). It
// sends its result on c.writeDone before anything else, then closes c if
// the request could not be written whole: the backend would wait for the
// rest, and the response reader with it.
func (c *conn) writeRequest(req *http.Request, rb *reqBody) {
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	switch {
	case rb.skipped:
		// The backend refused the body of an "Expect: 100-continue"
		// request and the connection closes after the response; the
		// response is still to be read, so c stays open until then.
		c.writeDone <- errBodyNotSent
		return
	case rb.readErr != nil:
		err = fmt.Errorf("h1: reading request body: %w", rb.readErr)
	case err != nil:
		err = fmt.Errorf("h1: writing request: %w", err)
	}
	c.writeDone <- err
	if err != nil {
		c.close()
	}
}

// errBodyNotSent is what reqBody returns, and writeRequest reports, when a
// body announced with "Expect: 100-continue" is not to be sent.
var errBodyNotSent = errors.New("h1: request body not sent: the backend answered without 100 Continue")

// reqBody is a request body as writeRequest reads it: it remembers a read
// error of the body itself (as opposed to one of the connection) and holds
// the first read until the backend's 100 Continue when one is expected.
// Only the writer goroutine reads its fields until it has sent its result.
type reqBody struct {
	rc io.ReadCloser

	cont    <-chan bool // nil once decided
	timeout time.Duration
	trace   *httptrace.ClientTrace

	skipped bool  // cont said not to send the body
	readErr error // the body's own failure
}

func newReqBody(req *http.Request, s *settings, trace *httptrace.ClientTrace) (*reqBody, chan bool) {
	rb := &reqBody{rc: req.Body}
	// As http.Transport: only an HTTP/1.1 request with a body waits. One
	// with ContentLength 0 and a body of unknown length is not held, since
	// Write reads a byte of it before the headers go out.
	if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 && expectsContinue(req.Header) {
		cont := make(chan bool, 1)
		rb.cont, rb.timeout, rb.trace = cont, s.continueTimeout, trace
		return rb, cont
	}
	return rb, nil
}

// expectsContinue reports whether the "Expect" header holds the
// 100-continue token. (Token comparison is all that is needed; the header's
// syntax is the standard library's business when it writes it.)
func expectsContinue(h http.Header) bool {
	for _, v := range h["Expect"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "100-continue") {
				return true
			}
		}
	}
	return false
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.cont != nil {
		// Write has flushed the headers before its first read of a body it
		// does not hold in memory: wait for the backend's word.
		send := b.waitContinue()
		b.cont = nil
		if !send {
			b.skipped = true
			return 0, errBodyNotSent
		}
	}
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.readErr = err
	}
	return n, err
}

func (b *reqBody) waitContinue() bool {
	if b.trace != nil && b.trace.Wait100Continue != nil {
		b.trace.Wait100Continue()
	}
	t := time.NewTimer(b.timeout)
	defer t.Stop()
	select {
	case send := <-b.cont:
		return send
	case <-t.C:
		return true // the backend may not know 100-continue: send anyway
	}
}

func (b *reqBody) Close() error { return b.rc.Close() }

// body is a response body. At EOF it hands the connection back (finish);
// closed or failed before EOF, it closes the connection, because what is
// left of the body is unknown and reading it could take for ever.
//
// Close may be called while a Read is blocked, from another goroutine, to
// abort it, as with http.Transport. Read and Close settle who ends the
// exchange with a compare-and-swap on state.
type body struct {
	c     *conn
	rc    io.ReadCloser // ReadResponse's body; never closed, see Close
	ctx   context.Context
	stop  func() bool
	trace *httptrace.ClientTrace
	keep  bool // the response allows reuse
	wrote bool // a writer goroutine's result is to be awaited

	state atomic.Int32
	err   error // after a failure, what Read returns again
}

const (
	bodyReading int32 = iota
	bodyEOF
	bodyClosed
	bodyFailed
)

func (b *body) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyEOF:
		return 0, io.EOF
	case bodyClosed:
		return 0, ErrBodyClosed
	case bodyFailed:
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		// The trailers, if any, have been read into the response's Trailer
		// by now: c is no longer needed.
		if b.state.CompareAndSwap(bodyReading, bodyEOF) {
			b.c.finish(b.keep, b.stop, b.wrote, b.trace)
		}
		return n, io.EOF
	}
	if b.ctx.Err() != nil {
		err = context.Cause(b.ctx)
	}
	if b.state.CompareAndSwap(bodyReading, bodyFailed) {
		b.err = err
		b.c.close()
		stop0(b.stop)
	}
	return n, err
}

// Close before EOF closes the connection, as http.Transport does; it does
// not drain the rest. ReadResponse's body is never closed: closing it would
// read the rest of the body, for as long as it takes.
func (b *body) Close() error {
	if b.state.CompareAndSwap(bodyReading, bodyClosed) {
		b.c.close()
		stop0(b.stop)
	}
	return nil
}

// upgrade hands c over to the caller with a 101 response.
func (c *conn) upgrade(ctx context.Context, res *http.Response, stop func() bool, hasBody bool) (*http.Response, error) {
	// The caller owns the connection now and the request's context no
	// longer closes it, as with http.Transport (httputil.ReverseProxy ties
	// the two together itself).
	if stop != nil && !stop() {
		c.close()
		return nil, context.Cause(ctx)
	}
	if hasBody && !c.wroteRequest() {
		// The writer would go on writing into what is now the caller's
		// connection.
		c.close()
		return nil, errors.New("h1: 101 Switching Protocols before the request body was sent")
	}
	c.idle.Stop()
	u := &upgraded{Conn: c.nc}
	if c.br.Buffered() > 0 {
		u.br = c.br // what the backend sent after the 101 is already read
	}
	res.Body = u
	return res, nil
}

// upgraded is the body of a 101 response: the connection itself, first
// returning what the bufio.Reader already holds.
type upgraded struct {
	net.Conn
	br *bufio.Reader // nil once drained
}

func (u *upgraded) Read(p []byte) (int, error) {
	if u.br != nil {
		if u.br.Buffered() > 0 {
			return u.br.Read(p)
		}
		u.br = nil
	}
	return u.Conn.Read(p)
}

package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/grpctest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// front is a server in front of a fixture's proxy that speaks HTTP/2, as a
// gRPC client needs: h2c (prior knowledge, HTTP/1.1 beside it) or TLS with
// ALPN h2. The cmd/proxy listeners are built elsewhere; these are the
// standard library's, so that the proxy package's gRPC behaviour is tested
// on its own.
type front struct {
	srv   *httptest.Server
	url   string         // for grpctest.NewClient: http:// or https://
	roots *x509.CertPool // what a TLS client trusts; nil for h2c
	conns atomic.Int64   // client connections accepted
}

// newFront starts a front for f's proxy, closed at the end of the test
// (before f's own cleanup, which waits for the proxy's handlers).
func newFront(t *testing.T, f *fixture, useTLS bool) *front {
	t.Helper()
	fr := &front{srv: httptest.NewUnstartedServer(f.proxy)}
	fr.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			fr.conns.Add(1)
		}
	}
	if useTLS {
		certFile, keyFile, roots := certstest.Write(t, t.TempDir(), "127.0.0.1")
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		fr.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		fr.srv.EnableHTTP2 = true
		fr.srv.StartTLS()
		fr.url, fr.roots = fr.srv.URL, roots
	} else {
		fr.srv.Config.Protocols = new(http.Protocols)
		fr.srv.Config.Protocols.SetHTTP1(true)
		fr.srv.Config.Protocols.SetUnencryptedHTTP2(true)
		fr.srv.Start()
		fr.url = fr.srv.URL
	}
	t.Cleanup(fr.srv.Close)
	return fr
}

// client dials the front with a gRPC client, closed before the front.
func (fr *front) client(t *testing.T, opts ...grpc.DialOption) *grpctest.Client {
	t.Helper()
	return grpctest.NewClient(t, fr.url, fr.roots, opts...)
}

// rawSubtype makes a client send content-type application/grpc+raw rather
// than application/grpc.
var rawSubtype = grpc.WithDefaultCallOptions(grpc.ForceCodec(grpctest.Codec{Subtype: "raw"}))

var fronts = []struct {
	name string
	tls  bool
}{{"h2c front", false}, {"TLS front", true}}

// Every kind of call through the proxy, over both fronts: messages,
// metadata both ways, headers, trailers (binary too), statuses with their
// messages, trailers-only errors, all as the server sent them.
func TestGRPCCallsThroughTheProxy(t *testing.T) {
	for _, fc := range fronts {
		t.Run(fc.name, func(t *testing.T) {
			srv := grpctest.Start(t)
			f := newFixture(t, proxy.Config{}, srv.URL)
			c := newFront(t, f, fc.tls).client(t)
			ctx := metadata.AppendToOutgoingContext(t.Context(), "echo-who", "tester", "x-trace-id", "abc", "x-bin-bin", "\x00\x01\xfe")

			res := c.Unary(ctx, []byte("hello"))
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("hello")}, res.Messages)
			assert.Equal(t, []string{srv.Addr}, res.Header.Get(grpctest.HeaderServer))
			assert.Equal(t, []string{"tester"}, res.Header.Get("echo-who"), "request metadata came back in the headers")
			assert.Equal(t, []string{"Unary"}, res.Trailer.Get(grpctest.TrailerMethod))
			assert.Equal(t, []string{grpctest.TrailerBinValue}, res.Trailer.Get(grpctest.TrailerBin), "binary trailer intact")
			call := srv.WaitCalls(t, 1)[0]
			assert.Equal(t, grpctest.MethodUnary, call.Method)
			assert.Equal(t, []string{"abc"}, call.Metadata.Get("x-trace-id"))
			assert.Equal(t, []string{"\x00\x01\xfe"}, call.Metadata.Get("x-bin-bin"), "binary metadata intact")

			res = c.ServerStream(ctx, []byte("s"))
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("s-0"), []byte("s-1"), []byte("s-2")}, res.Messages)
			assert.Equal(t, []string{"ServerStream"}, res.Trailer.Get(grpctest.TrailerMethod))

			res = c.ClientStream(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("a,b,c")}, res.Messages)
			assert.Equal(t, []string{"3"}, res.Trailer.Get(grpctest.TrailerReceived))

			st, err := c.Bidi(ctx)
			require.NoError(t, err)
			for _, m := range []string{"ping", "pong", "again"} {
				require.NoError(t, st.Send([]byte(m)))
				got, err := st.Recv()
				require.NoError(t, err)
				assert.Equal(t, m, string(got), "each answer before the next message")
			}
			res = st.Finish()
			require.NoError(t, res.Err)
			assert.Equal(t, []string{"3"}, res.Trailer.Get(grpctest.TrailerReceived))
			assert.Equal(t, []string{"tester"}, res.Header.Get("echo-who"))

			// Errors: trailers-only (no headers at all), with the status, its
			// message (grpc-go percent-encodes it; it must arrive as sent)
			// and the custom trailers; and an error after messages.
			failing := metadata.AppendToOutgoingContext(ctx, grpctest.KeyCode, "7", grpctest.KeyMessageBin, "denied: 100% sure, café")
			for name, res := range map[string]grpctest.Result{
				"unary":  c.Unary(failing, []byte("x")),
				"stream": c.ClientStream(failing, [][]byte{[]byte("x")}),
			} {
				assert.Equal(t, codes.PermissionDenied, res.Code(), name)
				assert.Equal(t, "denied: 100% sure, café", status.Convert(res.Err).Message(), name)
				assert.Empty(t, res.Header, name+": trailers only")
				assert.NotEmpty(t, res.Trailer.Get(grpctest.TrailerMethod), name)
				assert.Equal(t, []string{grpctest.TrailerBinValue}, res.Trailer.Get(grpctest.TrailerBin), name)
			}
			res = c.ServerStream(metadata.AppendToOutgoingContext(failing, grpctest.KeyCount, "2"), []byte("m"))
			assert.Equal(t, codes.PermissionDenied, res.Code())
			assert.Len(t, res.Messages, 2)
			assert.Equal(t, []string{"ServerStream"}, res.Trailer.Get(grpctest.TrailerMethod))

			f.assertIdle(t)
			assert.Equal(t, pool.StateUp, f.status(t, srv.URL).State)
		})
	}
}

// The client's deadline reaches the server (as grpc-timeout: what is left
// of it when the proxy sends the call on).
func TestGRPCDeadlineReachesTheServer(t *testing.T) {
	srv := grpctest.Start(t)
	f := newFixture(t, proxy.Config{}, srv.URL)
	c := newFront(t, f, false).client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	require.NoError(t, c.Unary(ctx, []byte("x")).Err)
	got := srv.WaitCalls(t, 1)[0].Deadline
	require.False(t, got.IsZero(), "the server saw a deadline")
	// Clocks of one machine: the server's deadline is the client's, give
	// or take the time in transit.
	assert.WithinDuration(t, want, got, time.Second)

	require.NoError(t, c.Unary(t.Context(), []byte("x")).Err)
	assert.True(t, srv.WaitCalls(t, 2)[1].Deadline.IsZero(), "no deadline: none is invented")
}

// request_timeout bounds the wait for a response's headers, which a
// streaming gRPC server may send late, with its first message: it does not
// apply to gRPC calls. The issue asks for a minute-long bidi stream to
// survive; a stream of about a second, whose headers come after 400ms,
// against a request_timeout of 200ms shows the same without a minute's
// wait.
func TestGRPCStreamOutlivesRequestTimeout(t *testing.T) {
	srv := grpctest.Start(t)
	f := newFixture(t, proxy.Config{RequestTimeout: 200 * time.Millisecond}, srv.URL)
	c := newFront(t, f, false).client(t)
	ctx := metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyDelay, "400ms")
	st, err := c.Bidi(ctx)
	require.NoError(t, err)
	start := time.Now()
	for i := range 6 {
		require.NoError(t, st.Send(fmt.Appendf(nil, "m%d", i)))
		got, err := st.Recv()
		require.NoError(t, err, "message %d", i)
		assert.Equal(t, fmt.Sprintf("m%d", i), string(got))
		time.Sleep(100 * time.Millisecond)
	}
	res := st.Finish()
	require.NoError(t, res.Err)
	assert.Equal(t, []string{"6"}, res.Trailer.Get(grpctest.TrailerReceived))
	assert.Greater(t, time.Since(start), 800*time.Millisecond, "the stream outlived request_timeout four times over")

	// A plain HTTP request to the same proxy still gets its 504.
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	f2 := newFixture(t, proxy.Config{RequestTimeout: 200 * time.Millisecond}, slow.URL)
	code, _ := f2.get(t, "/")
	assert.Equal(t, http.StatusGatewayTimeout, code)
}

// Cancelling the client's call cancels the server's context, and the
// backend's in-flight count is released.
func TestGRPCCancelReachesTheServer(t *testing.T) {
	for _, fc := range fronts {
		t.Run(fc.name, func(t *testing.T) {
			srv := grpctest.Start(t)
			f := newFixture(t, proxy.Config{}, srv.URL)
			c := newFront(t, f, fc.tls).client(t)
			ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(),
				grpctest.KeyHeaderFirst, "1", grpctest.KeyHold, "1"))
			defer cancel()
			st, err := c.Bidi(ctx)
			require.NoError(t, err)
			_, err = st.Header()
			require.NoError(t, err)
			assert.Equal(t, int64(1), f.status(t, srv.URL).InFlight)
			cancel()
			call := srv.WaitCalls(t, 1)[0]
			select {
			case <-call.Cancelled():
				assert.ErrorIs(t, call.Err(), context.Canceled)
			case <-time.After(5 * time.Second):
				t.Fatal("the server's context was not cancelled")
			}
			_, err = st.Recv()
			assert.Equal(t, codes.Canceled, status.Code(err))
			f.assertIdle(t)
		})
	}
}

// No backend up: a gRPC client gets UNAVAILABLE with a message, as a gRPC
// status (not an HTTP 503 that grpc-go would report as a bad content-type),
// whatever its codec's content subtype; an HTTP client to the same proxy
// still gets its 503 with Retry-After. Both are logged as 503.
func TestGRPCNoBackendIsUnavailable(t *testing.T) {
	var log pooltest.SyncBuffer
	al, stop := runAccessLog(t, &log)

	f := newFixture(t, proxy.Config{AccessLog: al, RetryAfter: 2 * time.Second})
	fr := newFront(t, f, false)
	for _, c := range []*grpctest.Client{fr.client(t), fr.client(t, rawSubtype)} {
		res := c.Unary(t.Context(), []byte("x"))
		assert.Equal(t, codes.Unavailable, res.Code())
		assert.Equal(t, "switchyard: no backend is up", status.Convert(res.Err).Message())
	}

	res, err := f.client.Get(f.front.URL)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "2", res.Header.Get("Retry-After"))

	// The wire: a trailers-only answer, status 200, with the pushback.
	res = rawGRPC(t, fr, "", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/grpc", res.Header.Get("Content-Type"))
	assert.Equal(t, "14", res.Header.Get("Grpc-Status"))
	assert.Equal(t, "switchyard: no backend is up", res.Header.Get("Grpc-Message"))
	assert.Equal(t, "2000", res.Header.Get("Grpc-Retry-Pushback-Ms"))
	assert.Empty(t, res.Header.Get("Retry-After"))
	assert.Empty(t, readAll(t, res))

	stop()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.Len(t, lines, 4)
	for _, line := range lines {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		assert.EqualValues(t, 503, e["status"], "logged under the HTTP status it stands for")
		assert.Equal(t, "no_backend", e["error"])
	}
}

// Backends that cannot be connected to, or that fail before answering, are
// UNAVAILABLE too, each with its message.
func TestGRPCBackendFailuresAreUnavailable(t *testing.T) {
	dead := "h2c://" + strings.TrimPrefix(closedURL(t), "http://")
	f := newFixture(t, proxy.Config{}, dead)
	res := newFront(t, f, false).client(t).Unary(t.Context(), []byte("x"))
	assert.Equal(t, codes.Unavailable, res.Code())
	assert.Contains(t, status.Convert(res.Err).Message(), "no backend could be connected to")

	rst := newResetter(t)
	f = newFixture(t, proxy.Config{}, "h2c://"+rst.ln.Addr().String())
	res = newFront(t, f, true).client(t).Unary(t.Context(), []byte("x"))
	assert.Equal(t, codes.Unavailable, res.Code())
	assert.Equal(t, "switchyard: the backend failed before answering", status.Convert(res.Err).Message())
}

// A call whose deadline passes at the proxy before the backend has
// answered gets DEADLINE_EXCEEDED from the proxy, and the backend's call is
// cancelled. A grpc-go client's own timer fires with the proxy's, so the
// proxy's answer is shown with a raw HTTP/2 request that carries a
// grpc-timeout but has no timer of its own.
func TestGRPCProxyDeadlineIsDeadlineExceeded(t *testing.T) {
	srv := grpctest.Start(t)
	f := newFixture(t, proxy.Config{}, srv.URL)
	fr := newFront(t, f, false)

	res := rawGRPC(t, fr, "150m", http.Header{grpctest.KeyHold: {"1"}})
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/grpc", res.Header.Get("Content-Type"))
	assert.Equal(t, "4", res.Header.Get("Grpc-Status"))
	assert.Contains(t, res.Header.Get("Grpc-Message"), "deadline")
	assert.Empty(t, readAll(t, res))
	call := srv.WaitCalls(t, 1)[0]
	select {
	case <-call.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's call was not cancelled")
	}

	// The same through grpc-go: whichever timer fires first, the client
	// sees DEADLINE_EXCEEDED.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyHold, "1"), 150*time.Millisecond)
	defer cancel()
	assert.Equal(t, codes.DeadlineExceeded, fr.client(t).Unary(ctx, []byte("x")).Code())
	f.assertIdle(t)
	assert.Equal(t, pool.StateUp, f.status(t, srv.URL).State, "a call's deadline says nothing of the backend")
}

// rawGRPC sends a unary call to grpctest's Unary through fr with
// net/http's own HTTP/2 client (h2c, prior knowledge), with grpc-timeout
// set to timeout if not empty and the given extra headers, and returns the
// response.
func rawGRPC(t *testing.T, fr *front, timeout string, extra http.Header) *http.Response {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	// One message, "hi": a flag byte (not compressed), a 4-byte length.
	var frame bytes.Buffer
	frame.WriteByte(0)
	binary.Write(&frame, binary.BigEndian, uint32(2))
	frame.WriteString("hi")
	req, err := http.NewRequest(http.MethodPost, fr.url+grpctest.MethodUnary, &frame)
	require.NoError(t, err)
	for k, v := range extra {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	if timeout != "" {
		req.Header.Set("Grpc-Timeout", timeout)
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { io.Copy(io.Discard, res.Body); res.Body.Close() })
	require.Equal(t, 2, res.ProtoMajor)
	return res
}

// The deadline bounds the whole call, not only the wait for headers: a
// call whose backend answered and then went quiet is cut when it passes
// (the client's stream reset, the backend's request cancelled), logged as
// a timeout and not counted against the backend as a response cut short.
// The backend here is a plain HTTP/2 handler that knows nothing of
// grpc-timeout, so that the proxy alone ends the call (a grpc-go server
// would end it at the same moment, and either might be first).
func TestGRPCDeadlineCutsAStartedCall(t *testing.T) {
	var log pooltest.SyncBuffer
	al, stop := runAccessLog(t, &log)

	cancelled := make(chan struct{})
	be := newH2Backend(t, func(int) refusal { return serve }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("X-Started", "yes")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	}))
	f := newFixture(t, proxy.Config{AccessLog: al}, be.url)
	res := rawGRPC(t, newFront(t, f, false), "200m", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "yes", res.Header.Get("X-Started"), "the backend's headers came")
	_, err := io.ReadAll(res.Body)
	assert.Error(t, err, "the stream was reset at the deadline")
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's request was not cancelled")
	}
	f.assertIdle(t)
	assert.Zero(t, f.status(t, be.url).Truncated)

	stop()
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(log.String())), &e))
	assert.Equal(t, "timeout", e["error"])
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// exchange writes raw to a new connection to the proxy and reads every
// response until the proxy closes the connection (or 3 s pass). It returns
// the statuses and whether the proxy closed the connection.
func exchange(t *testing.T, r *running, raw string) (statuses []int, closed bool) {
	t.Helper()
	conn := dialProxy(t, r)
	_, err := io.WriteString(conn, raw)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(3*time.Second)))
	br := bufio.NewReader(conn)
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return statuses, !(errors.As(err, &ne) && ne.Timeout())
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		statuses = append(statuses, res.StatusCode)
	}
}

// Request smuggling: each faulty framing is refused with 400 and the
// connection closed, and the recording backend sees nothing of it, not even
// what followed on the connection; well-framed requests, pipelined, all
// arrive and nothing else does.
func TestNoRequestIsSmuggledPastTheProxy(t *testing.T) {
	rec := pooltest.NewRecorder(t, health.DefaultUserAgent)
	cfg := testConfig(t, rec.URL)
	cfg["health_check_frequency"] = "1h"
	cfg["health_check_timeout"] = "1s"
	r := start(t, cfg)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, raw string }{
		{"CL then TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE then CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"case and spaces", "POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 4\r\ntransfer-encoding:  Chunked \r\n\r\n0\r\n\r\n" + smuggled},
		{"HTTP/1.0 with TE", "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + "1b\r\n" + smuggled + "\r\n0\r\n\r\n"},
		{"HTTP/1.0 with TE and CL", "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			statuses, closed := exchange(t, r, tc.raw)
			assert.Equal(t, []int{http.StatusBadRequest}, statuses)
			assert.True(t, closed, "the connection is closed after the response")
			assert.Empty(t, rec.Requests(), "the backend saw nothing")
		})
	}

	// Well framed: a chunked POST whose data looks like a request, then a
	// GET, pipelined; the backend parses exactly those two.
	body := "GET /inside HTTP/1.1\r\n\r\n"
	statuses, _ := exchange(t, r, fmt.Sprintf("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)+
		"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	assert.Equal(t, []int{http.StatusOK, http.StatusOK}, statuses)
	assert.Equal(t, []string{"POST /chunked", "GET /after"}, rec.Requests())
	assert.Equal(t, exitOK, r.stop(t))
}

// CONNECT and TRACE get 405 with Allow, the HTTP/2 preface on the plain port
// a clear 505, OPTIONS * an answer of the proxy's own: none of them picks a
// backend.
func TestRequestsNoBackendMaySee(t *testing.T) {
	rec := pooltest.NewRecorder(t, health.DefaultUserAgent)
	r := start(t, testConfig(t, rec.URL))
	for _, tc := range []struct {
		raw    string
		status int
	}{
		{"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n", http.StatusMethodNotAllowed},
		{"TRACE / HTTP/1.1\r\nHost: x\r\nCookie: secret=1\r\nConnection: close\r\n\r\n", http.StatusMethodNotAllowed},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", http.StatusHTTPVersionNotSupported},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http.StatusOK},
	} {
		statuses, _ := exchange(t, r, tc.raw)
		require.NotEmpty(t, statuses, "%q", tc.raw)
		assert.Equal(t, tc.status, statuses[0], "%q", tc.raw)
	}
	res, err := newClient(t).Do(mustRequest(t, "TRACE", r.proxyURL+"/"))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS", res.Header.Get("Allow"))
	assert.Empty(t, rec.Requests())
	assert.Equal(t, exitOK, r.stop(t))
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	return req
}

// A client's malformed body is the client's fault: 400, counted as such,
// logged at Debug without blaming a backend, never held against the
// backend (passive health is on and must not eject it).
func TestMalformedClientBodyIsNotTheBackendsFault(t *testing.T) {
	be := namedBackend(t, "a")
	counting, _ := countingBackend(t)
	cfg := testConfig(t, be.URL, counting.URL)
	cfg["passive_health"] = map[string]any{"consecutive_failures": 1}
	r := start(t, cfg)
	c := newClient(t)
	for range 4 {
		statuses, closed := exchange(t, r, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
		require.Equal(t, []int{http.StatusBadRequest}, statuses)
		assert.True(t, closed)
	}
	st := poolStatus(t, c, r)
	for _, b := range st.Backends {
		assert.Equal(t, "up", b.State, "%s: not ejected", b.URL)
		assert.Zero(t, b.Responses["5xx"], b.URL)
		assert.Zero(t, b.Truncated, b.URL)
	}
	v, _ := scrape(t, c, r.adminURL, `switchyard_requests_total{code="400"}`)
	assert.Equal(t, 4.0, v)
	assert.NotContains(t, r.stderr.String(), "level=WARN msg=\"proxy error\"")
	assert.Contains(t, r.stderr.String(), "client's request body could not be read")
	assert.Equal(t, exitOK, r.stop(t))
}

// A backend response cut short is counted against that backend and logged
// with how much of how much arrived.
func TestTruncatedBackendResponseIsCountedAndLogged(t *testing.T) {
	short := misbehavingBackend(t, func(c net.Conn, req *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 500))
	})
	r := start(t, testConfig(t, short))
	c := newClient(t)
	_, err := c.Get(r.proxyURL + "/")
	if err == nil {
		t.Log("the client got headers; the body then broke off")
	}
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := fetchStatus(c, r)
		require.NoError(ct, err)
		require.Len(ct, st.Backends, 1)
		assert.Equal(ct, uint64(1), st.Backends[0].Truncated)
	}, 5*time.Second, 10*time.Millisecond)
	assert.Contains(t, r.stderr.String(), `msg="backend response cut short"`)
	assert.Contains(t, r.stderr.String(), "bytes=500 of=1000")
	v, _ := scrape(t, c, r.adminURL, `switchyard_backend_truncated_responses_total{backend="`+short+`"}`)
	assert.Equal(t, 1.0, v)
	assert.Equal(t, exitOK, r.stop(t))
}

// hostageBackend serves 64 MiB on GET and reads whole bodies on POST; it
// reports on released when a request's context ended (the proxy let go of
// it) before the request was done.
func hostageBackend(t *testing.T) (string, <-chan string) {
	t.Helper()
	released := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") == health.DefaultUserAgent {
			return
		}
		chunk := make([]byte, 64<<10)
		if r.Method == http.MethodPost {
			_, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				released <- "upload: " + err.Error()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(64<<20))
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				released <- "download: " + err.Error()
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, released
}

// A client that stops reading a 64 MiB response is cut off after
// send_timeout without progress, and the backend's request with it; one
// that stops sending a 64 MiB upload is cut off after client_body_timeout.
// Either way the backend connection is released and nothing stays in
// flight.
func TestNoClientHoldsABackendHostage(t *testing.T) {
	url, released := hostageBackend(t)
	cfg := testConfig(t, url)
	cfg["send_timeout"] = "500ms"
	cfg["client_body_timeout"] = "500ms"
	r := start(t, cfg)
	c := newClient(t)

	// The reader that stops: headers and a little, then nothing.
	conn := dialProxy(t, r)
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(16<<10))
	_, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	head := make([]byte, 4096)
	_, err = io.ReadFull(conn, head)
	require.NoError(t, err)
	select {
	case why := <-released:
		assert.Contains(t, why, "download")
	case <-time.After(20 * time.Second):
		t.Fatal("the backend was still held by a client that stopped reading")
	}

	// The sender that stops: 1 MiB of a 64 MiB body, then nothing.
	up := dialProxy(t, r)
	_, err = io.WriteString(up, fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 64<<20))
	require.NoError(t, err)
	_, err = up.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	select {
	case why := <-released:
		assert.Contains(t, why, "upload")
	case <-time.After(20 * time.Second):
		t.Fatal("the backend was still held by a client that stopped sending")
	}
	require.NoError(t, up.SetReadDeadline(time.Now().Add(5*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(up), nil)
	if err == nil {
		assert.Equal(t, http.StatusRequestTimeout, res.StatusCode, "told why, when it can be")
	}

	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := fetchStatus(c, r)
		require.NoError(ct, err)
		assert.Zero(ct, st.Backends[0].CurrentConnections)
	}, 5*time.Second, 10*time.Millisecond, "nothing left in flight")
	assert.Equal(t, exitOK, r.stop(t))
}

// max_connections: beyond the limit, connections wait in the kernel's
// backlog rather than being accepted and dropped; they are served as soon
// as one closes; the metrics show the limit and the waits.
func TestMaxConnections(t *testing.T) {
	cfg := testConfig(t, namedBackend(t, "a").URL)
	cfg["max_connections"] = 2
	r := start(t, cfg)
	c := newClient(t)
	held := []net.Conn{dialProxy(t, r), dialProxy(t, r)}
	for _, h := range held { // make sure both are accepted and served
		io.WriteString(h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(h), nil)
		require.NoError(t, err)
		res.Body.Close()
	}
	third := dialProxy(t, r) // the kernel completes the handshake; the proxy does not accept
	_, err := io.WriteString(third, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, third.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
	_, err = bufio.NewReader(third).ReadByte()
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "no answer while the limit is reached: %v", err)

	held[0].Close()
	require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(third), nil)
	require.NoError(t, err, "served once a slot freed")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	limit, _ := scrape(t, c, r.adminURL, "switchyard_client_connections_limit")
	assert.Equal(t, 2.0, limit)
	waits, _ := scrape(t, c, r.adminURL, "switchyard_client_connection_limit_waits_total")
	assert.GreaterOrEqual(t, waits, 1.0)
	assert.Equal(t, exitOK, r.stop(t))
}

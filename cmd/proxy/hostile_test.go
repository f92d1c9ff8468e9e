package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// Hostile clients (issue 8), against the whole program. TestClientHeaderLimits
// covers half a header sent and then nothing, and headers over
// max_header_bytes.

// countingBackend is a backend that answers "ok" and counts the requests that
// reached it, leaving out the health checks.
func countingBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != health.DefaultUserAgent {
			n.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// poolStatus returns GET /status, decoded.
func poolStatus(t *testing.T, c *http.Client, r *running) admin.StatusResponse {
	t.Helper()
	st, err := fetchStatus(c, r)
	require.NoError(t, err)
	return st
}

// fetchStatus is poolStatus for a condition polled off the test goroutine:
// it fails nothing and says what went wrong.
func fetchStatus(c *http.Client, r *running) (admin.StatusResponse, error) {
	var st admin.StatusResponse
	res, err := c.Get(r.adminURL + "/status")
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /status: %s", res.Status)
	}
	return st, json.NewDecoder(res.Body).Decode(&st)
}

// dialProxy opens a raw connection to the proxy, closed at the end of the
// test.
func dialProxy(t *testing.T, r *running) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(r.proxyURL, "http://"), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// assertDropped reads conn until the server closes it, checks that it did
// close it (rather than the read timing out) and returns what it said first,
// if anything, and how long that took from since.
func assertDropped(t *testing.T, conn net.Conn, since time.Time) (string, time.Duration) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, err := io.ReadAll(conn)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the server should have closed the connection: %v", err)
	return string(got), time.Since(since)
}

// A client that connects and sends nothing, and one that trickles its
// request a byte at a time without ever finishing it (slowloris), are both
// dropped once read_header_timeout has passed since they connected: sending
// slowly keeps no connection open. Meanwhile the proxy serves others, and no
// backend hears of either.
func TestSlowHeadersAreDroppedAtTheTimeout(t *testing.T) {
	backend, reached := countingBackend(t)
	cfg := testConfig(t, backend.URL)
	const timeout = 300 * time.Millisecond
	cfg["read_header_timeout"] = timeout.String()
	r := start(t, cfg)
	c := newClient(t)

	t.Run("silent", func(t *testing.T) {
		since := time.Now()
		said, took := assertDropped(t, dialProxy(t, r), since)
		assert.Empty(t, said, "nothing to answer")
		assert.GreaterOrEqual(t, took, timeout, "not dropped before read_header_timeout")
	})

	t.Run("trickle", func(t *testing.T) {
		since := time.Now()
		conn := dialProxy(t, r)
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		headers := strings.Repeat("X-Slow: 1\r\n", 100)
		stopped := make(chan struct{})
		go func() { // the subtest waits for it on stopped
			defer close(stopped)
			// 25ms a byte: the headers would take 30s to finish. A write
			// fails once the server has closed the connection.
			for i := range len(headers) {
				if _, err := conn.Write([]byte{headers[i]}); err != nil {
					return
				}
				time.Sleep(25 * time.Millisecond)
			}
		}()
		// Meanwhile, others are served as usual.
		code, body := get(t, c, r.proxyURL+"/")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "ok", body)

		said, took := assertDropped(t, conn, since)
		assert.GreaterOrEqual(t, took, timeout, "not dropped before read_header_timeout")
		// net/http takes the part of a line read before the deadline for the
		// whole line, and answers that if it cannot parse it: a 400, never
		// anything from a backend.
		if said != "" {
			assert.True(t, strings.HasPrefix(said, "HTTP/1.1 400 Bad Request\r\n"), "%q", said)
		}
		conn.Close() // ends the writer if the read above gave up
		<-stopped
	})

	assert.Equal(t, int64(1), reached.Load(), "only the normal request reached the backend")
	assert.Equal(t, exitOK, r.stop(t))
}

// A request the HTTP server cannot parse is answered by the server itself, on
// a connection it then closes: the handler never runs, so no backend is
// picked or counted and the pool is as it was. (A version the server cannot
// speak is well-formed, and gets 505 as RFC 9110, section 15.6.6, says.)
func TestMalformedRequestsNeverReachThePool(t *testing.T) {
	backend, reached := countingBackend(t)
	cfg := testConfig(t, backend.URL)
	cfg["max_header_bytes"] = 4096
	r := start(t, cfg)
	c := newClient(t)
	before := poolStatus(t, c, r)

	for _, tc := range []struct {
		name, request string
		want          int
	}{
		{"not HTTP", "GARBAGE\r\n\r\n", http.StatusBadRequest},
		{"no version", "GET /\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"space in the path", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"NUL in the path", "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"control character in the path", "GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"bad method", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"bad version", "GET / HTTP/1.x\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"future version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", http.StatusHTTPVersionNotSupported},
		{"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http.StatusBadRequest},
		{"header line without a colon", "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", http.StatusBadRequest},
		{"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", http.StatusBadRequest},
		{"NUL in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", http.StatusBadRequest},
		// Two framings for one body is how requests are smuggled past a
		// proxy: refused before any of it is forwarded.
		{"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", http.StatusBadRequest},
		{"Content-Length not a number", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\na", http.StatusBadRequest},
		{"unknown Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", http.StatusNotImplemented},
		{"request line over max_header_bytes", "GET /" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialProxy(t, r)
			_, err := io.WriteString(conn, tc.request)
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			// The connection is not kept: what follows the bad request on it
			// cannot be trusted to start where the server thinks it does. The
			// answer has no length, so reading it to its end shows the close.
			assert.True(t, resp.Close, "Connection: close")
			_, err = io.ReadAll(resp.Body)
			assert.NoError(t, err, "the server closes the connection")
		})
	}

	assert.Zero(t, reached.Load(), "no malformed request reached the backend")
	assert.Equal(t, withoutChecks(before), withoutChecks(poolStatus(t, c, r)), "the pool is untouched")
	code, _ := get(t, c, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code, "the proxy still serves")
	after := poolStatus(t, c, r)
	require.Len(t, after.Backends, 1)
	assert.Equal(t, before.Backends[0].TotalRequests+1, after.Backends[0].TotalRequests)
	assert.Equal(t, exitOK, r.stop(t))
}

// Thousands of idle client connections cost the proxy memory in proportion,
// a few KiB each, and do not stop it serving. Half of them connect and send
// nothing; the other half have had one request answered and are kept alive.
func TestThousandsOfIdleConnections(t *testing.T) {
	const perKind = 1000
	const limit = 40 << 10 // bytes of heap per idle connection
	backend, _ := countingBackend(t)
	cfg := testConfig(t, backend.URL)
	// Longer than the test: the silent connections are not dropped by the
	// header timeout while they are being counted.
	cfg["read_header_timeout"] = "1m"
	r := start(t, cfg)
	c := newClient(t)
	addr := strings.TrimPrefix(r.proxyURL, "http://")
	code, _ := get(t, c, r.proxyURL+"/") // first-request set-up is not per connection
	require.Equal(t, http.StatusOK, code)
	c.CloseIdleConnections()

	var conns []net.Conn
	t.Cleanup(func() {
		for _, conn := range conns {
			conn.Close()
		}
	})
	base := sampleMemory()
	// wait waits until the server has a goroutine for every connection, so
	// that it has set each one up before its memory is counted.
	wait := func(n int) {
		require.Eventually(t, func() bool { return runtime.NumGoroutine() >= base.goroutines+n },
			20*time.Second, 10*time.Millisecond, "the proxy did not accept %d connections", n)
	}

	for range perKind {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		conns = append(conns, conn)
	}
	wait(perKind)
	silent := sampleMemory()

	for range perKind {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err)
		conns = append(conns, conn)
		_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
	}
	wait(2 * perKind)
	kept := sampleMemory()

	silentEach := silent.perConn(base, perKind)
	keptEach := kept.perConn(silent, perKind)
	t.Logf("idle connections: heap %.1f KiB and stack %.1f KiB each for %d that sent nothing, heap %.1f KiB and stack %.1f KiB each for %d kept alive after a request",
		silentEach.heap/1024, silentEach.stack/1024, perKind, keptEach.heap/1024, keptEach.stack/1024, perKind)
	assert.Less(t, silentEach.heap, float64(limit))
	assert.Less(t, keptEach.heap, float64(limit))

	// With 2,000 connections open, a new client is served as usual.
	fresh := newClient(t)
	code, body := get(t, fresh, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)

	for _, conn := range conns {
		conn.Close()
	}
	assert.Equal(t, exitOK, r.stop(t))
}

// memSample is what sampleMemory reads.
type memSample struct {
	heap, stack uint64
	goroutines  int
}

// sampleMemory collects garbage and reads the heap in use, the goroutine stacks
// in use and the number of goroutines: the program runs in this process.
func sampleMemory() memSample {
	runtime.GC()
	runtime.GC() // the second frees what the first left in sync.Pools' victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

type perConnCost struct{ heap, stack float64 }

func (m memSample) perConn(since memSample, n int) perConnCost {
	return perConnCost{
		heap:  (float64(m.heap) - float64(since.heap)) / float64(n),
		stack: (float64(m.stack) - float64(since.stack)) / float64(n),
	}
}

// Misbehaving backends (issue 8): proxy/misbehave_test.go and retry_test.go
// show what the proxy does with each, alone in its pool. Here each stands in
// the real program's pool beside a good backend, and the proxy keeps serving
// through the good one.

// misbehavingBackend is a backend that passes its health checks and then does
// whatever serve does with every other request, after reading its head.
func misbehavingBackend(t *testing.T, serve func(c net.Conn, req *http.Request)) string {
	t.Helper()
	return pooltest.RawBackend(t, func(c net.Conn, req *http.Request) {
		if req.Header.Get("User-Agent") == health.DefaultUserAgent {
			io.WriteString(c, healthyAnswer)
			return
		}
		serve(c, req)
	})
}

// healthyAnswer is what a raw backend writes to pass a health check.
const healthyAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

// outcome sends one request and sums up what the client got: the status and
// body, or "broken" if the answer did not arrive whole.
func outcome(c *http.Client, method, url string) string {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("pay 10")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err.Error()
	}
	res, err := c.Do(req)
	if err != nil {
		return "broken"
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "broken"
	}
	return fmt.Sprintf("%d %s", res.StatusCode, b)
}

// With round-robin over [bad, good], every request goes to the bad backend
// first, unless the one before it was tried again on the good one (which
// moved the rotation on). A request the proxy may try again elsewhere is
// answered by good; one it may not gets the bad backend's outcome, and good
// answers the next. The bad backend stays in rotation throughout: a failure
// after the connection was made says nothing about the next request.
func TestMisbehavingBackendBesideAGoodOne(t *testing.T) {
	const slowBody = "slow but steady"
	for _, tc := range []struct {
		name   string
		method string
		serve  func(c net.Conn, req *http.Request)
		// badGets is what the client gets when the bad backend's answer
		// reaches it; empty when the proxy tries the good one instead.
		badGets string
	}{
		{"accepts and resets", http.MethodGet, func(c net.Conn, _ *http.Request) {
			c.(*net.TCPConn).SetLinger(0)
		}, ""},
		{"answers garbage", http.MethodGet, func(c net.Conn, _ *http.Request) {
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
		}, ""},
		// A POST that reached a backend may have had its effect there.
		{"answers garbage to a POST", http.MethodPost, func(c net.Conn, _ *http.Request) {
			io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
		}, "502 Bad Gateway\n"},
		{"headers over the limit", http.MethodGet, func(c net.Conn, _ *http.Request) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 2\r\n\r\nok", strings.Repeat("a", 128<<10))
		}, ""},
		{"handler panics", http.MethodGet, func(c net.Conn, _ *http.Request) {
			// What net/http does when a handler panics: close, no answer.
		}, ""},
		{"never answers", http.MethodGet, func(c net.Conn, _ *http.Request) {
			io.Copy(io.Discard, c) // until the proxy lets go of the connection
		}, "504 Gateway Timeout\n"},
		{"closes mid-body", http.MethodGet, func(c net.Conn, _ *http.Request) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 100))
		}, "broken"},
		{"answers slowly byte by byte", http.MethodGet, func(c net.Conn, _ *http.Request) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(slowBody))
			for i := range len(slowBody) {
				time.Sleep(40 * time.Millisecond) // 600ms in all, twice request_timeout
				c.Write([]byte{slowBody[i]})
			}
		}, "200 " + slowBody},
		{"returns 5xx", http.MethodGet, func(c net.Conn, _ *http.Request) {
			io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\nmaintenance")
		}, "503 maintenance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := misbehavingBackend(t, tc.serve)
			good := namedBackend(t, "good")
			cfg := testConfig(t, bad, good.URL)
			cfg["request_timeout"] = "300ms"
			r := start(t, cfg)
			// A new connection for every request: on a kept-alive one, a Go
			// client sends a GET again by itself if the connection closes
			// before an answer, which would hide what the proxy did.
			tr := &http.Transport{DisableKeepAlives: true}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			t.Cleanup(tr.CloseIdleConnections)

			want := []string{"200 good", "200 good", "200 good", "200 good"}
			badPicks := 4
			if tc.badGets != "" {
				want[0], want[2] = tc.badGets, tc.badGets
				badPicks = 2
			}
			var got []string
			for range want {
				got = append(got, outcome(c, tc.method, r.proxyURL+"/"))
			}
			assert.Equal(t, want, got)

			assert.EventuallyWithT(t, func(ct *assert.CollectT) {
				st, err := fetchStatus(c, r)
				require.NoError(ct, err)
				require.Len(ct, st.Backends, 2)
				assert.Zero(ct, st.Backends[0].CurrentConnections)
				assert.Zero(ct, st.Backends[1].CurrentConnections)
			}, 5*time.Second, 10*time.Millisecond, "nothing left in flight")
			st := poolStatus(t, c, r)
			assert.Equal(t, bad, st.Backends[0].URL)
			assert.Equal(t, "up", st.Backends[0].State, "the bad backend is still in rotation")
			assert.Zero(t, st.Backends[0].Failures)
			assert.Equal(t, uint64(badPicks), st.Backends[0].TotalRequests)
			assert.Equal(t, exitOK, r.stop(t))
		})
	}
}

// withoutChecks is st without what the health checks change as they run,
// for comparing what requests could have changed.
func withoutChecks(st admin.StatusResponse) admin.StatusResponse {
	st.Config = nil
	st.Backends = slices.Clone(st.Backends)
	for i := range st.Backends {
		st.Backends[i].LastCheck = nil
	}
	return st
}

package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// echo answers with what it received, so tests can see the request the
// backend got.
func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s host=%s", name, r.Method, r.URL.RequestURI(), r.Host)
	}
}

func TestRoundRobinOverRealBackends(t *testing.T) {
	a, b := backend(t, echo("a")), backend(t, echo("b"))
	f := newFixture(t, proxy.Config{}, a.URL, b.URL)
	var got []string
	for range 4 {
		code, body := f.get(t, "/x?y=1")
		require.Equal(t, http.StatusOK, code)
		got = append(got, body[:1])
	}
	assert.Equal(t, []string{"a", "b", "a", "b"}, got)
	f.assertIdle(t)
}

func TestPathQueryAndHostReachTheBackend(t *testing.T) {
	be := backend(t, echo("a"))
	f := newFixture(t, proxy.Config{}, be.URL+"/base")
	req, err := http.NewRequest(http.MethodGet, f.front.URL+"/p/q?x=1&y=%20", nil)
	require.NoError(t, err)
	req.Host = "shop.example:8443"
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "a GET /base/p/q?x=1&y=%20 host=shop.example:8443", readAll(t, res))
}

func TestHopByHopHeadersRemovedBothWays(t *testing.T) {
	var got http.Header
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Connection", "X-Backend-Hop")
		w.Header().Set("X-Backend-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Connection", "keep-alive")
		w.Header().Set("X-End-To-End", "kept")
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	req, err := http.NewRequest(http.MethodGet, f.front.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "secret")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Upgrade", "something") // not named in Connection: no upgrade
	req.Header.Set("X-End-To-End", "kept")
	res, err := f.client.Do(req)
	require.NoError(t, err)
	res.Body.Close()

	for _, h := range []string{"X-Client-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
		assert.Empty(t, got.Get(h), "request header %s", h)
	}
	assert.Equal(t, "trailers", got.Get("Te"), "TE is kept only as trailers")
	assert.Equal(t, "kept", got.Get("X-End-To-End"))
	for _, h := range []string{"X-Backend-Hop", "Keep-Alive", "Proxy-Connection"} {
		assert.Empty(t, res.Header.Get(h), "response header %s", h)
	}
	assert.Equal(t, "kept", res.Header.Get("X-End-To-End"))
}

func TestForwardedHeaders(t *testing.T) {
	var got http.Header
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() })
	send := func(f *fixture) {
		req, err := http.NewRequest(http.MethodGet, f.front.URL, nil)
		require.NoError(t, err)
		req.Host = "public.example"
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		res, err := f.client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
	}

	t.Run("untrusted client", func(t *testing.T) {
		send(newFixture(t, proxy.Config{}, be.URL))
		assert.Equal(t, "127.0.0.1", got.Get("X-Forwarded-For"), "the client cannot choose its address")
		assert.Equal(t, "public.example", got.Get("X-Forwarded-Host"))
		assert.Equal(t, "http", got.Get("X-Forwarded-Proto"))
		assert.Empty(t, got.Get("Forwarded"))
	})
	t.Run("trusted proxy in front", func(t *testing.T) {
		cfg := proxy.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
		send(newFixture(t, cfg, be.URL))
		assert.Equal(t, "6.6.6.6, 127.0.0.1", got.Get("X-Forwarded-For"))
		assert.Equal(t, "evil.example", got.Get("X-Forwarded-Host"))
		assert.Equal(t, "https", got.Get("X-Forwarded-Proto"))
	})
}

// An absolute-form request line names a host; the proxy must still send it
// to the pool and never connect to that host itself.
func TestAbsoluteFormRequestGoesToThePool(t *testing.T) {
	be := backend(t, echo("a"))
	f := newFixture(t, proxy.Config{}, be.URL)
	conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprint(conn, "GET http://elsewhere.example/x?q=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "a GET /x?q=1 host=elsewhere.example", readAll(t, res))
}

func TestNoBackendIs503WithRetryAfter(t *testing.T) {
	f := newFixture(t, proxy.Config{RetryAfter: 1500 * time.Millisecond})
	res, err := f.client.Get(f.front.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "2", res.Header.Get("Retry-After"))
	assert.Equal(t, "Service Unavailable\n", readAll(t, res))
}

// No backend could be connected to: nothing reached a backend, so the
// client gets 503 with Retry-After, as when none is up (the issue on
// balancing changed this from 502). A backend reached that then fails is
// still a 502 (TestBackendThatSpeaksGarbage).
func TestUnreachableBackendIs503(t *testing.T) {
	dead, dead2 := closedURL(t), closedURL(t)
	f := newFixture(t, proxy.Config{}, dead, dead2)
	res, err := f.client.Get(f.front.URL + "/")
	require.NoError(t, err)
	body := readAll(t, res)
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "Service Unavailable\n", body, "no internal error text")
	assert.Equal(t, "1", res.Header.Get("Retry-After"))
	for _, u := range []string{dead, dead2} {
		st := f.status(t, u)
		assert.Equal(t, pool.StateDown, st.State, "both were tried and taken out")
		assert.Contains(t, st.Reason, "connection refused")
	}
	// Now nothing is up.
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

func TestSilentBackendIs504AtTheDeadline(t *testing.T) {
	released := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the proxy's cancellation reaches the backend
		close(released)
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 200 * time.Millisecond}, be.URL)
	start := time.Now()
	code, body := f.get(t, "/")
	assert.Equal(t, http.StatusGatewayTimeout, code)
	assert.Equal(t, "Gateway Timeout\n", body)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	<-released
	assert.Equal(t, pool.StateUp, f.status(t, be.URL).State, "a slow answer does not take a backend down")
	f.assertIdle(t)
}

// The deadline covers waiting for the headers. A response that has started is
// not cut by it.
func TestDeadlineDoesNotCutAStartedResponse(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 6 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 150 * time.Millisecond}, be.URL)
	code, body := f.get(t, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, 6, strings.Count(body, "part"), "the whole body, 600ms after a 150ms deadline")
}

func TestClientGoingAwayCancelsTheBackendRequest(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.front.URL, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := f.client.Do(req)
		assert.ErrorIs(t, err, context.Canceled)
	})
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the backend request was not cancelled")
	}
	wg.Wait()
	f.assertIdle(t)
	st := f.status(t, be.URL)
	assert.Equal(t, pool.StateUp, st.State, "a client that leaves is not the backend's fault")
	assert.Zero(t, st.Failures)
}

// A backend's 5xx is its answer: passed through unchanged, the backend stays.
func TestBackend5xxPassesThrough(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Why", "maintenance")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "come back later")
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	res, err := f.client.Get(f.front.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "maintenance", res.Header.Get("X-Why"))
	assert.Equal(t, "come back later", readAll(t, res))
	assert.Empty(t, res.Header.Get("Retry-After"))
	assert.Equal(t, pool.StateUp, f.status(t, be.URL).State)
}

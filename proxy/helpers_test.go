package proxy_test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a running pool, the proxy over it behind a real listener, and
// a client with its own connections.
type fixture struct {
	pool   *pool.Pool
	proxy  *proxy.Proxy
	front  *httptest.Server
	client *http.Client
	// frontConns counts the client connections the proxy accepted.
	frontConns atomic.Int64
}

func newFixture(t *testing.T, cfg proxy.Config, backends ...string) *fixture {
	t.Helper()
	return newFixtureWith(t, pool.Config{}, cfg, backends...)
}

// newFixtureWith is newFixture with a pool configured as pcfg.
func newFixtureWith(t *testing.T, pcfg pool.Config, cfg proxy.Config, backends ...string) *fixture {
	t.Helper()
	p := pooltest.Start(t, pcfg, backends...) // stopped by the last cleanup

	px, err := proxy.New(p, cfg)
	require.NoError(t, err)
	f := &fixture{
		pool:   p,
		proxy:  px,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	f.front = httptest.NewUnstartedServer(f.proxy)
	f.front.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			f.frontConns.Add(1)
		}
	}
	f.front.Start()
	t.Cleanup(func() {
		f.client.CloseIdleConnections()
		f.front.Close()
		f.proxy.Wait()
		f.proxy.CloseIdleConnections()
	})
	return f
}

// get sends a GET through the proxy and returns the status and body.
func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	code, body, _ := pooltest.Get(t, f.client, f.front.URL+path)
	return code, body
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// status returns the pool's view of the backend at url.
func (f *fixture) status(t *testing.T, url string) pool.BackendStatus {
	t.Helper()
	return pooltest.StatusOf(t, f.pool, url)
}

// assertIdle waits for every backend's in-flight count to drop to zero: a
// pick that never released its count would hold it forever.
func (f *fixture) assertIdle(t *testing.T) {
	t.Helper()
	assert.Eventually(t, func() bool {
		st, err := f.pool.Status(context.Background())
		if err != nil {
			return false
		}
		for _, b := range st.Backends {
			if b.InFlight != 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "in-flight counts back to zero")
}

// testBackend is an httptest server that counts the connections it accepts.
type testBackend struct {
	*httptest.Server
	conns atomic.Int64
}

// backend starts a test backend for h, closed at the end of the test.
func backend(t *testing.T, h http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{Server: httptest.NewUnstartedServer(h)}
	b.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// kill stops a backend the hard way: its listener and every connection.
func (b *testBackend) kill() {
	b.Listener.Close()
	b.CloseClientConnections()
}

// closedURL returns the URL of a port on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

// quietLog keeps a test backend's expected complaints (a handler's panic) out
// of the test output.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

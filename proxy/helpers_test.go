package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
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

// stdTransportEnv, when set, runs the tests with http.Transport for plain
// HTTP/1.1 backends instead of proxy/h1.
const stdTransportEnv = "SWITCHYARD_TEST_STD_TRANSPORT"

// TestMain runs every test twice: with proxy/h1, the transport the proxy
// uses for http:// backends, then, in a second run of the test binary, with
// http.Transport, which it used before; so that every backend behaviour the
// suite checks holds for both. goleak checks each run.
func TestMain(m *testing.M) {
	second := os.Getenv(stdTransportEnv) != ""
	if second {
		proxy.UseStdTransport()
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	if code == 0 && !second {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), stdTransportEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "the tests with http.Transport for http:// backends (%s=1) failed: %v\n", stdTransportEnv, err)
			code = 1
		}
	}
	os.Exit(code)
}

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

// runAccessLog runs an access log writing to w, with the default buffer,
// until stop, which the test calls to have everything logged so far written
// before it reads w; the test's Cleanup calls it too, and it checks once
// that Run returned nil.
func runAccessLog(t *testing.T, w io.Writer) (al *proxy.AccessLog, stop func()) {
	t.Helper()
	al, err := proxy.NewAccessLog(w, 0)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- al.Run(ctx) }() // waited for by stop
	stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done)
	})
	t.Cleanup(stop)
	return al, stop
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

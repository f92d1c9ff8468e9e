package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// goleak checks, after all tests, that every goroutine run started has
// ended: run must leave nothing behind when its context is cancelled.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeConfig writes fields as a config file and returns its path.
func writeConfig(t testing.TB, fields map[string]any) string {
	t.Helper()
	data, err := json.Marshal(fields)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// testConfig is a config on free ports with fast health checks.
func testConfig(t testing.TB, backends ...string) map[string]any {
	t.Helper()
	return map[string]any{
		"port":                   pooltest.FreePort(t),
		"admin_addr":             "127.0.0.1:" + strconv.Itoa(pooltest.FreePort(t)),
		"backends":               backends,
		"health_check_frequency": "200ms",
		"health_check_timeout":   "100ms",
		"shutdown_timeout":       "5s",
	}
}

// running is one call of run on its own goroutine.
type running struct {
	cancel         context.CancelFunc
	code           chan int
	stdout, stderr *pooltest.SyncBuffer
	proxyURL       string
	adminURL       string
	configPath     string
}

// start calls run with cfg and args and waits until it has said it started.
// Cleanup stops it if the test has not.
func start(t testing.TB, cfg map[string]any, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		cancel: cancel, code: make(chan int, 1),
		stdout: &pooltest.SyncBuffer{}, stderr: &pooltest.SyncBuffer{},
		proxyURL: fmt.Sprintf("http://127.0.0.1:%d", cfg["port"]),
		adminURL: "http://" + cfg["admin_addr"].(string),
	}
	r.configPath = writeConfig(t, cfg)
	args = append([]string{"-config", r.configPath, "-log-level", "debug"}, args...)
	go func() { r.code <- run(ctx, args, r.stdout, r.stderr) }() // r.stop or Cleanup waits for it, on r.code
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.code:
		case <-time.After(30 * time.Second):
			t.Error("run did not return")
		}
	})
	require.Eventually(t, func() bool {
		return strings.Contains(r.stderr.String(), "switchyard started")
	}, 10*time.Second, 10*time.Millisecond, "run never started:\n%s", r.stderr)
	return r
}

// stop cancels run's context, as SIGTERM does, and returns its exit code.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.code:
		r.code <- code // for Cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
		return -1
	}
}

// newClient returns a client of its own, so that no idle connection outlives
// the test.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	code, body, _ := pooltest.Get(t, c, url)
	return code, body
}

// answer is what a client got for a request sent by getAsync.
type answer struct {
	code int
	body string
	err  error
}

// getAsync sends a GET on a goroutine of its own and delivers the answer on
// the channel it returns, which the test must receive from.
func getAsync(c *http.Client, url string) <-chan answer {
	got := make(chan answer, 1)
	go func() { // the test waits for it on got
		resp, err := c.Get(url)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b), err}
	}()
	return got
}

// namedBackend is a real backend that answers with its name.
func namedBackend(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	a, b := namedBackend(t, "a"), namedBackend(t, "b")
	r := start(t, testConfig(t, a.URL, b.URL))
	c := newClient(t)

	seen := map[string]int{}
	for range 4 {
		code, body := get(t, c, r.proxyURL+"/")
		assert.Equal(t, http.StatusOK, code)
		seen[body]++
	}
	assert.Equal(t, map[string]int{"a": 2, "b": 2}, seen, "round-robin over both backends")

	code, _ := get(t, c, r.adminURL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, body := get(t, c, r.adminURL+"/status")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, a.URL)

	log := r.stderr.String()
	assert.Contains(t, log, "strategy=round-robin")
	assert.Contains(t, log, a.URL)

	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
	assert.Contains(t, r.stderr.String(), "switchyard stopped")
	_, err := c.Get(r.proxyURL + "/")
	assert.Error(t, err, "the proxy no longer listens")
}

// SIGTERM during a request: the client still gets the whole answer, and the
// program exits 0. (The original program sent it an empty reply.)
func TestShutdownLetsRequestsInFlightFinish(t *testing.T) {
	body := strings.Repeat("x", 256<<10)
	arrived := make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			time.Sleep(time.Second)
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(backend.Close)
	r := start(t, testConfig(t, backend.URL))
	c := newClient(t)

	got := getAsync(c, r.proxyURL+"/slow")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the backend")
	}

	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
	a := <-got
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusOK, a.code)
	assert.Equal(t, len(body), len(a.body), "the whole body arrived")
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.file), 0o600))
			var stdout, stderr pooltest.SyncBuffer
			code := run(context.Background(), []string{"-config", path}, &stdout, &stderr)
			assert.Equal(t, exitUsage, code)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			assert.Len(t, lines, len(tc.wants), "one line per problem:\n%s", stderr.String())
			for _, line := range lines {
				assert.True(t, strings.HasPrefix(line, path+": "), "each line names the file: %q", line)
			}
			for _, want := range tc.wants {
				assert.Contains(t, stderr.String(), want)
			}
			assert.Empty(t, stdout.String())
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	path := writeConfig(t, map[string]any{"port": 8080})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-log-format", "xml"}, `-log-format must be text or json, got "xml"`},
		{[]string{"-log-level", "loud"}, `-log-level must be debug, info, warn or error, got "loud"`},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-config", filepath.Join(t.TempDir(), "missing.json")}, "no such file or directory"},
	} {
		var stdout, stderr pooltest.SyncBuffer
		args := append([]string{"-config", path}, tc.args...)
		assert.Equal(t, exitUsage, run(context.Background(), args, &stdout, &stderr), tc.args)
		assert.Contains(t, stderr.String(), tc.want, tc.args)
	}
}

func TestRunPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	cfg := testConfig(t)
	cfg["port"] = busyPort
	var stdout, stderr pooltest.SyncBuffer
	code := run(context.Background(), []string{"-config", writeConfig(t, cfg)}, &stdout, &stderr)
	assert.Equal(t, exitFail, code)
	assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line:\n%s", stderr.String())
	assert.Contains(t, stderr.String(), "cannot start: port: ")
	assert.Contains(t, stderr.String(), "address already in use")
	// Nothing was left listening: the admin port is free again.
	ln, err := net.Listen("tcp", cfg["admin_addr"].(string))
	require.NoError(t, err, "the admin listener was closed")
	ln.Close()

	busyAdmin, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busyAdmin.Close()
	cfg = testConfig(t)
	cfg["admin_addr"] = busyAdmin.Addr().String()
	stderr = pooltest.SyncBuffer{}
	code = run(context.Background(), []string{"-config", writeConfig(t, cfg)}, &stdout, &stderr)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr.String(), "cannot start: admin_addr: ")
}

func TestDemo(t *testing.T) {
	var backends []string
	for range 3 {
		backends = append(backends, fmt.Sprintf("http://127.0.0.1:%d", pooltest.FreePort(t)))
	}
	r := start(t, testConfig(t, backends...), "-demo")
	c := newClient(t)

	out := r.stdout.String()
	assert.Contains(t, out, fmt.Sprintf("curl localhost:%d/\n", testPort(r.proxyURL)))
	assert.Contains(t, out, "?sleep=2s")
	assert.Contains(t, out, r.adminURL[len("http://"):]+"/status")
	assert.Contains(t, out, "open "+r.adminURL+"/ in a browser")
	assert.Contains(t, out, "-X POST")
	assert.Contains(t, out, "-X DELETE")

	seen := map[string]bool{}
	for range 3 {
		code, body := get(t, c, r.proxyURL+"/hello")
		assert.Equal(t, http.StatusOK, code)
		seen[body] = true
	}
	for _, b := range backends {
		assert.True(t, seen[fmt.Sprintf("backend %s - GET /hello\n", b[len("http://"):])], "%s answered: %v", b, seen)
	}
	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
}

func TestDemoNeedsLocalBackends(t *testing.T) {
	for _, backends := range [][]string{nil, {"http://example.com:8082"}, {"https://localhost:8443"}} {
		cfg := testConfig(t, backends...)
		var stdout, stderr pooltest.SyncBuffer
		code := run(context.Background(), []string{"-config", writeConfig(t, cfg), "-demo"}, &stdout, &stderr)
		assert.Equal(t, exitUsage, code, backends)
		assert.Contains(t, stderr.String(), "-demo: ", backends)
	}
}

func testPort(url string) int {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	n, _ := strconv.Atoi(port)
	return n
}

func TestClientHeaderLimits(t *testing.T) {
	cfg := testConfig(t, namedBackend(t, "a").URL)
	cfg["read_header_timeout"] = "200ms"
	cfg["max_header_bytes"] = 4096
	r := start(t, cfg)
	addr := strings.TrimPrefix(r.proxyURL, "http://")

	// Half a request header: the server drops the connection once
	// read_header_timeout has passed, rather than wait for the rest.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(conn)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the server should have closed the connection: %v", err)

	// Headers over max_header_bytes: 431.
	conn2, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn2.Close()
	_, err = fmt.Fprintf(conn2, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("y", 16<<10))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	assert.Equal(t, exitOK, r.stop(t))
}

func TestOwned(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returnsNil := func(context.Context) error { return nil }
	err := owned("pool owner", ctx, returnsNil)
	assert.EqualError(t, err, "pool owner: stopped unexpectedly")

	failing := func(context.Context) error { return errors.New("boom") }
	assert.EqualError(t, owned("health loop", ctx, failing), "health loop: boom")

	cancel()
	assert.NoError(t, owned("pool owner", ctx, returnsNil), "asked to stop: success")
	assert.NoError(t, owned("pool owner", ctx, func(ctx context.Context) error { return ctx.Err() }))
}

// With shutdown_delay, /healthz says 503 first while the proxy still serves,
// so that a load balancer in front stops sending before the listeners close.
func TestShutdownDelay(t *testing.T) {
	cfg := testConfig(t, namedBackend(t, "a").URL)
	cfg["shutdown_delay"] = "2s"
	r := start(t, cfg)
	c := newClient(t)
	code, _ := get(t, c, r.adminURL+"/healthz")
	require.Equal(t, http.StatusOK, code)

	r.cancel()
	require.Eventually(t, func() bool {
		resp, err := c.Get(r.adminURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 2*time.Second, 10*time.Millisecond, "/healthz should say 503 during shutdown_delay")
	code, body := get(t, c, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code, "the proxy still serves during shutdown_delay")
	assert.Equal(t, "a", body)
	assert.Equal(t, exitOK, r.stop(t))
}

// Shutdown must not wait for the next health-check round: with checks an
// hour apart, run still returns as soon as the servers have stopped.
func TestShutdownIsPrompt(t *testing.T) {
	cfg := testConfig(t, namedBackend(t, "a").URL)
	cfg["health_check_frequency"] = "1h"
	cfg["health_check_timeout"] = "1s"
	r := start(t, cfg)
	r.cancel()
	select {
	case code := <-r.code:
		r.code <- code
		assert.Equal(t, exitOK, code)
	case <-time.After(5 * time.Second):
		t.Error("run did not return within 5s of its context ending")
	}
}

// Server.Shutdown neither waits for nor closes upgraded connections; run
// closes them once shutdown_timeout has passed, and still exits 0.
func TestShutdownClosesUpgradedConnections(t *testing.T) {
	backend := upgradeEchoBackend(t)
	cfg := testConfig(t, backend.URL)
	cfg["shutdown_timeout"] = "500ms"
	r := start(t, cfg)

	conn, br := dialUpgraded(t, r)
	_, err := io.WriteString(conn, "ping\n")
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ping\n", line)

	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadString('\n')
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the upgraded connection should be closed: %v", err)
}

// PROXY_ADMIN_TOKEN opens the admin API to the network, behind the token.
func TestAdminTokenFromEnvironment(t *testing.T) {
	t.Setenv("PROXY_ADMIN_TOKEN", "env-token")
	cfg := testConfig(t)
	adminPort := pooltest.FreePort(t)
	cfg["admin_addr"] = fmt.Sprintf("0.0.0.0:%d", adminPort)
	r := start(t, cfg)
	c := newClient(t)
	status := fmt.Sprintf("http://127.0.0.1:%d/status", adminPort)

	code, _ := get(t, c, status)
	assert.Equal(t, http.StatusUnauthorized, code)

	req, err := http.NewRequest(http.MethodGet, status, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer env-token")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, exitOK, r.stop(t))
}

// upgradeEchoBackend is a backend that answers an "Upgrade: echo" request
// with 101 and then echoes every byte until its client closes; any other
// request (a health check) gets an empty 200.
func upgradeEchoBackend(t testing.TB) *httptest.Server {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			return // a health check
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		io.Copy(conn, brw) // until the proxy closes its side
	}))
	t.Cleanup(backend.Close)
	return backend
}

// dialUpgraded opens a connection through the proxy of r and upgrades it,
// as a WebSocket client would; the test closes it.
func dialUpgraded(t testing.TB, r *running) (net.Conn, *bufio.Reader) {
	t.Helper()
	return pooltest.DialUpgrade(t, strings.TrimPrefix(r.proxyURL, "http://"), "echo")
}

// -version says what was built; -probe answers for /healthz with its exit
// code, so that an image without a shell can be health-checked.
func TestVersionAndProbe(t *testing.T) {
	var stdout, stderr pooltest.SyncBuffer
	assert.Equal(t, exitOK, run(t.Context(), []string{"-version"}, &stdout, &stderr))
	assert.True(t, strings.HasPrefix(stdout.String(), "switchyard "), stdout.String())
	assert.Contains(t, stdout.String(), "go1.")

	r := start(t, testConfig(t, namedBackend(t, "a").URL))
	assert.Equal(t, exitOK, run(t.Context(), []string{"-probe", r.adminURL + "/healthz"}, &stdout, &stderr))
	assert.Equal(t, exitFail, run(t.Context(), []string{"-probe", r.adminURL + "/nowhere"}, &stdout, &stderr))
	assert.Equal(t, exitOK, r.stop(t))
	assert.Equal(t, exitFail, run(t.Context(), []string{"-probe", r.adminURL + "/healthz"}, &stdout, &stderr), "nothing listens")
}

// steadyLoad is n clients sending GETs to url, each on keep-alive, until
// stop; it counts what was not a 200.
type steadyLoad struct {
	stopCh             chan struct{}
	stopOnce           sync.Once
	wg                 sync.WaitGroup
	requests, failures atomic.Int64
	errs               pooltest.SyncBuffer
}

func startSteadyLoad(url string, n int) *steadyLoad {
	return startSteadyLoadWith(url, n, func() *http.Transport { return &http.Transport{} })
}

// startSteadyLoadWith is startSteadyLoad with each client's transport made
// by newTransport.
func startSteadyLoadWith(url string, n int, newTransport func() *http.Transport) *steadyLoad {
	l := &steadyLoad{stopCh: make(chan struct{})}
	for range n {
		l.wg.Go(func() { // waited for by stop
			tr := newTransport()
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-l.stopCh:
					return
				default:
				}
				res, err := c.Get(url)
				l.requests.Add(1)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					l.failures.Add(1)
					fmt.Fprintln(&l.errs, err)
				}
			}
		})
	}
	return l
}

// stop ends the load and waits for its clients.
func (l *steadyLoad) stop() {
	l.stopOnce.Do(func() { close(l.stopCh) })
	l.wg.Wait()
}

// The admin server serves the status page and Go's profiler ("pprof":
// false turns it off, at the next start); the startup line names the
// config file and its generation.
func TestStatusPageAndProfiler(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg)
	assert.Contains(t, r.stderr.String(), "config="+r.configPath)
	assert.Contains(t, r.stderr.String(), "generation=1")
	c := newClient(t)
	code, body, header := pooltest.Get(t, c, r.adminURL+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, header.Get("Content-Type"), "text/html")
	assert.Contains(t, body, "<html")
	code, _ = get(t, c, r.adminURL+"/debug/pprof/cmdline")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, exitOK, r.stop(t))

	cfg["pprof"] = false
	r = start(t, cfg)
	code, _ = get(t, c, r.adminURL+"/debug/pprof/cmdline")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, exitOK, r.stop(t))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
)

// The chaos test's dimensions (issue 8, "Chaos under load").
const (
	chaosDuration = 15 * time.Second       // how long the clients send
	chaosClients  = 24                     // concurrent keep-alive clients
	chaosStep     = 150 * time.Millisecond // time between two changes to the backends
	chaosBackends = 4                      // backends in the config file
)

// TestChaos runs the whole program, as main does, in front of real backends
// while 24 keep-alive clients send GETs for 15s and, every 150ms, the
// backends change: every 300ms one is killed (its listener and every
// connection closed at once) and 150ms later started again on the same
// address; every 300ms one is added through the admin API, and one removed
// through it, to be stopped once it has drained. Throughout, at least two
// backends that the pool has seen pass a health check are running and in the
// pool. Afterwards:
//
//   - no client saw a transport error or a non-2xx answer, nor had to send a
//     request again: a GET that met a killed backend before its answer began
//     was sent again by the proxy, and a removed backend finished what it had
//     in flight;
//   - every backend's in-flight count is back to zero and none is left
//     draining: no pick leaked a count;
//   - once run has returned, every goroutine that the program (and the
//     test's backends and clients) started has ended.
func TestChaos(t *testing.T) {
	// Taken before the test starts anything, so that whatever is running
	// at the end and was not running now was left behind.
	goroutinesBefore := runtime.NumGoroutine()
	preexisting := goleak.IgnoreCurrent()

	c := &chaos{
		t:     t,
		rng:   rand.New(rand.NewPCG(8, 8)),
		admin: &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second},
		count: map[string]int{},
	}
	t.Cleanup(c.killAll)
	var urls []string
	for range chaosBackends {
		b := c.newBackend()
		b.start(t)
		b.inPool = true
		urls = append(urls, b.url())
	}

	cfg := testConfig(t, urls...) // health checks every 200ms, 100ms timeout
	r := start(t, cfg)
	c.adminURL = r.adminURL
	c.waitAllUp()

	load := startLoad(r.proxyURL, chaosClients, time.Now().Add(chaosDuration))
	// Should the test fail half-way, the clients still stop by themselves
	// at the end of chaosDuration; this waits for them.
	t.Cleanup(load.wait)
	for step := 0; !load.over(); step++ {
		time.Sleep(chaosStep)
		c.step(step)
	}
	load.wait()

	requests, failures := load.requests.Load(), load.failures.Load()
	t.Logf("chaos: %d requests from %d clients in %v, %d errors; %s; %d retries on another backend",
		requests, chaosClients, chaosDuration, failures, c.summary(),
		strings.Count(r.stderr.String(), `msg="retrying on another backend"`))
	// On failure, the health checks that timed out tell a machine too slow
	// for health_check_timeout (which can leave no backend up) from a proxy
	// that failed requests it had a backend for.
	assert.Zero(t, failures, "requests that failed; the first ones:\n%s\nproxy errors in the log:\n%s\nhealth checks that timed out:\n%s",
		strings.Join(load.firstErrors(), "\n"), grepLines(r.stderr.String(), "level=WARN", 20),
		grepLines(r.stderr.String(), "health check: timeout", 20))
	assert.Greater(t, requests, int64(chaosClients), "the clients sent requests")
	for _, kind := range []string{"kill", "restart", "add", "remove"} {
		assert.Positive(t, c.count[kind], "no %s happened: %s", kind, c.summary())
	}

	// Every request has been answered, but a handler releases its backend
	// just after the client has the last byte: wait for that, bounded.
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := c.fetchStatus()
		require.NoError(ct, err)
		assert.Zero(ct, st.DrainingBackends)
		for _, b := range st.Backends {
			assert.Zero(ct, b.CurrentConnections, b.URL)
			assert.NotEqual(ct, "draining", b.State, b.URL)
		}
	}, 5*time.Second, 10*time.Millisecond, "in-flight counts back to zero, nothing draining")
	last := c.status()
	// The pool lists exactly the backends the test put there.
	var listed []string
	for _, b := range last.Backends {
		listed = append(listed, b.URL)
	}
	assert.ElementsMatch(t, c.inPool(), listed)

	// Shut down as on SIGTERM, then stop everything the test started.
	assert.Equal(t, exitOK, r.stop(t), grepLines(r.stderr.String(), "level=ERROR", 20))
	c.killAll()
	c.admin.CloseIdleConnections()
	// The clients closed their own idle connections as they returned.

	// Goroutines end a little after what they serve has closed: wait for
	// the count to come back, bounded. The margin allows for the runtime's
	// and the testing package's own comings and goings.
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+2 },
		10*time.Second, 10*time.Millisecond, "goroutines left running: %d before", goroutinesBefore)
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before the program and backends started, %d after they stopped", goroutinesBefore, after)
	goleak.VerifyNone(t, preexisting)
}

// chaos is the test's model of its backends and the changes it makes to
// them. Only the test goroutine uses it.
type chaos struct {
	t        *testing.T
	rng      *rand.Rand
	admin    *http.Client
	adminURL string
	backends []*chaosBackend // every backend started, in order
	count    map[string]int  // changes made, by kind
}

// chaosBackend is one backend address: a test backend that can be killed and
// started again on the same address.
type chaosBackend struct {
	name   string
	addr   string        // host:port, fixed by the first start
	srv    *http.Server  // nil when not running
	served chan struct{} // closed when srv.Serve has returned
	inPool bool          // added (or configured) and not removed
}

func (c *chaos) newBackend() *chaosBackend {
	b := &chaosBackend{name: fmt.Sprintf("b%d", len(c.backends))}
	c.backends = append(c.backends, b)
	return b
}

func (b *chaosBackend) url() string   { return "http://" + b.addr }
func (b *chaosBackend) running() bool { return b.srv != nil }

// start serves the test backend on b's address, waiting (briefly) until the
// address can be bound again if it was just given up.
func (b *chaosBackend) start(t *testing.T) {
	t.Helper()
	addr := b.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	deadline := time.Now().Add(2 * time.Second)
	var ln net.Listener
	for {
		var err error
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		require.ErrorIs(t, err, syscall.EADDRINUSE)
		require.True(t, time.Now().Before(deadline), "%s could not be bound again within 2s: %v", addr, err)
		time.Sleep(10 * time.Millisecond)
	}
	b.addr = ln.Addr().String()
	b.srv = testbackend.Server(b.name, nil)
	b.served = make(chan struct{})
	srv, served := b.srv, b.served
	go func() { // kill waits for it, on served
		defer close(served)
		srv.Serve(ln)
	}()
}

// kill stops b the hard way: Close shuts the listener and every connection,
// idle or in the middle of a request, at once.
func (b *chaosBackend) kill(t *testing.T) {
	t.Helper()
	b.srv.Close()
	select {
	case <-b.served:
	case <-time.After(5 * time.Second):
		t.Errorf("backend %s: Serve did not return after Close", b.name)
	}
	b.srv = nil
}

func (c *chaos) killAll() {
	for _, b := range c.backends {
		if b.running() {
			b.kill(c.t)
		}
	}
}

// step makes the changes due at this step: on even steps one backend is
// killed and one added, on odd steps one is removed and the killed ones are
// started again. Which backend each change hits is chosen at random (from a
// fixed seed) among those it may hit without leaving fewer than two backends
// that are running, in the pool and up.
func (c *chaos) step(step int) {
	if step%2 == 0 {
		c.kill()
		c.add()
	} else {
		c.remove()
		c.restart()
	}
}

// kill kills one backend that is serving, if two others are.
func (c *chaos) kill() {
	if up := c.available(); len(up) > 2 {
		up[c.rng.IntN(len(up))].kill(c.t)
		c.count["kill"]++
	}
}

// add adds a new backend, or one removed earlier that is still running
// (perhaps still draining, which brings the same backend back).
func (c *chaos) add() {
	var removed []*chaosBackend
	for _, b := range c.backends {
		if !b.inPool && b.running() {
			removed = append(removed, b)
		}
	}
	var b *chaosBackend
	if len(removed) > 0 && c.rng.IntN(2) == 0 {
		b = removed[c.rng.IntN(len(removed))]
		c.count["re-add"]++
	} else {
		b = c.newBackend()
		b.start(c.t)
	}
	code, body := c.call(http.MethodPost, "/backends", b.url())
	require.Equal(c.t, http.StatusCreated, code, "%s", body)
	b.inPool = true
	c.count["add"]++
}

// remove removes one backend, perhaps one that was killed, leaving at least
// three in the pool. First it stops the backends removed earlier that have
// drained.
func (c *chaos) remove() {
	c.retireDrained()
	var candidates []*chaosBackend
	up := c.available()
	for _, b := range c.backends {
		if b.inPool && (len(up) > 2 || !slices.Contains(up, b)) {
			candidates = append(candidates, b)
		}
	}
	if len(c.inPool()) <= 3 || len(candidates) == 0 {
		return
	}
	b := candidates[c.rng.IntN(len(candidates))]
	code, body := c.call(http.MethodDelete, "/backends", b.url())
	require.Equal(c.t, http.StatusOK, code, "%s", body)
	b.inPool = false
	c.count["remove"]++
}

// restart starts the killed backends that are still in the pool again, each
// on its own address.
func (c *chaos) restart() {
	for _, b := range c.backends {
		if b.inPool && !b.running() {
			b.start(c.t)
			c.count["restart"]++
		}
	}
}

// retireDrained kills the removed backends that the pool no longer lists:
// their last request has ended. One still draining is left running, so that
// what it has in flight finishes.
func (c *chaos) retireDrained() {
	listed := map[string]bool{}
	for _, s := range c.status().Backends {
		listed[s.URL] = true
	}
	for _, b := range c.backends {
		if !b.inPool && b.running() && !listed[b.url()] {
			b.kill(c.t)
			c.count["retire"]++
		}
	}
}

// available returns the backends that are running, in the pool, and up in
// the pool's view. Only these are sure to serve: one started again is down
// until its next health check.
func (c *chaos) available() []*chaosBackend {
	alive := map[string]bool{}
	for _, s := range c.status().Backends {
		alive[s.URL] = s.Alive
	}
	var out []*chaosBackend
	for _, b := range c.backends {
		if b.inPool && b.running() && alive[b.url()] {
			out = append(out, b)
		}
	}
	return out
}

func (c *chaos) inPool() []string {
	var out []string
	for _, b := range c.backends {
		if b.inPool {
			out = append(out, b.url())
		}
	}
	return out
}

// waitAllUp waits for the first round of health checks to agree that every
// configured backend is up.
func (c *chaos) waitAllUp() {
	require.EventuallyWithT(c.t, func(ct *assert.CollectT) {
		st, err := c.fetchStatus()
		require.NoError(ct, err)
		assert.Equal(ct, chaosBackends, st.ActiveBackends)
	}, 5*time.Second, 10*time.Millisecond, "the configured backends did not all come up")
}

func (c *chaos) status() admin.StatusResponse {
	st, err := c.fetchStatus()
	require.NoError(c.t, err)
	return st
}

// fetchStatus returns GET /status decoded, or why it could not; it fails
// nothing, so that a condition polled off the test goroutine may call it.
func (c *chaos) fetchStatus() (admin.StatusResponse, error) {
	var st admin.StatusResponse
	code, body, err := c.do(http.MethodGet, "/status", "")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, body)
	}
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	return st, err
}

// call makes one admin request; url, if not empty, is sent as the body's url.
func (c *chaos) call(method, path, url string) (int, []byte) {
	c.t.Helper()
	code, body, err := c.do(method, path, url)
	require.NoError(c.t, err)
	return code, body
}

func (c *chaos) do(method, path, url string) (int, []byte, error) {
	var body io.Reader
	if url != "" {
		body = strings.NewReader(fmt.Sprintf(`{"url": %q}`, url))
	}
	req, err := http.NewRequest(method, c.adminURL+path, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.admin.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, data, err
}

func (c *chaos) summary() string {
	return fmt.Sprintf("%d kills, %d restarts, %d adds (%d of removed backends), %d removes, %d removed backends stopped",
		c.count["kill"], c.count["restart"], c.count["add"], c.count["re-add"], c.count["remove"], c.count["retire"])
}

// loadGen is the chaos test's clients.
type loadGen struct {
	until              time.Time
	wg                 sync.WaitGroup
	requests, failures atomic.Int64

	mu     sync.Mutex
	errors []string // the first few failures, described
}

// startLoad starts n clients, each with a keep-alive connection of its own,
// that send GETs to proxyURL one after another until the time is up. Each
// request is bounded by the client's timeout, so the clients stop by
// themselves. Every answer must be a 2xx from a backend, for that request,
// read to its end.
func startLoad(proxyURL string, n int, until time.Time) *loadGen {
	l := &loadGen{until: until}
	start := time.Now()
	for id := range n {
		// Waited for by l.wait. Each client closes its idle connection as it
		// returns, so that nothing of it is left running.
		l.wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i := 0; !l.over(); i++ {
				// A few milliseconds at the backend, so that kills and
				// removals find requests in flight.
				path := fmt.Sprintf("/chaos/%d/%d?sleep=%dms", id, i, i%3)
				err := checkAnswer(client, proxyURL+path, path)
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.record(fmt.Sprintf("%8v client %2d: %v", time.Since(start).Round(time.Millisecond), id, err))
				}
			}
		})
	}
	return l
}

func (l *loadGen) over() bool { return !time.Now().Before(l.until) }
func (l *loadGen) wait()      { l.wg.Wait() }

func (l *loadGen) record(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) < 20 {
		l.errors = append(l.errors, s)
	}
}

func (l *loadGen) firstErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errors)
}

// checkAnswer sends one GET and says what was wrong with its answer, if
// anything. A Go client sends a GET again, without saying so, when a kept-alive
// connection closes before any answer arrives; that would hide a request the
// proxy dropped, so it counts as a failure here.
func checkAnswer(client *http.Client, url, path string) error {
	var conns atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	switch {
	case err != nil:
		return fmt.Errorf("reading the body: %w (after %q)", err, body)
	case conns.Load() > 1:
		return fmt.Errorf("the proxy closed a kept-alive connection without answering; the client sent the request again (%d times in all) and got %d", conns.Load(), res.StatusCode)
	case res.StatusCode < 200 || res.StatusCode > 299:
		return fmt.Errorf("status %d: %q", res.StatusCode, body)
	case !bytes.HasPrefix(body, []byte("backend ")) || !bytes.HasSuffix(body, []byte(" - GET "+path+"\n")):
		return fmt.Errorf("status %d with a body that is not the backend's answer to %s: %q", res.StatusCode, path, body)
	}
	return nil
}

// grepLines returns up to max lines of log that contain substr.
func grepLines(log, substr string, max int) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, substr) {
			out = append(out, strings.TrimRight(line, "\n"))
			if len(out) == max {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// flakyBackend passes its health checks (GET /health) but resets every other
// connection after reading the request: a GET that meets it is retried
// elsewhere, a POST gets 502.
func flakyBackend(t *testing.T) string {
	t.Helper()
	return pooltest.RawBackend(t, func(c net.Conn, req *http.Request) {
		if req.URL.Path == "/health" {
			io.WriteString(c, healthyAnswer)
			return
		}
		c.(*net.TCPConn).SetLinger(0)
	})
}

// scrape returns the value of one series in the admin API's /metrics, as
// written there (labels in name order), and whether it was there.
func scrape(t *testing.T, c *http.Client, adminURL, series string) (float64, bool) {
	t.Helper()
	code, body := get(t, c, adminURL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f, true
		}
	}
	return 0, false
}

// The metrics and the access log after real traffic that ends in each of
// the outcomes a request can have: served, served after a retry, 502, 503,
// 504 and 499.
func TestMetricsAndAccessLog(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "good")
	}))
	t.Cleanup(good.Close)
	flaky := flakyBackend(t)

	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := testConfig(t, good.URL, flaky)
	cfg["health_check_frequency"] = "1h" // the start-up round only
	cfg["health_check_timeout"] = "1s"
	cfg["health_check_path"] = "/health"
	cfg["request_timeout"] = "300ms"
	cfg["access_log"] = logPath
	r := start(t, cfg)
	c := newClient(t)
	metric := func(series string) float64 {
		t.Helper()
		v, ok := scrape(t, c, r.adminURL, series)
		require.True(t, ok, "no series %s", series)
		return v
	}

	// Round-robin, good first: good serves; flaky resets and good serves
	// the retry; flaky resets the POST, which is not retried.
	code, body := get(t, c, r.proxyURL+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "good", body)
	code, _ = get(t, c, r.proxyURL+"/retried")
	require.Equal(t, http.StatusOK, code)
	res, err := c.Post(r.proxyURL+"/post", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusBadGateway, res.StatusCode)

	// good does not answer /slow within request_timeout.
	code, _ = get(t, c, r.proxyURL+"/slow")
	require.Equal(t, http.StatusGatewayTimeout, code)

	// A client that gives up first: 499.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.proxyURL+"/slow", nil)
	require.NoError(t, err)
	_, err = c.Do(req)
	cancel()
	require.Error(t, err)

	goodKey := `backend="` + good.URL + `"`
	flakyKey := `backend="` + flaky + `"`
	// The client that left is counted once its handler returns. Polled here,
	// on the test goroutine, because scrape may stop the test.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v, _ := scrape(t, c, r.adminURL, `switchyard_requests_total{code="499"}`); v == 1 {
			break
		}
	}
	assert.Equal(t, 1.0, metric(`switchyard_requests_total{code="499"}`))
	assert.Equal(t, 2.0, metric(`switchyard_requests_total{code="200"}`))
	assert.Equal(t, 1.0, metric(`switchyard_requests_total{code="502"}`))
	assert.Equal(t, 1.0, metric(`switchyard_requests_total{code="504"}`))
	assert.Equal(t, 5.0, metric(`switchyard_request_duration_seconds_count`))
	assert.Equal(t, 2.0, metric(`switchyard_backend_requests_total{`+goodKey+`,code_class="2xx"}`))
	assert.Equal(t, 0.0, metric(`switchyard_backend_requests_total{`+flakyKey+`,code_class="2xx"}`))
	assert.GreaterOrEqual(t, metric(`switchyard_backend_retries_total{`+flakyKey+`}`), 1.0)
	assert.Equal(t, 0.0, metric(`switchyard_backend_retries_total{`+goodKey+`}`))
	assert.Equal(t, 1.0, metric(`switchyard_backend_up{`+flakyKey+`}`), "resets do not take a backend down")
	assert.Equal(t, 0.0, metric(`switchyard_backend_in_flight_requests{`+goodKey+`}`))
	assert.Equal(t, 1.0, metric(`switchyard_backend_health_checks_total{`+goodKey+`,result="pass"}`))
	assert.Equal(t, 1.0, metric(`switchyard_backend_health_check_duration_seconds_count{`+goodKey+`}`))
	assert.Equal(t, 1.0, metric(`switchyard_backend_state_changes_total{`+goodKey+`,cause="configured",state="up"}`))
	assert.Equal(t, 2.0, metric(`switchyard_pool_backends{state="up"}`))
	assert.Equal(t, 0.0, metric(`switchyard_access_log_dropped_total`))

	// Adding a backend adds its series; removing one deletes them, so the
	// label set stays as large as the pool.
	dead := "http://127.0.0.1:" + strconv.Itoa(pooltest.FreePort(t))
	res, err = c.Post(r.adminURL+"/backends", "application/json", strings.NewReader(`{"url": "`+dead+`"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
	deadKey := `backend="` + dead + `"`
	assert.Equal(t, 0.0, metric(`switchyard_backend_up{`+deadKey+`}`))
	assert.Equal(t, 1.0, metric(`switchyard_backend_health_checks_total{`+deadKey+`,result="fail"}`))
	assert.Equal(t, 1.0, metric(`switchyard_pool_backends{state="down"}`))
	for _, u := range []string{dead, good.URL, flaky} {
		req, err := http.NewRequest(http.MethodDelete, r.adminURL+"/backends", strings.NewReader(`{"url": "`+u+`"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	for _, key := range []string{deadKey, goodKey, flakyKey} {
		_, ok := scrape(t, c, r.adminURL, `switchyard_backend_up{`+key+`}`)
		assert.False(t, ok, "series of a removed backend: %s", key)
	}

	// Nothing left: 503.
	code, _ = get(t, c, r.proxyURL+"/")
	require.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, 1.0, metric(`switchyard_requests_total{code="503"}`))
	assert.Equal(t, 0.0, metric(`switchyard_pool_backends{state="up"}`))

	c.CloseIdleConnections()
	require.Equal(t, 0, r.stop(t))

	// The access log: one JSON line per request, in the order they ended.
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	type entry struct {
		Time       time.Time
		Msg        string
		Client     string
		Method     string
		Path       string
		Status     int
		Bytes      int64
		DurationMS float64 `json:"duration_ms"`
		Backend    string
		Attempts   int
		Error      string
	}
	var entries []entry
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		var e entry
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		assert.Equal(t, "request", e.Msg)
		assert.NotZero(t, e.Time)
		assert.True(t, strings.HasPrefix(e.Client, "127.0.0.1:"), e.Client)
		entries = append(entries, e)
	}
	require.Len(t, entries, 6)
	byPath := map[string]entry{}
	for _, e := range entries {
		byPath[e.Method+" "+e.Path+" "+strconv.Itoa(e.Status)] = e
	}
	check := func(key, backend string, attempts int, errClass string) {
		t.Helper()
		e, ok := byPath[key]
		if !assert.True(t, ok, "no entry %q in %v", key, entries) {
			return
		}
		assert.Equal(t, backend, e.Backend, key)
		assert.Equal(t, attempts, e.Attempts, key)
		assert.Equal(t, errClass, e.Error, key)
	}
	check("GET / 200", good.URL, 1, "")
	assert.Equal(t, int64(4), byPath["GET / 200"].Bytes)
	check("GET /retried 200", good.URL, 2, "")
	check("POST /post 502", flaky, 1, "backend")
	check("GET /slow 504", good.URL, 1, "timeout")
	assert.GreaterOrEqual(t, byPath["GET /slow 504"].DurationMS, 300.0)
	check("GET / 503", "", 0, "no_backend")
	e, ok := byPath["GET /slow 499"]
	if assert.True(t, ok) {
		assert.Equal(t, "client_gone", e.Error)
		assert.Equal(t, good.URL, e.Backend)
	}
}

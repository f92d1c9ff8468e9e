package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs h on a real listener until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// serveAdmin runs the admin API over p on a real listener until the test
// ends and returns its URL.
func serveAdmin(t *testing.T, p admin.Pool, cfg admin.Config) string {
	t.Helper()
	h, err := admin.New(p, cfg)
	require.NoError(t, err)
	return serve(t, h)
}

// checker is a real health checker over p, used as the admin's Prober.
func checker(t *testing.T, p *pool.Pool) *health.Checker {
	t.Helper()
	c, err := health.New(p, health.Config{Interval: time.Hour, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return c
}

// reply is an admin API answer, read in full.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

// send makes one request. A body goes as application/json, as the API
// requires, unless header names another Content-Type. It does not touch t,
// so that it can run off the test goroutine.
func send(base, method, path, body string, header http.Header) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(req)
}

// do sends req and reads the answer in full. Like send, it does not touch
// t.
func do(req *http.Request) (reply, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}, err
}

func call(t *testing.T, base, method, path, body string) reply {
	t.Helper()
	r, err := send(base, method, path, body, nil)
	require.NoError(t, err)
	return r
}

// decode checks that r is JSON and decodes it into a new V.
func decode[V any](t *testing.T, r reply) V {
	t.Helper()
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var v V
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v), "body: %s", r.body)
	return v
}

// errorOf checks that r is a JSON error and returns its message.
func errorOf(t *testing.T, r reply) string {
	t.Helper()
	e := decode[struct {
		Error string `json:"error"`
	}](t, r)
	assert.NotEmpty(t, e.Error)
	return e.Error
}

// urlsOf returns the URLs and states in a pool snapshot, for comparing two.
func urlsOf(t *testing.T, p *pool.Pool) map[string]pool.State {
	t.Helper()
	st, err := p.Status(context.Background())
	require.NoError(t, err)
	out := map[string]pool.State{}
	for _, b := range st.Backends {
		out[b.URL] = b.State
	}
	return out
}

// assertConsistent checks that a snapshot agrees with itself: each URL once,
// members before draining backends, and counts that add up.
func assertConsistent(t testing.TB, st pool.Status) {
	t.Helper()
	seen := map[string]bool{}
	var up, members, draining int
	for i, b := range st.Backends {
		assert.False(t, seen[b.URL], "%s listed twice", b.URL)
		seen[b.URL] = true
		switch b.State {
		case pool.StateUp:
			up++
			members++
		case pool.StateDown:
			members++
		case pool.StateDraining:
			draining++
			assert.Positive(t, b.InFlight, "%s draining with nothing in flight", b.URL)
		default:
			assert.Failf(t, "unexpected state", "%s is %s", b.URL, b.State)
		}
		if b.State != pool.StateDraining {
			assert.Equal(t, i, members-1, "members come before draining backends")
		}
	}
	assert.Equal(t, up, st.Up)
	assert.Equal(t, members, st.Members)
	assert.Equal(t, draining, st.Draining)
}

func TestStatusKeepsTheOriginalShape(t *testing.T) {
	up := serve(t, http.NotFoundHandler())
	down := "http://127.0.0.1:1"
	p := pooltest.Start(t, pool.Config{}, up, down)
	bs, err := p.Backends(context.Background())
	require.NoError(t, err)
	require.NoError(t, p.MarkDown(context.Background(), bs[1], "connection refused"))
	base := serveAdmin(t, p, admin.Config{})

	r := call(t, base, http.MethodGet, "/status", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	// A map, not the admin types, so that the key names themselves are checked.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	// The original keys, as they were; later issues add keys beside them.
	for k, v := range map[string]any{
		"active_backends":   1.0,
		"total_backends":    2.0,
		"draining_backends": 0.0,
		"strategy":          "round-robin",
	} {
		assert.Equal(t, v, raw[k], k)
	}
	assert.Subset(t, keys(raw), []string{"active_backends", "total_backends", "draining_backends", "strategy",
		"backends", "ejected_backends", "strategy_details", "when_all_down", "when_all_down_in_effect", "queue"})
	backends := raw["backends"].([]any)
	require.Len(t, backends, 2)
	first, second := backends[0].(map[string]any), backends[1].(map[string]any)
	assert.Subset(t, keys(first), []string{"url", "alive", "current_connections", "state", "reason", "since",
		"total_requests", "failures", "weight", "effective_weight", "admin_state", "responses", "retries",
		"connection_failures", "ejections"})
	assert.Equal(t, 1.0, first["weight"])
	assert.Equal(t, "ready", first["admin_state"])
	assert.Equal(t, up, first["url"])
	assert.Equal(t, true, first["alive"])
	assert.Equal(t, 0.0, first["current_connections"])
	assert.Equal(t, "up", first["state"])
	assert.Equal(t, "configured", first["reason"])
	since, err := time.Parse(time.RFC3339, first["since"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), since, time.Minute)

	assert.Equal(t, down, second["url"])
	assert.Equal(t, false, second["alive"])
	assert.Equal(t, "down", second["state"])
	assert.Equal(t, "connection refused", second["reason"])
	assert.Equal(t, 1.0, second["failures"])

	// HEAD is answered where GET is, without a body.
	r = call(t, base, http.MethodHead, "/status", "")
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Empty(t, r.body)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestEmptyPoolListsNoBackendsAsAnEmptyList(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{})
	r := call(t, base, http.MethodGet, "/status", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), `"backends": []`)
}

// The original README's curl lines, sent as curl sends them.
func TestREADMECurlLinesWorkUnchanged(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://localhost:8082")
	base := serveAdmin(t, p, admin.Config{})
	jsonHeader := http.Header{"Content-Type": {"application/json"}}

	r, err := send(base, http.MethodGet, "/status", "", nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code)

	r, err = send(base, http.MethodPost, "/backends", `{"url": "http://localhost:8085"}`, jsonHeader)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, r.code)
	added := decode[admin.BackendStatus](t, r)
	assert.Equal(t, "http://localhost:8085", added.URL)
	assert.Equal(t, "down", added.State, "no prober: it waits for the health checks")
	assert.False(t, added.Alive)

	r, err = send(base, http.MethodDelete, "/backends", `{"url": "http://localhost:8082"}`, jsonHeader)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code)
	removed := decode[admin.BackendStatus](t, r)
	assert.Equal(t, "http://localhost:8082", removed.URL)
	assert.Equal(t, "removed", removed.State)

	assert.Equal(t, map[string]pool.State{"http://localhost:8085": pool.StateDown}, urlsOf(t, p))
}

func TestAddProbesAtOnce(t *testing.T) {
	healthy := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	failing := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	p := pooltest.Start(t, pool.Config{})
	base := serveAdmin(t, p, admin.Config{Prober: checker(t, p)})

	r := call(t, base, http.MethodPost, "/backends", `{"url": "`+healthy+`"}`)
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	got := decode[admin.BackendStatus](t, r)
	assert.Equal(t, healthy, got.URL)
	assert.True(t, got.Alive, "in rotation as soon as the probe passed")
	assert.Equal(t, "up", got.State)
	assert.Equal(t, "health check: 200 OK", got.Reason)

	r = call(t, base, http.MethodPost, "/backends", `{"url": "`+failing+`/"}`)
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	got = decode[admin.BackendStatus](t, r)
	assert.Equal(t, failing, got.URL, "normalised")
	assert.False(t, got.Alive)
	assert.Equal(t, "down", got.State)
	assert.Equal(t, 1, int(got.Failures))
	assert.Equal(t, "health check: status 503", got.Reason, "the operator sees why it is not in rotation")

	assert.Equal(t, map[string]pool.State{healthy: pool.StateUp, failing: pool.StateDown}, urlsOf(t, p))
}

// Every refused request answers JSON and leaves the pool as it was.
func TestInputRules(t *testing.T) {
	const existing = "http://existing.test:8080"
	p := pooltest.Start(t, pool.Config{}, existing)
	base := serveAdmin(t, p, admin.Config{})
	before := urlsOf(t, p)

	big := `{"url": "http://big.test/` + strings.Repeat("a", 64<<10) + `"}`
	padded := `{"url": "http://padded.test"}` + strings.Repeat(" ", 64<<10)
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
		allow              string
	}{
		{"POST", "/backends", `{"url": "http://x.test"`, 400, "unexpected EOF", ""},
		{"POST", "/backends", `not json`, 400, "invalid character", ""},
		{"POST", "/backends", ``, 400, "empty body", ""},
		{"POST", "/backends", `{}`, 400, "missing url", ""},
		{"POST", "/backends", `null`, 400, "missing url", ""},
		{"POST", "/backends", `{"url": ""}`, 400, "missing url", ""},
		{"POST", "/backends", `{"url": null}`, 400, "missing url", ""},
		{"POST", "/backends", `{"url": 8085}`, 400, "cannot unmarshal number", ""},
		{"POST", "/backends", `["http://x.test"]`, 400, "cannot unmarshal array", ""},
		{"POST", "/backends", `"http://x.test"`, 400, "cannot unmarshal string", ""},
		{"POST", "/backends", `{"url": "http://x.test", "weight": 0}`, 400, "weight must be a whole number from 1 to 1000", ""},
		{"POST", "/backends", `{"url": "http://x.test", "weight": 1001}`, 400, "weight must be", ""},
		{"POST", "/backends", `{"url": "http://x.test", "weight": 1.5}`, 400, "invalid request body", ""},
		{"DELETE", "/backends", `{"url": "http://existing.test:8080", "weight": 2}`, 400, `unknown field "weight"`, ""},
		{"PATCH", "/backends", `{"url": "http://existing.test:8080"}`, 400, "nothing to change", ""},
		{"PATCH", "/backends", `{"url": "http://existing.test:8080", "weight": 0}`, 400, "weight must be", ""},
		{"PATCH", "/backends", `{"url": "http://existing.test:8080", "admin_state": "off"}`, 400, "admin_state must be", ""},
		{"PATCH", "/backends", `{"url": "http://existing.test:8080", "weight": 2, "admin_state": "off"}`, 400, "admin_state must be", ""},
		{"PATCH", "/backends", `{"url": "http://nope.test", "weight": 2}`, 404, "backend not found", ""},
		{"PATCH", "/backends", `{"url": "http://existing.test:8080", "state": "up"}`, 400, `unknown field "state"`, ""},
		{"POST", "/backends", `{"url": "http://x.test"} {"url": "http://y.test"}`, 400, "after the JSON object", ""},
		{"POST", "/backends", `{"url": "http://x.test"}x`, 400, "invalid character", ""},
		{"POST", "/backends", `{"url": "localhost:8086"}`, 400, "invalid backend URL", ""},
		{"POST", "/backends", `{"url": "ftp://x.test"}`, 400, "scheme must be http, https or h2c", ""},
		{"POST", "/backends", `{"url": "/relative"}`, 400, "invalid backend URL", ""},
		{"POST", "/backends", `{"url": "http://"}`, 400, "no host", ""},
		{"POST", "/backends", `{"url": "http://u:p@x.test"}`, 400, "user info", ""},
		{"POST", "/backends", `{"url": "http://x.test/?q=1"}`, 400, "query", ""},
		{"POST", "/backends", `{"url": "http://x.test/#top"}`, 400, "fragment", ""},
		{"POST", "/backends", `{"url": "HTTP://Existing.TEST:8080/"}`, 409, "already exists", ""},
		{"POST", "/backends", big, 413, "larger than 65536 bytes", ""},
		{"POST", "/backends", padded, 413, "larger than 65536 bytes", ""},
		{"DELETE", "/backends", `{"url": "http://unknown.test"}`, 404, "not found", ""},
		{"DELETE", "/backends", `{"url": "unknown.test"}`, 400, "invalid backend URL", ""},
		{"DELETE", "/backends", `{}`, 400, "missing url", ""},
		{"DELETE", "/backends", big, 413, "larger than", ""},
		{"POST", "/status", ``, 405, "method POST not allowed on /status", "GET, HEAD"},
		{"DELETE", "/status", ``, 405, "not allowed", "GET, HEAD"},
		{"GET", "/backends", ``, 405, "method GET not allowed on /backends", "POST, DELETE, PATCH"},
		{"PUT", "/backends", `{"url": "http://x.test"}`, 405, "not allowed", "POST, DELETE, PATCH"},
		{"HEAD", "/backends", ``, 405, "", "POST, DELETE, PATCH"},
		{"POST", "/healthz", ``, 405, "not allowed", "GET, HEAD"},
		{"OPTIONS", "/healthz", ``, 405, "not allowed", "GET, HEAD"},
		{"GET", "/index.html", ``, 404, "no route /index.html", ""},
		{"GET", "/ui/", ``, 404, "no route", ""},
		{"POST", "/", `{"url": "http://x.test"}`, 405, "method POST not allowed on /", "GET, HEAD"},
		{"GET", "/status/", ``, 404, "no route", ""},
		{"GET", "/backends/x", ``, 404, "no route", ""},
		{"POST", "/nope", `{"url": "http://x.test"}`, 404, "no route", ""},
	} {
		name := tc.method + " " + tc.path + " " + tc.body
		t.Run(name[:min(len(name), 60)], func(t *testing.T) {
			r := call(t, base, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.code, r.code, "%s", r.body)
			assert.Equal(t, tc.allow, r.header.Get("Allow"))
			if tc.method == http.MethodHead {
				assert.Empty(t, r.body)
				return
			}
			assert.Contains(t, errorOf(t, r), tc.msg)
		})
	}
	assert.Equal(t, before, urlsOf(t, p), "nothing was applied")
}

func TestRemoveAcceptsAnySpellingOfTheURL(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://existing.test")
	base := serveAdmin(t, p, admin.Config{})
	r := call(t, base, http.MethodDelete, "/backends", `{"url": "HTTP://EXISTING.test:80/"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assert.Equal(t, "removed", decode[admin.BackendStatus](t, r).State)
	assert.Empty(t, urlsOf(t, p))
}

func TestHealthzTurnsUnavailableOnShutdown(t *testing.T) {
	shuttingDown := make(chan struct{})
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{ShuttingDown: shuttingDown})

	r := call(t, base, http.MethodGet, "/healthz", "")
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, map[string]string{"status": "ok"}, decode[map[string]string](t, r))

	close(shuttingDown)
	r = call(t, base, http.MethodGet, "/healthz", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Equal(t, map[string]string{"status": "shutting down"}, decode[map[string]string](t, r))
	r = call(t, base, http.MethodHead, "/healthz", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
}

func TestToken(t *testing.T) {
	const token = "s3cret-token"
	p := pooltest.Start(t, pool.Config{}, "http://a.test")
	base := serveAdmin(t, p, admin.Config{Token: token})

	for _, tc := range []struct {
		name, auth string
		code       int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer wrong", 401},
		{"wrong, same length", "Bearer s3cret-tokem", 401},
		{"prefix of the token", "Bearer s3cret-toke", 401},
		{"token and more", "Bearer s3cret-token2", 401},
		{"no scheme", token, 401},
		{"other scheme", "Basic " + token, 401},
		{"extra space", "Bearer  " + token, 401},
		{"right", "Bearer " + token, 200},
		{"scheme in any case", "bearer " + token, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.auth != "" {
				h = http.Header{"Authorization": {tc.auth}}
			}
			r, err := send(base, http.MethodGet, "/status", "", h)
			require.NoError(t, err)
			assert.Equal(t, tc.code, r.code)
			if tc.code == 401 {
				assert.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"))
				assert.NotContains(t, errorOf(t, r), token)
			}
		})
	}

	// Every route, known or not, asks for the token before anything else,
	// and a refused change is not made.
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/backends", `{"url": "http://b.test"}`},
		{"DELETE", "/backends", `{"url": "http://a.test"}`},
		{"GET", "/healthz", ""},
		{"POST", "/status", ""},
		{"GET", "/nope", ""},
	} {
		r := call(t, base, rt.method, rt.path, rt.body)
		assert.Equal(t, http.StatusUnauthorized, r.code, "%s %s", rt.method, rt.path)
	}
	assert.Equal(t, map[string]pool.State{"http://a.test": pool.StateUp}, urlsOf(t, p))

	r, err := send(base, http.MethodPost, "/backends", `{"url": "http://b.test"}`,
		http.Header{"Authorization": {"Bearer " + token}})
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, r.code)
}

// Once the pool has stopped the API answers 503 and does not show the
// internal error.
func TestStoppedPoolIsUnavailable(t *testing.T) {
	p, err := pool.New(pool.Config{}, pool.Spec{URL: "http://a.test"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // waited for below
	cancel()
	require.NoError(t, <-done)
	base := serveAdmin(t, p, admin.Config{})

	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/status", ""},
		{"POST", "/backends", `{"url": "http://b.test"}`},
		{"DELETE", "/backends", `{"url": "http://a.test"}`},
	} {
		r := call(t, base, rt.method, rt.path, rt.body)
		assert.Equal(t, http.StatusServiceUnavailable, r.code)
		msg := errorOf(t, r)
		assert.NotContains(t, msg, "actor")
		assert.NotContains(t, msg, "stopped")
	}
	// /healthz does not ask the pool: it says whether the proxy is shutting
	// down, which is cmd/proxy's to signal.
	assert.Equal(t, http.StatusOK, call(t, base, http.MethodGet, "/healthz", "").code)
}

func TestChangesAreLoggedWithTheRemoteAddress(t *testing.T) {
	var logs pooltest.SyncBuffer
	p := pooltest.Start(t, pool.Config{})
	base := serveAdmin(t, p, admin.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Equal(t, http.StatusCreated, call(t, base, http.MethodPost, "/backends", `{"url": "http://a.test"}`).code)
	require.Equal(t, http.StatusOK, call(t, base, http.MethodDelete, "/backends", `{"url": "http://a.test"}`).code)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], `level=INFO msg="admin: backend added" backend=http://a.test remote=127.0.0.1:`)
	assert.Contains(t, lines[1], `level=INFO msg="admin: backend removed" backend=http://a.test state=removed in_flight=0 remote=127.0.0.1:`)
}

func TestNewNeedsAPool(t *testing.T) {
	_, err := admin.New(nil, admin.Config{})
	assert.ErrorContains(t, err, "admin: Pool is nil")
}

// PATCH /backends sets the weight and the admin state at once and answers
// with the backend's status; POST takes a weight too.
func TestPatchWeightAndAdminState(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a.test")
	base := serveAdmin(t, p, admin.Config{})
	r := call(t, base, http.MethodPatch, "/backends", `{"url": "HTTP://A.TEST:80", "weight": 5, "admin_state": "drain"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	st := decode[admin.BackendStatus](t, r)
	assert.Equal(t, 5, st.Weight)
	assert.Equal(t, "drain", st.AdminState)
	assert.False(t, st.Alive, "drain takes no new requests")
	assert.Equal(t, "up", st.State, "health is apart from the admin state")

	r = call(t, base, http.MethodPatch, "/backends", `{"url": "http://a.test", "admin_state": "ready"}`)
	require.Equal(t, http.StatusOK, r.code)
	assert.True(t, decode[admin.BackendStatus](t, r).Alive)

	r = call(t, base, http.MethodPost, "/backends", `{"url": "http://b.test", "weight": 3}`)
	require.Equal(t, http.StatusCreated, r.code)
	assert.Equal(t, 3, decode[admin.BackendStatus](t, r).Weight)
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/statefile"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestDiffBackends(t *testing.T) {
	old := []pool.Spec{{URL: "http://a", Weight: 1}, {URL: "http://b", Weight: 1}, {URL: "http://c", Weight: 2}}
	new := []pool.Spec{{URL: "http://b", Weight: 1}, {URL: "http://c", Weight: 5}, {URL: "http://d", Weight: 1}}
	d := diffBackends(old, new)
	assert.Equal(t, []string{"http://d"}, specURLs(d.added))
	assert.Equal(t, []string{"http://a"}, specURLs(d.removed))
	assert.Equal(t, []pool.Spec{{URL: "http://c", Weight: 5}}, d.changed)
	assert.Equal(t, 1, d.same)

	// On the running set: an operator's own backend (x) and its drain (b)
	// are left as they are; what the file changed is applied.
	running := []statefile.Backend{{URL: "http://a", Weight: 1}, {URL: "http://b", Weight: 1, AdminState: "drain"},
		{URL: "http://c", Weight: 2}, {URL: "http://x", Weight: 3}}
	assert.Equal(t, []statefile.Backend{{URL: "http://b", Weight: 1, AdminState: "drain"}, {URL: "http://c", Weight: 5},
		{URL: "http://x", Weight: 3}, {URL: "http://d", Weight: 1}}, d.apply(running))
}

func TestChangedFields(t *testing.T) {
	old := fileFields([]byte(`{"port": 8080, "strategy": "round-robin", "backends": ["http://a"]}`))
	new := fileFields([]byte(`{"port": 9090, "strategy": "round-robin", "request_timeout": "5s", "backends": []}`))
	assert.Equal(t, []string{"port", "request_timeout"}, changedFields(old, new))
	same := fileFields([]byte(`{"port":8080,"strategy":"round-robin","request_timeout":"30s"}`))
	assert.Empty(t, changedFields(old, same), "a default written out is no change")
}

// reload calls POST /reload and decodes the answer.
func reload(t *testing.T, c *http.Client, r *running) (int, map[string]any) {
	t.Helper()
	res, err := c.Post(r.adminURL+"/reload", "application/json", nil)
	require.NoError(t, err)
	defer res.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	return res.StatusCode, body
}

// rewrite writes fields as r's config file.
func rewrite(t *testing.T, r *running, fields map[string]any) {
	t.Helper()
	data, err := json.Marshal(fields)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(r.configPath, data, 0o600))
}

func statusOf(st admin.StatusResponse, url string) (admin.BackendStatus, bool) {
	for _, b := range st.Backends {
		if b.URL == url {
			return b, true
		}
	}
	return admin.BackendStatus{}, false
}

// A reload applies what changed in the file: the backends it adds, removes
// and reweighs, by their normalised URLs, and the settings; a backend it
// keeps is the same record, its counters and state kept; one added through
// the admin API meanwhile is left alone; port changes are reported, not
// made. Both triggers run the same code: POST /reload and SIGHUP.
func TestReloadAppliesWhatChanged(t *testing.T) {
	a, b, c := namedBackend(t, "a"), namedBackend(t, "b"), namedBackend(t, "c")
	cfg := testConfig(t, a.URL, b.URL)
	r := start(t, cfg)
	client := newClient(t)
	for range 4 {
		get(t, client, r.proxyURL+"/")
	}
	extra := namedBackend(t, "extra")
	code, _ := get(t, client, r.adminURL+"/status")
	require.Equal(t, http.StatusOK, code)
	res, err := client.Post(r.adminURL+"/backends", "application/json", strings.NewReader(fmt.Sprintf(`{"url": %q}`, extra.URL)))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	before := poolStatus(t, client, r)
	keptBefore, _ := statusOf(before, a.URL)
	require.Positive(t, keptBefore.TotalRequests)

	cfg["backends"] = []any{strings.ToUpper(a.URL[:4]) + a.URL[4:] + "/", map[string]any{"url": c.URL, "weight": 3}}
	cfg["request_timeout"] = "7s"
	cfg["port"] = pooltest.FreePort(t)
	rewrite(t, r, cfg)
	code, body := reload(t, client, r)
	require.Equal(t, http.StatusOK, code, "%v", body)
	assert.Equal(t, []any{c.URL}, body["added"])
	assert.Equal(t, []any{b.URL}, body["removed"])
	assert.Equal(t, []any{}, body["changed"])
	assert.Equal(t, 1.0, body["unchanged"])
	assert.Equal(t, []any{"port"}, body["restart_needed"])
	assert.Contains(t, body["settings_changed"], "request_timeout")
	assert.Equal(t, 2.0, body["generation"])

	after := poolStatus(t, client, r)
	kept, _ := statusOf(after, a.URL)
	assert.Equal(t, keptBefore.TotalRequests, kept.TotalRequests, "the same record, its counters kept")
	assert.Equal(t, keptBefore.Since, kept.Since, "and its state")
	added, ok := statusOf(after, c.URL)
	require.True(t, ok)
	assert.Equal(t, 3, added.Weight)
	assert.Equal(t, "up", added.State, "probed at once")
	_, ok = statusOf(after, b.URL)
	assert.False(t, ok, "removed (nothing was in flight)")
	_, ok = statusOf(after, extra.URL)
	assert.True(t, ok, "the operator's backend is left as it is")
	require.NotNil(t, after.Config)
	assert.Equal(t, 2, after.Config.Generation)
	assert.Equal(t, "ok", after.Config.LastReload)
	code, _ = get(t, client, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code, "still on the old port")

	// SIGHUP runs the same reload.
	cfg["backends"] = []any{a.URL, map[string]any{"url": c.URL, "weight": 5}}
	rewrite(t, r, cfg)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := fetchStatus(client, r)
		require.NoError(ct, err)
		assert.Equal(ct, 3, st.Config.Generation)
		b, _ := statusOf(st, c.URL)
		assert.Equal(ct, 5, b.Weight)
	}, 5*time.Second, 10*time.Millisecond)
	v, ok := scrape(t, client, r.adminURL, `switchyard_config_reloads_total{result="ok"}`)
	assert.True(t, ok)
	assert.Equal(t, 2.0, v)
	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
}

// A bad file changes nothing: the old config keeps running, each problem
// is logged on a line of its own naming its field, POST /reload answers 400
// with the problems, and the metric and /status say so.
func TestBadReloadChangesNothing(t *testing.T) {
	a := namedBackend(t, "a")
	cfg := testConfig(t, a.URL)
	r := start(t, cfg)
	client := newClient(t)
	bad := map[string]any{}
	for k, v := range cfg {
		bad[k] = v
	}
	bad["backends"] = []any{"http://b:1", "localhost:8082"}
	bad["strategy"] = "fastest"
	rewrite(t, r, bad)
	code, body := reload(t, client, r)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body["error"], "nothing was changed")
	problems := body["problems"].([]any)
	require.Len(t, problems, 2)
	assert.Contains(t, problems[0], "strategy:")
	assert.Contains(t, problems[1], "backends[1]:")
	assert.Contains(t, r.stderr.String(), `problem="strategy: must be`)

	st := poolStatus(t, client, r)
	assert.Equal(t, "round-robin", st.Strategy)
	require.Len(t, st.Backends, 1)
	assert.Equal(t, a.URL, st.Backends[0].URL)
	assert.Equal(t, 1, st.Config.Generation)
	assert.True(t, strings.HasPrefix(st.Config.LastReload, "error: strategy:"), st.Config.LastReload)
	v, _ := scrape(t, client, r.adminURL, `switchyard_config_reloads_total{result="error"}`)
	assert.Equal(t, 1.0, v)

	// Syntax errors too.
	require.NoError(t, os.WriteFile(r.configPath, []byte(`{"port": `), 0o600))
	code, _ = reload(t, client, r)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, exitOK, r.stop(t))
}

// SIGHUP reopens the access log file, so that logrotate can move it away
// without copytruncate: lines after the signal go to a new file of the
// same name. It does so even when the reload it also runs is refused:
// logrotate does not check the config file first.
func TestSIGHUPReopensTheAccessLog(t *testing.T) {
	for _, refused := range []bool{false, true} {
		t.Run(fmt.Sprintf("reload refused=%v", refused), func(t *testing.T) {
			a := namedBackend(t, "a")
			cfg := testConfig(t, a.URL)
			logPath := filepath.Join(t.TempDir(), "access.log")
			cfg["access_log"] = logPath
			r := start(t, cfg)
			client := newClient(t)
			get(t, client, r.proxyURL+"/before")
			require.Eventually(t, func() bool {
				data, _ := os.ReadFile(logPath)
				return bytes.Contains(data, []byte("/before"))
			}, 5*time.Second, 5*time.Millisecond)
			if refused {
				require.NoError(t, os.WriteFile(r.configPath, []byte(`{"port": "not a number"}`), 0o600))
			}
			rotated := logPath + ".1"
			require.NoError(t, os.Rename(logPath, rotated))
			require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
			require.Eventually(t, func() bool { return strings.Contains(r.stderr.String(), "access log reopened") },
				5*time.Second, 5*time.Millisecond)
			if refused {
				assert.Contains(t, r.stderr.String(), "reload refused")
			}
			get(t, client, r.proxyURL+"/after")
			assert.Equal(t, exitOK, r.stop(t))
			old, err := os.ReadFile(rotated)
			require.NoError(t, err)
			fresh, err := os.ReadFile(logPath)
			require.NoError(t, err)
			assert.Contains(t, string(old), "/before")
			assert.NotContains(t, string(old), "/after")
			assert.Contains(t, string(fresh), "/after")
		})
	}
}

// -check checks the file as start-up does and binds nothing.
func TestCheckFlag(t *testing.T) {
	port := pooltest.FreePort(t)
	good := writeConfig(t, map[string]any{"port": port, "backends": []string{"http://a:1"}})
	var stdout, stderr pooltest.SyncBuffer
	assert.Equal(t, exitOK, run(t.Context(), []string{"-check", "-config", good}, &stdout, &stderr))
	assert.Equal(t, "config "+good+": ok\n", stdout.String())

	bad := writeConfig(t, map[string]any{"port": port, "strategy": "x"})
	stdout, stderr = pooltest.SyncBuffer{}, pooltest.SyncBuffer{}
	assert.Equal(t, exitUsage, run(t.Context(), []string{"-check", "-config", bad}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), bad+": strategy: must be")

	stateFile := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(stateFile, []byte(`{"version": 1, "backends": [{"url": "ftp://x"}]}`), 0o600))
	withState := writeConfig(t, map[string]any{"port": port, "state_file": stateFile})
	stdout, stderr = pooltest.SyncBuffer{}, pooltest.SyncBuffer{}
	assert.Equal(t, exitUsage, run(t.Context(), []string{"-check", "-config", withState}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), stateFile+": statefile: invalid")
	assert.Contains(t, stderr.String(), "move it away")
}

// adminCall sends an admin request with a JSON body.
func adminCall(t *testing.T, c *http.Client, r *running, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.adminURL+"/backends", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

// With a state file, admin changes survive a restart, and so do edits made
// to config.json while the proxy was down, applied on top with the reload's
// rules. A state file that cannot be written fails the change with 500 and
// leaves the pool as it was; one that cannot be parsed stops the start.
func TestStateFileKeepsTheRunningSet(t *testing.T) {
	a, b, c, d := namedBackend(t, "a"), namedBackend(t, "b"), namedBackend(t, "c"), namedBackend(t, "d")
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state", "switchyard.state.json")
	require.NoError(t, os.Mkdir(filepath.Dir(stateFile), 0o755))
	cfg := testConfig(t, a.URL, b.URL)
	cfg["state_file"] = stateFile
	r := start(t, cfg)
	client := newClient(t)
	code, body := adminCall(t, client, r, http.MethodPost, fmt.Sprintf(`{"url": %q, "weight": 4}`, c.URL))
	require.Equal(t, http.StatusCreated, code, body)
	code, body = adminCall(t, client, r, http.MethodPatch, fmt.Sprintf(`{"url": %q, "admin_state": "drain"}`, a.URL))
	require.Equal(t, http.StatusOK, code, body)
	st, ok, err := statefile.Load(stateFile)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []statefile.Backend{{URL: a.URL, Weight: 1, AdminState: "drain"}, {URL: b.URL, Weight: 1}, {URL: c.URL, Weight: 4}}, st.Backends)
	assert.Equal(t, exitOK, r.stop(t))

	// While it is down, the operator edits config.json: b out, d in.
	cfg["backends"] = []string{a.URL, d.URL}
	cfg["port"], cfg["admin_addr"] = pooltest.FreePort(t), fmt.Sprintf("127.0.0.1:%d", pooltest.FreePort(t))
	r = start(t, cfg)
	got := map[string]admin.BackendStatus{}
	for _, bs := range poolStatus(t, client, r).Backends {
		got[bs.URL] = bs
	}
	assert.Len(t, got, 3)
	assert.Equal(t, "drain", got[a.URL].AdminState, "the runtime change survived")
	assert.Equal(t, 4, got[c.URL].Weight, "so did the runtime backend")
	assert.Contains(t, got, d.URL, "and the edit made while down")

	// The state file's directory goes away: the next change cannot be
	// recorded, so it is not made.
	require.NoError(t, os.RemoveAll(filepath.Dir(stateFile)))
	code, body = adminCall(t, client, r, http.MethodDelete, fmt.Sprintf(`{"url": %q}`, c.URL))
	assert.Equal(t, http.StatusInternalServerError, code, body)
	_, still := statusOf(poolStatus(t, client, r), c.URL)
	assert.True(t, still, "the pool is as it was")
	assert.Equal(t, exitOK, r.stop(t))

	// A torn state file stops the start, naming it.
	require.NoError(t, os.Mkdir(filepath.Dir(stateFile), 0o755))
	require.NoError(t, os.WriteFile(stateFile, []byte(`{"version": 1, "backends": [`), 0o600))
	var stdout, stderr pooltest.SyncBuffer
	assert.Equal(t, exitUsage, run(t.Context(), []string{"-config", writeConfig(t, cfg)}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), stateFile)
	assert.Contains(t, stderr.String(), "move it away")
}

// An upgraded connection (a WebSocket, as far as the proxy can tell) stays
// open and echoing across 20 reloads, with load running and backends
// coming and going in the file: zero errors anywhere.
func TestWebSocketAndLoadAcrossTwentyReloads(t *testing.T) {
	echo := upgradeEchoBackend(t)
	spare := namedBackend(t, "spare")
	cfg := testConfig(t, echo.URL)
	r := start(t, cfg)
	client := newClient(t)

	conn, br := dialUpgraded(t, r)

	load := startSteadyLoad(r.proxyURL+"/load", 4) // stopped after the reloads
	var echoes int
	for i := range 20 {
		if i%2 == 0 {
			cfg["backends"] = []string{echo.URL, spare.URL}
		} else {
			cfg["backends"] = []string{echo.URL}
		}
		cfg["request_timeout"] = fmt.Sprintf("%ds", 10+i)
		rewrite(t, r, cfg)
		code, body := reload(t, client, r)
		require.Equal(t, http.StatusOK, code, "%v", body)
		msg := fmt.Sprintf("ping %d\n", i)
		_, err := io.WriteString(conn, msg)
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		line, err := br.ReadString('\n')
		require.NoError(t, err, "the upgraded connection broke at reload %d", i)
		assert.Equal(t, msg, line)
		echoes++
	}
	load.stop()
	t.Logf("20 reloads: %d echoes, %d requests under load, %d errors %s", echoes, load.requests.Load(), load.failures.Load(), load.errs.String())
	assert.Zero(t, load.failures.Load(), "the load saw no error: %s", load.errs.String())
	assert.Positive(t, load.requests.Load())
	assert.Equal(t, 21, poolStatus(t, client, r).Config.Generation)
	conn.Close() // or the shutdown would give it shutdown_timeout
	assert.Equal(t, exitOK, r.stop(t))
}

// A field a reload cannot change is left as it runs, named in
// restart_needed, and named again by every later reload until a restart:
// the config in force is what runs, so the admin token in force stays the
// old one, and the connection guard keeps the server's max_header_bytes.
func TestReloadLeavesWhatTakesARestart(t *testing.T) {
	a := namedBackend(t, "a")
	cfg := testConfig(t, a.URL)
	cfg["admin_token"] = "old-token"
	r := start(t, cfg)
	client := newClient(t)
	call := func(method, path, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, r.adminURL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return res.StatusCode, body
	}

	cfg["admin_token"] = "new-token"
	cfg["max_header_bytes"] = 4096
	cfg["shutdown_delay"] = "3s"
	cfg["request_timeout"] = "7s"
	rewrite(t, r, cfg)
	want := []any{"admin_token", "max_header_bytes", "shutdown_delay"}
	for range 2 {
		code, body := call(http.MethodPost, "/reload", "old-token")
		require.Equal(t, http.StatusOK, code, "%v", body)
		assert.Equal(t, want, body["restart_needed"])
	}
	code, _ := call(http.MethodGet, "/status", "old-token")
	assert.Equal(t, http.StatusOK, code, "the token in force is the one the admin server runs with")
	code, _ = call(http.MethodGet, "/status", "new-token")
	assert.Equal(t, http.StatusUnauthorized, code)

	// A head of 6 KiB: over the file's new max_header_bytes, within the
	// server's, so served (the guard has not taken the new limit either).
	req, err := http.NewRequest(http.MethodGet, r.proxyURL+"/", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 6<<10))
	res, err := client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
}

// An admin change the pool refuses changes nothing, the state file
// included: a restart brings back the set that ran.
func TestRefusedAdminChangeLeavesTheStateFile(t *testing.T) {
	a := namedBackend(t, "a")
	cfg := testConfig(t, a.URL)
	stateFile := filepath.Join(t.TempDir(), "switchyard.state.json")
	cfg["state_file"] = stateFile
	r := start(t, cfg)
	client := newClient(t)
	code, body := adminCall(t, client, r, http.MethodPost, fmt.Sprintf(`{"url": %q, "weight": 2}`, namedBackend(t, "b").URL))
	require.Equal(t, http.StatusCreated, code, body)
	before, err := os.ReadFile(stateFile)
	require.NoError(t, err)

	code, body = adminCall(t, client, r, http.MethodPatch, fmt.Sprintf(`{"url": %q, "weight": 5000}`, a.URL))
	assert.Equal(t, http.StatusBadRequest, code, body)
	code, body = adminCall(t, client, r, http.MethodPost, fmt.Sprintf(`{"url": %q, "weight": -3}`, namedBackend(t, "c").URL))
	assert.Equal(t, http.StatusBadRequest, code, body)
	after, err := os.ReadFile(stateFile)
	require.NoError(t, err)
	assert.JSONEq(t, string(before), string(after))
	assert.Equal(t, exitOK, r.stop(t))

	cfg["port"], cfg["admin_addr"] = pooltest.FreePort(t), fmt.Sprintf("127.0.0.1:%d", pooltest.FreePort(t))
	r = start(t, cfg)
	assert.Len(t, poolStatus(t, client, r).Backends, 2)
	assert.Equal(t, exitOK, r.stop(t))
}

package admin_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// assertProfile checks that body is a profile in pprof's format: gzipped
// protocol buffers.
func assertProfile(t *testing.T, body []byte, what string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if assert.NoError(t, err, what) {
		b, err := io.ReadAll(zr)
		assert.NoError(t, err, what)
		assert.NotEmpty(t, b, what)
	}
}

// /debug/pprof/ is on by default, behind the token like every other route,
// and answers what go tool pprof expects.
func TestPprofBehindTheToken(t *testing.T) {
	const token = "s3cret"
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{Token: token})
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	get := func(path string, h http.Header) reply {
		t.Helper()
		r, err := send(base, http.MethodGet, path, "", h)
		require.NoError(t, err)
		return r
	}

	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1",
		"/debug/pprof/symbol", "/debug/pprof/trace?seconds=0.1", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2"} {
		r := get(path, nil)
		assert.Equal(t, http.StatusUnauthorized, r.code, path)
		assert.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"), path)
	}

	r := get("/debug/pprof/", bearer)
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	for _, name := range []string{"allocs", "block", "cmdline", "goroutine", "heap", "mutex", "profile", "symbol", "threadcreate", "trace"} {
		assert.Contains(t, string(r.body), "href='"+name+"?debug=1'", name)
	}
	// The index has an inline style element and nothing else to allow.
	assert.Equal(t, "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		r.header.Get("Content-Security-Policy"))

	r = get("/debug/pprof/goroutine?debug=1", bearer)
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), "goroutine profile:")
	r = get("/debug/pprof/heap", bearer)
	require.Equal(t, http.StatusOK, r.code)
	assertProfile(t, r.body, "heap")
	r = get("/debug/pprof/allocs?seconds=1", bearer) // a delta profile
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assertProfile(t, r.body, "allocs delta")
	r = get("/debug/pprof/cmdline", bearer)
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), "admin.test")
	r = get("/debug/pprof/profile?seconds=1", bearer)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assertProfile(t, r.body, "CPU profile")
	r = get("/debug/pprof/trace?seconds=0.1", bearer)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assert.True(t, strings.HasPrefix(string(r.body), "go 1."), "an execution trace")
	r = get("/debug/pprof/symbol", bearer)
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), "num_symbols: 1")

	// go tool pprof looks symbols up with a POST of application/octet-stream:
	// the JSON rule is the API's, not the profiler's.
	r = rawSend(t, base, http.MethodPost, "/debug/pprof/symbol", "application/octet-stream", strings.NewReader("0x1"),
		bearer)
	assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assert.Contains(t, string(r.body), "num_symbols: 1")

	// The API's own errors are JSON.
	r = get("/debug/pprof/nope", bearer)
	assert.Equal(t, http.StatusNotFound, r.code)
	assert.Contains(t, errorOf(t, r), `no profile "nope"`)
	r, err := send(base, http.MethodDelete, "/debug/pprof/heap", "", bearer)
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, r.code)
	assert.Equal(t, "GET, HEAD", r.header.Get("Allow"))
	r = get("/debug/pprof", bearer)
	assert.Equal(t, http.StatusNotFound, r.code, "only under the slash, where the index's relative links work")
}

func TestPprofCanBeTurnedOff(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{DisablePprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile", "/debug/pprof/cmdline"} {
		r := call(t, base, http.MethodGet, path, "")
		assert.Equal(t, http.StatusNotFound, r.code, path)
		assert.Equal(t, "profiling is disabled", errorOf(t, r), path)
	}
}

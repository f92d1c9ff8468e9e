package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// A change that a browser sends from another origin is refused before it
// reaches the pool; the same request from curl, or from the admin's own
// page, goes through. Each case sends a PATCH that would set the weight to
// 7, and then checks the weight.
func TestCrossOriginChangesAreRefused(t *testing.T) {
	const backend = "http://a.test"
	p := pooltest.Start(t, pool.Config{}, backend)
	base := serveAdmin(t, p, admin.Config{})
	own := base // "http://127.0.0.1:port": the Origin of the admin's own page
	u, err := url.Parse(base)
	require.NoError(t, err)

	for _, tc := range []struct {
		name      string
		fetchSite string
		origin    string
		refused   bool
	}{
		{name: "curl: neither header"},
		{name: "own page", fetchSite: "same-origin", origin: own},
		{name: "own page, browser without Sec-Fetch-Site", origin: own},
		{name: "typed in the address bar", fetchSite: "none"},
		{name: "cross-site", fetchSite: "cross-site", origin: "http://evil.example", refused: true},
		{name: "cross-site without Origin", fetchSite: "cross-site", refused: true},
		{name: "same-site (another port or subdomain)", fetchSite: "same-site", origin: "http://127.0.0.1:1", refused: true},
		{name: "an unknown Sec-Fetch-Site", fetchSite: "sideways", refused: true},
		{name: "foreign Origin, old browser", origin: "http://evil.example", refused: true},
		{name: "Origin null (sandboxed frame, file:)", origin: "null", refused: true},
		{name: "Origin of another port", origin: "http://" + u.Hostname() + ":1", refused: true},
		{name: "Origin that is not a URL", origin: "::", refused: true},
		// The one case where the rule trusts the browser over Origin: a
		// reverse proxy in front that rewrites Host (nginx's default) makes
		// the page's own requests look like this, and no page can make a
		// browser send same-origin for a cross-origin request.
		{name: "same-origin behind a proxy that rewrites Host", fetchSite: "same-origin", origin: "https://admin.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Update(context.Background(), backend, ptr(1), nil)
			require.NoError(t, err)
			h := http.Header{}
			if tc.fetchSite != "" {
				h.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			r, err := send(base, http.MethodPatch, "/backends", `{"url": "`+backend+`", "weight": 7}`, h)
			require.NoError(t, err)
			if tc.refused {
				assert.Equal(t, http.StatusForbidden, r.code)
				assert.Contains(t, errorOf(t, r), "cross-origin PATCH refused")
				assert.Equal(t, 1, pooltest.StatusOf(t, p, backend).Weight, "a refused change is not made")
			} else {
				assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
				assert.Equal(t, 7, pooltest.StatusOf(t, p, backend).Weight)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Every method that changes something is covered, on every route, and the
// methods that read are never refused: a cross-site GET cannot read the
// answer (CORS), and reads change nothing.
func TestCrossOriginRuleCoversEveryChangingMethod(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a.test")
	base := serveAdmin(t, p, admin.Config{Reloader: &fakeReloader{}})
	before := urlsOf(t, p)
	cross := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"http://evil.example"}}
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/backends", `{"url": "http://b.test"}`},
		{"PATCH", "/backends", `{"url": "http://a.test", "admin_state": "maintenance"}`},
		{"DELETE", "/backends", `{"url": "http://a.test"}`},
		{"PUT", "/backends", `{"url": "http://b.test"}`},
		{"POST", "/reload", ""},
		{"POST", "/debug/pprof/symbol", ""},
		{"POST", "/", ""},
		{"POST", "/nope", ""},
	} {
		r, err := send(base, rt.method, rt.path, rt.body, cross)
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, r.code, "%s %s", rt.method, rt.path)
		assert.Contains(t, errorOf(t, r), "cross-origin", "%s %s", rt.method, rt.path)
	}
	assert.Equal(t, before, urlsOf(t, p))

	for _, rt := range []struct{ method, path string }{
		{"GET", "/status"}, {"HEAD", "/status"}, {"GET", "/healthz"}, {"GET", "/"}, {"OPTIONS", "/healthz"},
	} {
		r, err := send(base, rt.method, rt.path, "", cross)
		require.NoError(t, err)
		assert.NotEqual(t, http.StatusForbidden, r.code, "%s %s", rt.method, rt.path)
	}
}

// fakeReloader answers every reload with nothing changed.
type fakeReloader struct{ calls int }

func (f *fakeReloader) Reload(context.Context) (admin.ReloadResult, error) {
	f.calls++
	return admin.ReloadResult{Generation: 2}, nil
}

// rawSend sends exactly the given Content-Type (none when empty) and body,
// which send does not: it declares every body as JSON.
func rawSend(t *testing.T, base, method, path, contentType string, body io.Reader, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	r, err := do(req)
	require.NoError(t, err)
	return r
}

// A body must be declared as JSON: the three types an HTML form can send
// without a preflight are refused, and so is a body with no type at all.
func TestBodiesMustBeJSON(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a.test")
	reloader := &fakeReloader{}
	base := serveAdmin(t, p, admin.Config{Reloader: reloader})
	before := urlsOf(t, p)

	add := `{"url": "http://b.test"}`
	for _, tc := range []struct {
		method, contentType string
		msg, acceptHeader   string
	}{
		{"POST", "", "got none", "Accept-Post"},
		{"POST", "text/plain", `got "text/plain"`, "Accept-Post"},
		{"POST", "text/plain;charset=UTF-8", `got "text/plain;charset=UTF-8"`, "Accept-Post"},
		{"POST", "application/x-www-form-urlencoded", "got", "Accept-Post"},
		{"POST", "multipart/form-data; boundary=x", "got", "Accept-Post"},
		{"POST", "application/json-seq", "got", "Accept-Post"},
		{"POST", "application/json; charset", "got", "Accept-Post"}, // not a media type
		{"PATCH", "text/plain", "got", "Accept-Patch"},
		{"DELETE", "application/xml", "got", ""},
	} {
		t.Run(tc.method+" "+tc.contentType, func(t *testing.T) {
			r := rawSend(t, base, tc.method, "/backends", tc.contentType, strings.NewReader(add), nil)
			assert.Equal(t, http.StatusUnsupportedMediaType, r.code)
			msg := errorOf(t, r)
			assert.Contains(t, msg, "Content-Type: application/json")
			assert.Contains(t, msg, tc.msg)
			if tc.acceptHeader != "" {
				assert.Equal(t, "application/json", r.header.Get(tc.acceptHeader))
			}
		})
	}
	assert.Equal(t, before, urlsOf(t, p), "nothing was applied")

	// A chunked body of unknown length is a body all the same.
	r := rawSend(t, base, http.MethodPost, "/backends", "", io.MultiReader(strings.NewReader(add)), nil)
	assert.Equal(t, http.StatusUnsupportedMediaType, r.code)

	// Without the token, the token is asked for first: nothing is said
	// about the request to a client that may not send one.
	tokenBase := serveAdmin(t, p, admin.Config{Token: "t"})
	r = rawSend(t, tokenBase, http.MethodPost, "/backends", "text/plain", strings.NewReader(add), nil)
	assert.Equal(t, http.StatusUnauthorized, r.code)

	// JSON in any spelling, with parameters, is accepted.
	for i, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
		u := "http://ok" + string(rune('a'+i)) + ".test"
		r := rawSend(t, base, http.MethodPost, "/backends", ct, strings.NewReader(`{"url": "`+u+`"}`), nil)
		assert.Equal(t, http.StatusCreated, r.code, "%s: %s", ct, r.body)
	}

	// No body, no Content-Type needed: POST /reload as the README sends it,
	// and as curl -X POST does.
	r = rawSend(t, base, http.MethodPost, "/reload", "", nil, nil)
	assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
	assert.Equal(t, 1, reloader.calls)
	// An empty POST /backends is still a 400 that says what to send.
	r = rawSend(t, base, http.MethodPost, "/backends", "", nil, nil)
	assert.Equal(t, http.StatusBadRequest, r.code)
	assert.Contains(t, errorOf(t, r), "empty body")
}

// Without a token, only requests addressed to a loopback name are answered:
// a page on a hostile name that resolves to 127.0.0.1 (DNS rebinding) is
// same-origin with the admin API in the browser's eyes, so only the Host
// header shows it. With a token, any name will do: the token is the guard.
func TestForeignHostNeedsAToken(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a.test")
	open := serveAdmin(t, p, admin.Config{})
	guarded := serveAdmin(t, p, admin.Config{Token: "t"})
	get := func(base, host string, h http.Header) reply {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/status", nil)
		require.NoError(t, err)
		req.Host = host
		for k, v := range h {
			req.Header[k] = v
		}
		r, err := do(req)
		require.NoError(t, err)
		return r
	}
	for _, host := range []string{"127.0.0.1:8081", "127.0.0.1", "127.3.4.5:1", "localhost:8081", "LOCALHOST", "localhost.",
		"admin.localhost:8081", "[::1]:8081", "[::1]", "[::ffff:127.0.0.1]:80"} {
		assert.Equal(t, http.StatusOK, get(open, host, nil).code, host)
	}
	for _, host := range []string{"evil.example:8081", "evil.example", "10.0.0.5:8081", "[::2]:8081", "localhost.evil.example",
		"127.0.0.1.nip.io:8081", "0.0.0.0:8081"} {
		r := get(open, host, nil)
		assert.Equal(t, http.StatusForbidden, r.code, host)
		assert.Contains(t, errorOf(t, r), "without an admin token", host)
		// The page itself is refused too: it would only be a broken page.
	}
	bearer := http.Header{"Authorization": {"Bearer t"}}
	assert.Equal(t, http.StatusOK, get(guarded, "evil.example:8081", bearer).code)
	assert.Equal(t, http.StatusUnauthorized, get(guarded, "evil.example:8081", nil).code)
}

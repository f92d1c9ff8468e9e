package admin_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// pageFiles are the status page's routes and the Content-Type of each.
var pageFiles = map[string]string{
	"/":               "text/html; charset=utf-8",
	"/ui":             "text/html; charset=utf-8",
	"/ui/app.js":      "text/javascript; charset=utf-8",
	"/ui/style.css":   "text/css; charset=utf-8",
	"/ui/favicon.svg": "image/svg+xml",
}

// wantCSP is the page's policy, written out here so that a change to it is
// a change to this test too.
const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'"

func TestPageIsServedAtRootAndAtUI(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{})
	root := call(t, base, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, root.code)
	ui := call(t, base, http.MethodGet, "/ui", "")
	require.Equal(t, http.StatusOK, ui.code)
	assert.Equal(t, root.body, ui.body, "one page")
	assert.Contains(t, string(root.body), "<title>switchyard</title>")

	for path, ct := range pageFiles {
		r := call(t, base, http.MethodGet, path, "")
		assert.Equal(t, http.StatusOK, r.code, path)
		assert.Equal(t, ct, r.header.Get("Content-Type"), path)
		assert.Equal(t, "no-cache", r.header.Get("Cache-Control"), path)
		assert.NotEmpty(t, r.body, path)

		head := call(t, base, http.MethodHead, path, "")
		assert.Equal(t, http.StatusOK, head.code, path)
		assert.Equal(t, strconv.Itoa(len(r.body)), head.header.Get("Content-Length"), path)
		assert.Empty(t, head.body, path)

		r = call(t, base, http.MethodDelete, path, "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.code, path)
		assert.Equal(t, "GET, HEAD", r.header.Get("Allow"), path)
	}
}

// Every answer carries the security headers, the API's JSON as much as the
// page: a JSON error opened as a document can then run nothing.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{})
	for _, rt := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/ui"}, {"GET", "/ui/app.js"}, {"GET", "/ui/style.css"}, {"GET", "/status"},
		{"GET", "/healthz"}, {"GET", "/nope"}, {"POST", "/status"},
	} {
		r := call(t, base, rt.method, rt.path, "")
		assert.Equal(t, wantCSP, r.header.Get("Content-Security-Policy"), "%s %s", rt.method, rt.path)
		assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), "%s %s", rt.method, rt.path)
		assert.Equal(t, "no-referrer", r.header.Get("Referrer-Policy"), "%s %s", rt.method, rt.path)
	}
}

var (
	attrRef = regexp.MustCompile(`\s(?:src|href)="([^"]*)"`)
	tagOpen = regexp.MustCompile(`<script\b[^>]*>`)
)

// The page holds nothing the CSP would refuse, or that it would have to
// relax for: no inline script, style or event handler, nothing from another
// host, and every file it names is served.
func TestPageHasNothingInlineAndNothingFromElsewhere(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}), admin.Config{})
	html := string(call(t, base, http.MethodGet, "/", "").body)

	scripts := tagOpen.FindAllString(html, -1)
	require.Len(t, scripts, 1)
	assert.Contains(t, scripts[0], `src="ui/app.js"`)
	assert.Contains(t, html, `<script src="ui/app.js" defer></script>`, "the script element is empty")
	assert.NotContains(t, html, "<style")
	assert.NotRegexp(t, `\sstyle=`, html)
	assert.NotRegexp(t, `\son[a-z]+=`, html, "no inline event handlers")
	assert.NotContains(t, html, "javascript:")

	refs := attrRef.FindAllStringSubmatch(html, -1)
	require.NotEmpty(t, refs)
	for _, m := range refs {
		ref := m[1]
		u, err := url.Parse(ref)
		require.NoError(t, err)
		assert.False(t, u.IsAbs() || u.Host != "" || strings.HasPrefix(ref, "/"),
			"%q: relative, so that the page works under a path prefix, and from nowhere else", ref)
		// Resolved from both places the page is served at.
		for _, from := range []string{"/", "/ui"} {
			abs := (&url.URL{Path: from}).ResolveReference(u).Path
			r := call(t, base, http.MethodGet, abs, "")
			assert.Equal(t, http.StatusOK, r.code, "%s from %s: %s", ref, from, abs)
		}
	}

	js := string(call(t, base, http.MethodGet, "/ui/app.js", "").body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", "localStorage"} {
		assert.NotContains(t, js, sink)
	}
	// The script fetches the API by relative URLs too.
	assert.Contains(t, js, `call('GET', 'status')`)
	css := string(call(t, base, http.MethodGet, "/ui/style.css", "").body)
	assert.NotContains(t, css, "@import")
	assert.NotContains(t, css, "url(")
}

// With a token, the page and its files load without it, so that the page
// can ask for it; everything else, unknown paths under /ui/ included, asks
// for the token first.
func TestPageNeedsNoTokenButTheDataDoes(t *testing.T) {
	base := serveAdmin(t, pooltest.Start(t, pool.Config{}, "http://a.test"), admin.Config{Token: "s3cret"})
	for path := range pageFiles {
		r := call(t, base, http.MethodGet, path, "")
		assert.Equal(t, http.StatusOK, r.code, path)
		assert.NotContains(t, string(r.body), "http://a.test", "%s holds no data", path)
	}
	for _, rt := range []struct{ method, path string }{
		{"GET", "/status"}, {"GET", "/ui/"}, {"GET", "/ui/other.js"}, {"GET", "/ui/index.html"},
		{"GET", "/debug/pprof/"}, {"POST", "/"}, {"GET", "/metrics"},
	} {
		r := call(t, base, rt.method, rt.path, "")
		assert.Equal(t, http.StatusUnauthorized, r.code, "%s %s", rt.method, rt.path)
		assert.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"))
	}
}

package admin

import (
	"embed"
	"net/http"
	"path"
	"strconv"
)

// The status page: one HTML file, a script and a style sheet, embedded in
// the binary so that the page is always the one that matches the API it
// talks to. No build step, nothing from a CDN: the page must work on a
// machine with no way out, which is where a proxy's admin port often is.
//
//go:embed ui/index.html ui/app.js ui/style.css ui/favicon.svg
var uiFiles embed.FS

// pageCSP is the page's Content-Security-Policy: its own script and style
// sheet, fetch() to its own origin, nothing inline, no eval, nothing from
// anywhere else, and no framing (clickjacking the action buttons).
// require-trusted-types-for makes the browser refuse any string written to
// an HTML sink such as innerHTML: the page builds its DOM from nodes and
// text only, so a backend's URL or error text can never become markup.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'"

// pprofCSP is for net/http/pprof's index page, which carries an inline
// style element and nothing else; it allows that and no more.
const pprofCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
}

// pageRoutes are the paths served without a token: the page, at "/" and at
// "/ui", and its static files. They are public on purpose: they are the same
// bytes as in the source repository and carry no data; everything the page
// shows it fetches from /status, which asks for the token. Without this, a
// browser could never load the page that asks for the token: browsers do not
// prompt for a Bearer token as they do for Basic. The page refers to its
// files by relative URLs, so that it also works behind a proxy that mounts
// the admin API under a path prefix; for that, "/ui/" is not served (its
// relative URLs would resolve under /ui/ui/).
var pageRoutes = loadPage()

func loadPage() map[string]asset {
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
		".svg":  "image/svg+xml",
	}
	routes := map[string]asset{}
	for _, name := range []string{"index.html", "app.js", "style.css", "favicon.svg"} {
		b, err := uiFiles.ReadFile("ui/" + name)
		if err != nil {
			// The go:embed line above names these files: a build without
			// them does not compile, so this is a programmer's error.
			panic("admin: embedded page file missing: " + err.Error())
		}
		routes["/ui/"+name] = asset{body: b, contentType: types[path.Ext(name)]}
	}
	routes["/"] = routes["/ui/index.html"]
	routes["/ui"] = routes["/ui/index.html"]
	delete(routes, "/ui/index.html")
	return routes
}

// pageAsset returns the file that r asks for, if r is a GET or HEAD of one
// of the page's routes.
func pageAsset(r *http.Request) (asset, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return asset{}, false
	}
	a, ok := pageRoutes[r.URL.Path]
	return a, ok
}

func serveAsset(w http.ResponseWriter, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	// Revalidated every time, so that an upgraded proxy serves its own
	// page at once; the files are a few kilobytes, read once per visit.
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// An error here means the client has gone; there is no one to tell.
	_, _ = w.Write(a.body)
}

// setSecurityHeaders sets, on every answer, what tells a browser to treat it
// as nothing but what it says it is: no sniffing a JSON error into HTML, no
// Referer carrying the admin address elsewhere, the CSP.
func setSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == pprofPrefix {
		h.Set("Content-Security-Policy", pprofCSP)
	} else {
		// The JSON answers get the page's policy too: a JSON body opened
		// as a document can then run nothing.
		h.Set("Content-Security-Policy", pageCSP)
	}
}

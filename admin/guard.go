package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The rules that keep a browser from being turned against the admin API.
// The API is meant for curl and scripts, and now for its own page; a page
// of any other site that the operator happens to visit must not be able to
// use it. Three holes are closed:
//
//   - cross-site requests (CSRF): a form or fetch() from another origin
//     that changes the pool. http.CrossOriginProtection refuses them.
//   - bodies that a form can send: a cross-site HTML form can POST
//     text/plain, urlencoded or multipart bodies without a preflight, never
//     application/json. Requiring application/json closes the door for
//     browsers too old to send Sec-Fetch-Site or Origin.
//   - DNS rebinding: a hostile name that resolves to 127.0.0.1 makes the
//     browser treat the admin API as that name's own origin, so neither
//     Sec-Fetch-Site nor Origin shows anything wrong. Without a token the
//     API listens on loopback only (cmd/proxy refuses anything else), so a
//     Host that is not a loopback name is such a request, or a mistake.

// crossOrigin is shared by every Handler: it holds no trusted origins and no
// bypass patterns, and is safe for concurrent use.
//
// Its rules, from net/http/csrf.go: GET, HEAD and OPTIONS always pass; any
// other method is refused when Sec-Fetch-Site is present and is neither
// "same-origin" nor "none" (so "cross-site" and "same-site" are refused);
// without Sec-Fetch-Site, it is refused when Origin is present and its host
// is not the request's Host ("null" included); with neither header (curl,
// scripts) it passes. One case differs from "refuse any foreign Origin":
// Sec-Fetch-Site "same-origin" with an Origin that does not match Host
// passes. A browser sends that pair only through a reverse proxy that
// rewrites Host (nginx does by default), where the browser's own
// Sec-Fetch-Site is the truth and a page cannot forge it; refusing would
// break the page behind such a proxy and stop no attack.
var crossOrigin = http.NewCrossOriginProtection()

// refuseCrossOrigin answers 403 and reports true if r is a state-changing
// request that a browser sent from another origin.
func refuseCrossOrigin(w http.ResponseWriter, r *http.Request) bool {
	if crossOrigin.Check(r) == nil {
		return false
	}
	// The stdlib's error text speaks of browsers being out of date; this
	// one says what was refused and why, in the API's own form.
	writeError(w, http.StatusForbidden, fmt.Sprintf(
		"cross-origin %s refused: the admin API takes changes only from its own page or from clients that are not browsers (Sec-Fetch-Site %q, Origin %q)",
		r.Method, r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")))
	return true
}

// refuseForeignHost answers 403 and reports true if r names a host that is
// not a loopback name, on a Handler without a token.
func (h *Handler) refuseForeignHost(w http.ResponseWriter, r *http.Request) bool {
	if h.tokenHash != nil || loopbackHost(r.Host) {
		return false
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf(
		"host %q refused: without an admin token the admin API answers only requests addressed to localhost or a loopback address; set a token to reach it by another name",
		r.Host))
	return true
}

// loopbackHost reports whether host (a Host header: name or address, with
// or without a port) names this machine's loopback interface. An empty Host
// (HTTP/1.0) passes: no browser sends one.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	// RFC 6761, section 6.3: localhost and the names under it are loopback,
	// and browsers resolve them so without asking DNS.
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && addr.Unmap().IsLoopback()
}

// refuseNonJSON answers 415 and reports true if r carries a body that is not
// declared as JSON. A request without a body (POST /reload) needs no
// Content-Type.
func refuseNonJSON(w http.ResponseWriter, r *http.Request) bool {
	// ContentLength is -1 for a chunked body of unknown length: a body all
	// the same.
	if r.ContentLength == 0 {
		return false
	}
	ct := r.Header.Get("Content-Type")
	// Parameters such as "; charset=utf-8" are allowed; JSON is UTF-8
	// whatever they say (RFC 8259, section 8.1).
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return false
	}
	// RFC 5789, section 2.2, and the Accept-Post header (W3C LDP): a 415
	// may say what would have been accepted.
	switch r.Method {
	case http.MethodPatch:
		w.Header().Set("Accept-Patch", "application/json")
	case http.MethodPost:
		w.Header().Set("Accept-Post", "application/json")
	}
	got := "none"
	if ct != "" {
		got = fmt.Sprintf("%q", ct)
	}
	writeError(w, http.StatusUnsupportedMediaType, "request body must be sent with Content-Type: application/json, got "+got)
	return true
}

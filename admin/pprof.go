package admin

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"
	"strings"
)

// pprofPrefix is where Go's profiler answers, the path that go tool pprof
// and every Go operator expect.
//
// Importing net/http/pprof also registers its handlers on
// http.DefaultServeMux (its init does so). Nothing in this project serves
// DefaultServeMux; a program that embeds this package and does should know.
const pprofPrefix = "/debug/pprof/"

// servePprof serves /debug/pprof/... through net/http/pprof's own handlers.
// The caller has applied the token and the cross-origin rule.
func servePprof(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, pprofPrefix)
	switch name {
	case "symbol":
		// go tool pprof POSTs the addresses it wants named.
		if allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
			pprof.Symbol(w, r)
		}
		return
	case "":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			pprof.Index(w, r)
		}
		return
	}
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	switch name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		// It runs for ?seconds= (30 by default), and answers 400 if that
		// is not shorter than the server's WriteTimeout.
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		if runtimepprof.Lookup(name) == nil {
			// pprof.Index would answer this in plain text; the API's
			// errors are JSON.
			writeError(w, http.StatusNotFound, fmt.Sprintf("no profile %q; %s lists them", name, pprofPrefix))
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

// plainHandler is the plain port's handler: the proxy, or, while
// tls.redirect_http is on, a redirect of every request to https.
func (p *program) plainHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		port := int(p.redirectPort.Load())
		if port == 0 {
			p.proxy.ServeHTTP(w, r)
			return
		}
		// The connection guard's verdicts are taken one per request, in
		// order, whoever answers, and acted on as the proxy does: a request
		// that would smuggle another is refused, and a connection the
		// guard cannot follow further is closed after this answer.
		switch framing.Next(r).Action {
		case framing.Reject:
			framing.Refuse(w)
			return
		case framing.Close:
			w.Header().Set("Connection", "close")
		}
		redirectToHTTPS(w, r, port)
	})
}

// redirectToHTTPS answers 308 Permanent Redirect to the same host, path and
// query on https and port. 308 rather than 301, so that a client sends a
// POST again as a POST, with its body.
func redirectToHTTPS(w http.ResponseWriter, r *http.Request, port int) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		// HTTP/1.0 without Host: the address the client reached.
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host, _, _ = net.SplitHostPort(a.String())
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	uri := r.URL.RequestURI()
	if r.RequestURI == "*" || !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	w.Header().Set("Location", "https://"+host+uri)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.ContentLength != 0 {
		// The body is not read: the client will send it again, to https.
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusPermanentRedirect)
	_, _ = w.Write([]byte("308 Permanent Redirect: this site is served over https\n"))
}

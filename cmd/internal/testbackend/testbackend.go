// Package testbackend is the backend that cmd/testbackend serves and that
// `proxy -demo` runs in-process: a small HTTP server that says which backend
// answered, so that a user sees the proxy's rotation with curl.
//
// Goroutines: the package starts none. Its callers run each *http.Server's
// Serve and call its Shutdown.
package testbackend

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxSleep bounds ?sleep, so that a typo cannot hold a connection for days.
const maxSleep = 5 * time.Minute

// Handler answers every request with one line naming the backend, the method
// and the path, and the header X-Backend: name; GET /health answers "ok".
// Two query parameters, on any path, make demos possible:
//
//	?sleep=2s    waits that long first (up to 5m; a client that goes away ends the wait)
//	?status=503  answers with that status (200 to 599)
//
// A bad value of either is answered with 400.
func Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		q := r.URL.Query()
		status := http.StatusOK
		if s := q.Get("status"); s != "" {
			// 1xx are interim responses in net/http, followed by a 200: they
			// cannot be what this request answers.
			n, err := strconv.Atoi(s)
			if err != nil || n < 200 || n > 599 {
				http.Error(w, fmt.Sprintf("backend %s: status must be 200 to 599, got %q", name, s), http.StatusBadRequest)
				return
			}
			status = n
		}
		if s := q.Get("sleep"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > maxSleep {
				http.Error(w, fmt.Sprintf("backend %s: sleep must be a duration from 0s to %s, got %q", name, maxSleep, s), http.StatusBadRequest)
				return
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return // the client, or the proxy for it, has gone
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		if r.URL.Path == "/health" {
			fmt.Fprintln(w, "ok")
			return
		}
		fmt.Fprintf(w, "backend %s - %s %s\n", name, r.Method, r.URL.RequestURI())
	})
}

// Server returns a server for Handler(name) with timeouts that suit a test
// backend: ?sleep may hold a response for minutes, so there is no write
// timeout. Server errors (a client's bad request, mostly) go to logger at
// Debug; nil means nowhere.
func Server(name string, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           Handler(name),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// ListenAll listens on every one of addrs, or, if one fails, on none: the
// listeners already opened are closed again.
func ListenAll(addrs []string) ([]net.Listener, error) {
	var lns []net.Listener
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

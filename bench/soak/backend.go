package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Headers and values shared by the backends and the load.
const (
	// backendHeader names the backend in every answer, so that the load can
	// tell whether a response cut short came from the backend it had just
	// killed.
	backendHeader = "X-Soak-Backend"
	// upgradeProto is what /ws switches to: an echo of every byte, which is
	// all a proxy sees of a WebSocket once the handshake is over.
	upgradeProto = "soak-echo"
	maxBodySize  = 64 << 20
)

// uploadAnswer is /upload's answer.
type uploadAnswer struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// backendHandler serves one soak backend, named name:
//
//	GET  /?size=N&seed=S         N bytes of the pattern for S, with a Content-Length (also /big)
//	POST /upload                 reads the whole body and answers its length and SHA-256
//	GET  /ws                     with Upgrade: soak-echo, 101 and then an echo of every byte
//	GET  /slow?chunks=C&size=N&every=D&seed=S   C chunks of N bytes, one each D, flushed (chunked)
func backendHandler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		seed, n, ok := sizeAndSeed(w, r, 256)
		if !ok {
			return
		}
		w.Header().Set(backendHeader, name)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, body(seed, n)) // an error is the client gone: nothing to tell it
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			return // the proxy gave up on the request: it will not read an answer
		}
		w.Header().Set(backendHeader, name)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(uploadAnswer{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), upgradeProto) {
			http.Error(w, "want Upgrade: "+upgradeProto, http.StatusBadRequest)
			return
		}
		w.Header().Set(backendHeader, name)
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", upgradeProto)
		// 101 is final for net/http: Hijack flushes it before handing over
		// the connection.
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, brw.Reader) // until the client (or the proxy) closes
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		seed, size, ok := sizeAndSeed(w, r, 16<<10)
		if !ok {
			return
		}
		q := r.URL.Query()
		chunks, err1 := strconv.Atoi(q.Get("chunks"))
		every, err2 := time.ParseDuration(q.Get("every"))
		if err1 != nil || err2 != nil || chunks < 1 || int64(chunks)*size > maxBodySize || every < 0 {
			http.Error(w, "bad chunks or every", http.StatusBadRequest)
			return
		}
		w.Header().Set(backendHeader, name)
		w.Header().Set("Content-Type", "application/octet-stream")
		rc := http.NewResponseController(w)
		src := &pattern{seed: seed}
		t := time.NewTimer(every)
		defer t.Stop()
		for i := range chunks {
			if i > 0 {
				t.Reset(every)
				select {
				case <-t.C:
				case <-r.Context().Done():
					return
				}
			}
			if _, err := io.CopyN(w, src, size); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	return mux
}

// sizeAndSeed reads ?size= (default def) and ?seed= (default 0); on a bad
// value it answers 400 and returns ok false.
func sizeAndSeed(w http.ResponseWriter, r *http.Request, def int64) (seed uint64, n int64, ok bool) {
	q := r.URL.Query()
	n = def
	var err error
	if s := q.Get("size"); s != "" {
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n < 0 || n > maxBodySize {
			http.Error(w, "bad size", http.StatusBadRequest)
			return 0, 0, false
		}
	}
	if s := q.Get("seed"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			http.Error(w, "bad seed", http.StatusBadRequest)
			return 0, 0, false
		}
	}
	return seed, n, true
}

// serveBackends serves a soak backend on each address until ctx is done.
// The load runs one process per address, so that killing one kills one
// backend; several addresses in one process are for trying it by hand.
func serveBackends(ctx context.Context, addrs []string) error {
	// Bind every address before serving any, so that a busy port fails the
	// start cleanly.
	lns := make([]net.Listener, 0, len(addrs))
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("soak: backend: %w", err)
		}
		lns = append(lns, ln)
	}
	g, ctx := errgroup.WithContext(ctx)
	for i, ln := range lns {
		srv := &http.Server{Handler: backendHandler(addrs[i]), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { // waited for by g.Wait
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("soak: backend %s: %w", addrs[i], err)
			}
			return nil
		})
		g.Go(func() error { // waited for by g.Wait
			<-ctx.Done()
			// Hijacked /ws connections are not closed by Close; they end
			// with the process, which exits once Wait returns.
			return srv.Close()
		})
	}
	return g.Wait()
}

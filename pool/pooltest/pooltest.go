// Package pooltest holds what the tests of this module share: a pool run for
// the length of a test, and the small helpers that tests driving real
// servers keep needing (a free port, a buffer that concurrent writers may
// share with the test, a GET that reads the whole answer).
//
// Goroutines: Start runs the pool's owner loop on a goroutine of its own,
// which the test's Cleanup stops and waits for. ServeConns (and RawBackend
// and NewRecorder, built on it) runs an accept loop and a goroutine per
// connection, which the test's Cleanup stops by closing the listener and the
// connections, and waits for.
package pooltest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/switchyard-proxy/switchyard/pool"
)

// Start builds a pool of urls with cfg and runs its owner loop until the
// test ends: t.Cleanup stops the loop and waits for its goroutine. Inside a
// testing/synctest bubble, call it from the bubble, so that the loop belongs
// to the bubble.
func Start(t testing.TB, cfg pool.Config, urls ...string) *pool.Pool {
	t.Helper()
	return StartSpecs(t, cfg, pool.URLs(urls...)...)
}

// StartSpecs is Start for backends with weights.
func StartSpecs(t testing.TB, cfg pool.Config, specs ...pool.Spec) *pool.Pool {
	t.Helper()
	p, err := pool.New(cfg, specs...)
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // waited for in Cleanup
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pooltest: Run: %v", err)
		}
	})
	return p
}

// BackendOf returns the *Backend record of the member at url, found in the
// list the health checks use.
func BackendOf(t testing.TB, p *pool.Pool, url string) *pool.Backend {
	t.Helper()
	bs, err := p.Backends(context.Background())
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	for _, b := range bs {
		if b.String() == url {
			return b
		}
	}
	t.Fatalf("pooltest: no member %s to check", url)
	return nil
}

// SyncBuffer is a bytes.Buffer that a server's goroutines may write (as its
// log, or a program's stderr) while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreePort returns a TCP port that nothing listens on, on any interface, for
// the moment: the proxy listens on every interface, so a port that is free
// only on 127.0.0.1 would not do.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	return port
}

// Get sends a GET with c and returns the status, the whole body and the
// headers. A failed request or read fails the test.
func Get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("pooltest: GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("pooltest: reading %s: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// StuckWriter is a writer that blocks every Write until Release is called,
// like a disk or a terminal that has stopped answering. What is written
// after that is kept and returned by String.
type StuckWriter struct {
	release chan struct{}
	once    sync.Once
	buf     SyncBuffer
}

// NewStuckWriter returns a writer that is stuck until Release.
func NewStuckWriter() *StuckWriter { return &StuckWriter{release: make(chan struct{})} }

func (w *StuckWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.buf.Write(p)
}

// Release lets every waiting and future Write through.
func (w *StuckWriter) Release() { w.once.Do(func() { close(w.release) }) }

// String returns what has been written.
func (w *StuckWriter) String() string { return w.buf.String() }

// RawBackend is a backend for tests of misbehaviour: on each connection it
// reads one request head with the standard library and hands the connection
// to serve, which writes whatever it likes (garbage, a reset, half a
// response); the connection is closed when serve returns. It returns the
// backend's URL. The test's Cleanup closes the listener and every connection
// still open, so its wait for the goroutines is bounded whatever serve does.
func RawBackend(t testing.TB, serve func(c net.Conn, req *http.Request)) string {
	t.Helper()
	return "http://" + ServeConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		serve(c, req)
	})
}

// ServeConns listens on 127.0.0.1 and runs handle on a goroutine for each
// connection, closing the connection when handle returns; it returns the
// listener's address (host:port), for the caller to make the URL of its
// scheme. The test's Cleanup closes the listener and every connection still
// open, then waits for the goroutines, so its wait is bounded whatever
// handle does. handle must not use the connection after it returns.
func ServeConns(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() { // the cleanup's wg.Wait waits for it, as for each connection's goroutine; it waits for none of them
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln.Addr().String()
}

// DialUpgrade opens a connection to addr (host:port) and upgrades it to
// protocol, as a WebSocket client would: it sends GET /ws with Connection:
// Upgrade and Upgrade: protocol, and fails the test unless the answer is
// 101. It returns the connection and the reader holding what came after
// the 101's head, to read the upgraded stream from. The test's Cleanup
// closes the connection; the test may close it before.
func DialUpgrade(t testing.TB, addr, protocol string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "+protocol+"\r\n\r\n"); err != nil {
		t.Fatalf("pooltest: sending the upgrade: %v", err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("pooltest: reading the upgrade's answer: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("pooltest: the upgrade got %d, want %d", res.StatusCode, http.StatusSwitchingProtocols)
	}
	return conn, br
}

// StatusOf returns the pool's view of the backend at url, failing the test
// if the pool does not list it.
func StatusOf(t testing.TB, p *pool.Pool, url string) pool.BackendStatus {
	t.Helper()
	st, err := p.Status(context.Background())
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	for _, b := range st.Backends {
		if b.URL == url {
			return b
		}
	}
	t.Fatalf("pooltest: no backend %s in the pool", url)
	return pool.BackendStatus{}
}

// A Recorder is a backend that records every request it parses from every
// connection, in order, and answers each with 200 "ok": a witness for tests
// of request smuggling, which must show that nothing the proxy did not
// mean to send reaches a backend.
type Recorder struct {
	URL string
	mu  sync.Mutex
	got []recorded // in arrival order
}

type recorded struct{ line, tag string }

// TagHeader is the header a test may set on the requests it has the proxy
// send, to tell apart the requests of its rounds whatever their timing
// (RequestsTagged).
const TagHeader = "X-Test-Tag"

// NewRecorder starts a recording backend, stopped when the test ends.
// Requests with the User-Agent healthUserAgent (health checks) are answered
// and not recorded; an empty healthUserAgent records everything.
func NewRecorder(t testing.TB, healthUserAgent string) *Recorder {
	t.Helper()
	r := &Recorder{}
	r.URL = "http://" + ServeConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if healthUserAgent == "" || req.Header.Get("User-Agent") != healthUserAgent {
				r.mu.Lock()
				r.got = append(r.got, recorded{req.Method + " " + req.RequestURI, req.Header.Get(TagHeader)})
				r.mu.Unlock()
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return r
}

// Requests returns what the backend has parsed so far, as "METHOD URI".
func (r *Recorder) Requests() []string { return r.RequestsTagged("*") }

// RequestsTagged returns the requests whose TagHeader was tag; "*" means
// every request.
func (r *Recorder) RequestsTagged(tag string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, g := range r.got {
		if tag == "*" || g.tag == tag {
			out = append(out, g.line)
		}
	}
	return out
}

// H2CBackend serves h in HTTP/2 with prior knowledge and nothing else, as a
// gRPC server does, until the test ends. It returns the server (whose
// Close the test's Cleanup calls) and its pool URL, h2c://host:port: a
// client that tries HTTP/1.1 on it gets nowhere.
func H2CBackend(t testing.TB, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, "h2c://" + srv.Listener.Addr().String()
}

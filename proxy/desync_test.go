package proxy_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

const sentinel = "GET /end-of-input HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// FuzzNoDesync sends raw client bytes to a real proxy listener, guarded as
// the program guards it, in front of a backend that records every request
// it parses. Whatever the bytes, the backend must never parse more requests
// from them than the proxy answered on the client's side, nor any request
// that the proxy's own parse (its handler) did not produce: that is what a
// desync, a request smuggled past the proxy, would look like.
//
//	go test -run '^$' -fuzz FuzzNoDesync ./proxy
func FuzzNoDesync(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\nGET /tunnel HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	rec := pooltest.NewRecorder(f, "")
	p := pooltest.Start(f, pool.Config{}, rec.URL)
	px, err := proxy.New(p, proxy.Config{RequestTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string      // what the proxy's handler was asked, "METHOD URI"
	var round atomic.Int64 // the input being tried; its requests carry it to the backend
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.RequestURI())
			mu.Unlock()
			r.Header.Set(pooltest.TagHeader, strconv.FormatInt(round.Load(), 10))
			px.ServeHTTP(w, r)
		}),
		// Short timeouts, so that an input that leaves the server waiting
		// for the rest of a head or body ends within a fraction of a second.
		ReadHeaderTimeout: 300 * time.Millisecond,
		ErrorLog:          quietLog(),
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	ln, err := framing.NewListener(inner, framing.Config{BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	framing.ConfigureServer(srv)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }() // waited for in the cleanup
	f.Cleanup(func() {
		srv.Close()
		<-done
		px.CloseIdleConnections()
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		tag := strconv.FormatInt(round.Add(1), 10)
		mu.Lock()
		seenBefore := len(seen)
		mu.Unlock()

		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The input, then a request that closes the connection, so that the
		// exchange ends as soon as the server has read everything (a
		// half-close would not do: net/http takes it for a client gone).
		input := slices.Concat(data, []byte(sentinel)) // a copy: data is the fuzzer's
		conn.Write(input)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		raw, _ := io.ReadAll(conn) // until the proxy closes, or the deadline
		conn.Close()
		// Wait until the server has let go of the connection and the last
		// handler has returned: only then is everything these bytes caused at
		// the backend in, and nothing of them can leak into the next input.
		deadline := time.Now().Add(5 * time.Second)
		for ln.Stats().Open > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		px.Wait()

		got := rec.RequestsTagged(tag)
		mu.Lock()
		asked := slices.Clone(seen[seenBefore:])
		mu.Unlock()
		// The answers, in order: the i-th answers the i-th request the
		// handler saw (a HEAD's has no body), then at most one error of
		// net/http's own.
		answered := 0
		br := bufio.NewReader(bytes.NewReader(raw))
		for {
			req := &http.Request{Method: http.MethodGet}
			if answered < len(asked) {
				req.Method, _, _ = strings.Cut(asked[answered], " ")
			}
			res, err := http.ReadResponse(br, req)
			if err != nil {
				break
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode >= 200 { // a final answer, not an interim 1xx
				answered++
			}
		}
		if len(got) > answered {
			t.Fatalf("desync: the backend parsed %d requests %q from bytes the proxy answered %d times\n%q", len(got), got, answered, data)
		}
		for _, g := range got {
			i := slices.Index(asked, g)
			if i < 0 {
				t.Fatalf("desync: the backend parsed %q, which the proxy's own parse never produced (it saw %q)\n%q", g, asked, data)
			}
			asked = slices.Delete(asked, i, i+1)
		}
		// And what a front end that frames by Content-Length alone would
		// have seen of the same bytes: the backend must not parse a request
		// it did not, or one was smuggled past it.
		if front, clean := frontEndView(input); clean {
			for _, g := range got {
				i := slices.Index(front, g)
				if i < 0 {
					t.Fatalf("smuggled: the backend parsed %q, which a front end framing by Content-Length never saw (it saw %q)\n%q", g, front, data)
				}
				front = slices.Delete(front, i, i+1)
			}
		}
	})
}

// frontEndView is what an old front end that frames requests by
// Content-Length alone, ignoring Transfer-Encoding, makes of data: the
// requests it would forward, as "METHOD URI". clean is false when it cannot
// make sense of all of it (then it says nothing about a desync).
func frontEndView(data []byte) (reqs []string, clean bool) {
	br := bufio.NewReader(bytes.NewReader(data))
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err == io.EOF {
			return reqs, true
		}
		if err != nil {
			return reqs, false
		}
		parts := strings.Split(line, " ")
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
			return reqs, false
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return reqs, false
		}
		u, err := url.ParseRequestURI(parts[1])
		if err != nil {
			return reqs, false
		}
		reqs = append(reqs, parts[0]+" "+u.RequestURI())
		if cl := h.Values("Content-Length"); len(cl) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(cl[0]))
			if err != nil || n < 0 {
				return reqs, false
			}
			if _, err := br.Discard(n); err != nil {
				return reqs, false
			}
		}
	}
}

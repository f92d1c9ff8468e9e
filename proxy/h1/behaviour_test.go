package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// behaviour is one thing the proxy relies on its transport for. Each runs
// against this package's Transport and against an http.Transport configured
// the same way: passing on both proves they match.
type behaviour struct {
	name string
	cfg  config
	run  func(t *testing.T, tr transport)
}

func TestBehaviours(t *testing.T) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					tr := v.new(b.cfg)
					t.Cleanup(tr.CloseIdleConnections) // runs after the backends' cleanups
					b.run(t, tr)
				})
			}
		})
	}
}

var behaviours = []behaviour{
	{"GET reuses one connection", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.URL.Path) })
		for range 10 {
			res := get(t, tr, be.URL+"/x")
			assert.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, "hello /x", readAll(t, res))
		}
		assert.Equal(t, int64(1), be.opened.Load(), "10 requests in a row, 1 connection")
	}},

	{"HEAD, 204 and 304 have no body and keep the connection", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/204":
				w.WriteHeader(http.StatusNoContent)
			case "/304":
				w.WriteHeader(http.StatusNotModified)
			default:
				w.Header().Set("Content-Length", "1234")
			}
		})
		req, err := http.NewRequest(http.MethodHead, be.URL, nil)
		require.NoError(t, err)
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, int64(1234), res.ContentLength)
		assert.Equal(t, "", readAll(t, res))
		for _, p := range []string{"/204", "/304", "/204"} {
			res := get(t, tr, be.URL+p)
			assert.Equal(t, p[1:], fmt.Sprint(res.StatusCode))
			assert.Equal(t, "", readAll(t, res))
		}
		assert.Equal(t, int64(1), be.opened.Load())
	}},

	{"request bodies of 0 and 64 bytes, sized and chunked", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %v %x", r.ContentLength, r.TransferEncoding, sha256.Sum256(b))
		})
		for _, size := range []int{0, 64} {
			data := bytes.Repeat([]byte{'z'}, size)
			sum := sha256.Sum256(data)

			req, err := http.NewRequest(http.MethodPost, be.URL, bytes.NewReader(data))
			require.NoError(t, err)
			res, err := tr.RoundTrip(req)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("%d [] %x", size, sum), readAll(t, res))

			// A reader of unknown length goes chunked.
			req, err = http.NewRequest(http.MethodPost, be.URL, io.MultiReader(bytes.NewReader(data)))
			require.NoError(t, err)
			res, err = tr.RoundTrip(req)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("-1 [chunked] %x", sum), readAll(t, res))
		}
		assert.Equal(t, int64(1), be.opened.Load())
	}},

	{"64 MiB streamed both ways at once", config{}, func(t *testing.T, tr transport) {
		const size = 64 << 20
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			// Echo the upload as it arrives: neither side can finish
			// before the other has started, so this only completes if
			// the transport writes the body while it reads the response.
			rc := http.NewResponseController(w)
			if err := rc.EnableFullDuplex(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
			rc.Flush()
			io.Copy(w, r.Body)
		})
		body := &trackedBody{Reader: newPattern(size)}
		req, err := http.NewRequest(http.MethodPut, be.URL, body)
		require.NoError(t, err)
		req.ContentLength = size
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Less(t, body.n.Load(), int64(size), "the response came while the body was still going out")
		assert.Equal(t, []string{"chunked"}, res.TransferEncoding, "a chunked response")
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, int64(size), n)
		assert.Equal(t, patternSum(size), [32]byte(h.Sum(nil)))
	}},

	{"trailers both ways", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body) // the request's trailers are there after EOF
			w.Header().Set("Trailer", "X-Resp-Sum")
			w.Write(b)
			w.Header().Set("X-Resp-Sum", "resp:"+r.Trailer.Get("X-Req-Sum"))
		})
		req, err := http.NewRequest(http.MethodPost, be.URL, io.MultiReader(strings.NewReader("abc")))
		require.NoError(t, err)
		req.Trailer = http.Header{"X-Req-Sum": {"42"}}
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, "abc", readAll(t, res))
		assert.Equal(t, "resp:42", res.Trailer.Get("X-Resp-Sum"))
	}},

	{"100-continue accepted: the body waits for the 100", config{continueTimeout: time.Minute}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, r.Body) // the server sends 100 Continue at this first read
		})
		var got100, waited atomic.Bool
		body := &orderedBody{Reader: strings.NewReader("payload"), before: &got100}
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got100Continue:  func() { got100.Store(true) },
			Wait100Continue: func() { waited.Store(true) },
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, be.URL, body)
		require.NoError(t, err)
		req.ContentLength = 7
		req.Header.Set("Expect", "100-continue")
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, "payload", readAll(t, res))
		assert.True(t, waited.Load(), "Wait100Continue reported")
		assert.True(t, body.firstReadAfter.Load(), "the body was first read after the 100 Continue")
	}},

	{"100-continue refused: the body is not sent, the connection not reused", config{continueTimeout: time.Minute}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusExpectationFailed) // without reading: no 100
			io.WriteString(w, "no")
		})
		body := &trackedBody{Reader: newPattern(1 << 20)}
		req, err := http.NewRequest(http.MethodPut, be.URL, body)
		require.NoError(t, err)
		req.ContentLength = 1 << 20
		req.Header.Set("Expect", "100-continue")
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusExpectationFailed, res.StatusCode)
		assert.True(t, res.Close, "the backend closes after refusing")
		assert.Equal(t, "no", readAll(t, res), "the response body survives the refused request body")
		assert.Equal(t, int64(0), body.reads.Load(), "the body was never read")
		assert.Eventually(t, body.closed.Load, 5*time.Second, time.Millisecond, "the body was closed")
		readAll(t, get(t, tr, be.URL))
		assert.Equal(t, int64(2), be.opened.Load(), "not reused")
	}},

	{"103 Early Hints, then 200", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "done")
		})
		var codes []int
		var links []string
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				codes = append(codes, code)
				links = append(links, h.Get("Link"))
				return nil
			},
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, "done", readAll(t, res))
		assert.Equal(t, []int{103}, codes)
		assert.Equal(t, []string{"</style.css>; rel=preload"}, links)
		assert.Empty(t, res.Header.Get("Link"), "the hint's header is not the final response's")
	}},

	{"a Got1xxResponse error aborts the request", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "done")
		})
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(int, textproto.MIMEHeader) error { return errTest },
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, errTest)
		be.waitClosed(t, 1)
		assert.Equal(t, "done", readAll(t, get(t, tr, be.URL)), "the next request is fine")
	}},

	{"101 upgrade: the body is the connection, both ways", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, upgradeEcho)
		req, err := http.NewRequest(http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
		rwc, ok := res.Body.(io.ReadWriteCloser)
		require.True(t, ok, "the body of a 101 is writable, got %T", res.Body)
		defer rwc.Close()
		br := bufio.NewReader(rwc)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "hello\n", line, "what came with the 101 headers is not lost")
		for _, msg := range []string{"ping\n", "pong\n"} {
			_, err = io.WriteString(rwc, msg)
			require.NoError(t, err)
			line, err = br.ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, "echo: "+msg, line)
		}
		rwc.Close()
		be.waitClosed(t, 1)
		readAll(t, get(t, tr, be.URL))
		assert.Equal(t, int64(2), be.opened.Load(), "an upgraded connection never goes back to the pool")
	}},

	{"Connection: close asked by the request", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Close) })
		for range 2 {
			req, err := http.NewRequest(http.MethodGet, be.URL, nil)
			require.NoError(t, err)
			req.Close = true
			res, err := tr.RoundTrip(req)
			require.NoError(t, err)
			assert.Equal(t, "true", readAll(t, res))
		}
		assert.Equal(t, int64(2), be.opened.Load())
	}},

	{"Connection: close answered by the backend", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		})
		for range 2 {
			res := get(t, tr, be.URL)
			assert.True(t, res.Close)
			assert.Equal(t, "bye", readAll(t, res))
		}
		assert.Equal(t, int64(2), be.opened.Load())
	}},

	{"HTTP/1.0 backend: reused only with keep-alive", config{}, func(t *testing.T, tr transport) {
		for _, tc := range []struct {
			header string
			conns  int64
		}{{"", 2}, {"Connection: keep-alive\r\n", 1}} {
			be := newRawBackend(t, func(c net.Conn) {
				// The socket stays open either way: not reusing it is the
				// client's decision.
				readRequests(c, func(_ *http.Request, w *bufio.Writer) bool {
					fmt.Fprintf(w, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n%s\r\nhi", tc.header)
					return true
				})
			})
			for range 2 {
				res := get(t, tr, be.URL())
				assert.Equal(t, "HTTP/1.0", res.Proto)
				assert.Equal(t, "hi", readAll(t, res))
			}
			assert.Equal(t, tc.conns, be.accepted.Load(), "with %q", tc.header)
		}
	}},

	{"a body closed before EOF closes the connection", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/big" {
				io.Copy(w, newPattern(1<<20))
			}
		})
		res := get(t, tr, be.URL+"/big")
		_, err := io.ReadFull(res.Body, make([]byte, 10))
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		_, err = res.Body.Read(make([]byte, 1))
		assert.Error(t, err, "a read after Close fails")
		be.waitClosed(t, 1)
		readAll(t, get(t, tr, be.URL))
		assert.Equal(t, int64(2), be.opened.Load())
	}},

	{"an idle connection is closed after IdleConnTimeout", config{idleTimeout: 50 * time.Millisecond}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
		readAll(t, get(t, tr, be.URL))
		be.waitClosed(t, 1) // the backend has no idle timeout of its own: the client closed it
	}},

	{"at most MaxIdleConnsPerHost idle connections", config{maxIdle: 2}, func(t *testing.T, tr transport) {
		be := newBackend(t, barrier(4))
		for _, err := range getConcurrently(t, tr, be.URL, 4) {
			assert.NoError(t, err)
		}
		be.waitClosed(t, 2)
		for range 2 {
			readAll(t, get(t, tr, be.URL))
		}
		assert.Equal(t, int64(4), be.opened.Load(), "the two kept are reused")
		assert.Equal(t, int64(2), be.closed.Load())
	}},

	{"CloseIdleConnections closes them all", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, barrier(3))
		for _, err := range getConcurrently(t, tr, be.URL, 3) {
			assert.NoError(t, err)
		}
		assert.Equal(t, int64(0), be.closed.Load())
		tr.CloseIdleConnections()
		be.waitClosed(t, 3)
	}},

	{"an idle connection the backend closed is not used", config{}, func(t *testing.T, tr transport) {
		be := newBackendWith(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s", r.Method, b)
		}, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
		for i, tc := range []struct{ method, body string }{
			{"GET", ""}, {"POST", "with a body"}, {"POST", ""}, {"DELETE", ""}, {"PUT", "again"}, {"GET", ""},
		} {
			if i > 0 {
				// The backend's keep-alive timeout closes the connection
				// between requests. http.Transport's reader goroutine
				// notices a moment after the backend has closed; give it
				// that moment (h1 checks at reuse).
				be.waitClosed(t, int64(i))
				time.Sleep(20 * time.Millisecond)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, be.URL, body)
			require.NoError(t, err)
			res, err := tr.RoundTrip(req)
			if assert.NoError(t, err, "%s %q", tc.method, tc.body) {
				assert.Equal(t, tc.method+" "+tc.body, readAll(t, res))
			}
		}
	}},

	{"a reused connection dropped as the request arrives", config{}, func(t *testing.T, tr transport) {
		// The backend answers the first request on each connection, then
		// reads the next one and hangs up without an answer: the race of
		// a keep-alive timeout with a request. Safe requests are sent
		// again on a new connection; others fail, as the backend may have
		// acted on them.
		be := newRawBackend(t, func(c net.Conn) {
			n := 0
			readRequests(c, func(r *http.Request, w *bufio.Writer) bool {
				n++
				if n > 1 {
					return false
				}
				io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
				if r.Method != http.MethodHead {
					io.WriteString(w, "ok")
				}
				return true
			})
		})
		for _, tc := range []struct {
			method, body string
			ok           bool
		}{{"GET", "", true}, {"HEAD", "", true}, {"POST", "", false}, {"POST", "body", false}} {
			readAll(t, get(t, tr, be.URL())) // a connection to reuse
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, be.URL(), body)
			require.NoError(t, err)
			res, err := tr.RoundTrip(req)
			if tc.ok {
				if assert.NoError(t, err, tc.method) {
					readAll(t, res)
				}
			} else {
				assert.Error(t, err, "%s %q", tc.method, tc.body)
			}
		}
		// A new connection dropped is not tried again.
		fresh := newRawBackend(t, func(c net.Conn) {
			readRequests(c, func(*http.Request, *bufio.Writer) bool { return false })
		})
		req, err := http.NewRequest(http.MethodGet, fresh.URL(), nil)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.Error(t, err)
		assert.Equal(t, int64(1), fresh.accepted.Load())
	}},

	{"connection refused is the dialer's *net.OpError", config{}, func(t *testing.T, tr transport) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		body := &trackedBody{Reader: strings.NewReader("x")}
		req, err := http.NewRequest(http.MethodPost, "http://"+addr, body)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assertDialError(t, err)
		assert.Equal(t, int64(0), body.n.Load(), "nothing of the body was read")
		assert.True(t, body.closed.Load())
	}},

	{"cancelled while waiting for the headers", config{}, func(t *testing.T, tr transport) {
		entered, gone := make(chan struct{}), make(chan struct{})
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done() // the client's closing the connection ends it
			close(gone)
		})
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		go func() { // ends with the test's deferred cancel at the latest
			select {
			case <-entered:
				cancel(errTest)
			case <-ctx.Done():
			}
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, errTest, "the context's cause")
		waitFor(t, gone, "the backend sees its request cancelled")
	}},

	{"cancelled while reading the body", config{}, func(t *testing.T, tr transport) {
		gone := make(chan struct{})
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write(make([]byte, 64<<10))
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			close(gone)
		})
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_, err = io.ReadFull(res.Body, make([]byte, 1024))
		require.NoError(t, err)
		cancel(errTest)
		_, err = io.Copy(io.Discard, res.Body)
		assert.ErrorIs(t, err, errTest)
		res.Body.Close()
		waitFor(t, gone, "the backend sees its request cancelled")
	}},

	{"cancelled while sending the body", config{}, func(t *testing.T, tr transport) {
		entered, gone := make(chan struct{}), make(chan struct{})
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			io.Copy(io.Discard, r.Body) // fails when the client goes
			close(gone)
		})
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		pr, pw := io.Pipe() // a body that never ends
		defer pw.Close()
		go func() { // ends with the test's deferred cancel at the latest
			select {
			case <-entered:
				cancel(errTest)
			case <-ctx.Done():
			}
		}()
		go func() { // ends when the pipe's reader is closed
			for {
				if _, err := pw.Write([]byte("more")); err != nil {
					return
				}
			}
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, be.URL, pr)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, errTest)
		waitFor(t, gone, "the backend sees the upload end")
	}},

	{"cancelled before the request", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(http.ResponseWriter, *http.Request) {})
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errTest)
		body := &trackedBody{Reader: strings.NewReader("x")}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, be.URL, body)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, errTest)
		assert.True(t, body.closed.Load())
		assert.Equal(t, int64(0), be.opened.Load())
	}},

	{"a backend speaking garbage is an error", config{}, func(t *testing.T, tr transport) {
		for _, answer := range []string{
			"HELLO WORLD\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nbroken header line\r\n\r\nok",
			"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
			"HTTP/1.1 2",
		} {
			be := newRawBackend(t, func(c net.Conn) {
				readRequests(c, func(_ *http.Request, w *bufio.Writer) bool {
					io.WriteString(w, answer)
					w.Flush()
					return false
				})
			})
			req, err := http.NewRequest(http.MethodGet, be.URL(), nil)
			require.NoError(t, err)
			_, err = tr.RoundTrip(req)
			assert.Error(t, err, "%q", answer)
		}
	}},

	{"response headers over the limit are an error", config{maxHeaderBytes: 4 << 10}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Big", strings.Repeat("a", 8<<10))
		})
		req, err := http.NewRequest(http.MethodGet, be.URL, nil)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		require.Error(t, err)
		if _, ok := tr.(*Transport); ok {
			assert.ErrorIs(t, err, ErrHeaderTooLarge)
		}
	}},

	{"an early answer while the body is still going out", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading the body
			io.WriteString(w, "too big")
		})
		body := &trackedBody{Reader: newPattern(64 << 20)}
		req, err := http.NewRequest(http.MethodPut, be.URL, body)
		require.NoError(t, err)
		req.ContentLength = 64 << 20
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
		assert.Equal(t, "too big", readAll(t, res))
		assert.Eventually(t, body.closed.Load, 5*time.Second, time.Millisecond, "the body is closed, its writer gone")
		assert.Less(t, body.n.Load(), int64(64<<20))
		readAll(t, get(t, tr, be.URL))
	}},

	{"User-Agent as http.Transport sends it", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%q", r.Header.Values("User-Agent"))
		})
		for _, tc := range []struct {
			set  []string
			want string
		}{{nil, `["Go-http-client/1.1"]`}, {[]string{""}, `[]`}, {[]string{"agent/1"}, `["agent/1"]`}} {
			req, err := http.NewRequest(http.MethodGet, be.URL, nil)
			require.NoError(t, err)
			if tc.set != nil {
				req.Header["User-Agent"] = tc.set
			}
			res, err := tr.RoundTrip(req)
			require.NoError(t, err)
			assert.Equal(t, tc.want, readAll(t, res))
		}
	}},

	{"many goroutines at once", config{}, func(t *testing.T, tr transport) {
		be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
		})
		const workers, each = 16, 25
		errs := make(chan error, workers*each)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { // waited for below
				for i := range each {
					path := fmt.Sprintf("/%d/%d", w, i)
					var body io.Reader
					if i%2 == 1 {
						body = strings.NewReader(path)
					}
					req, _ := http.NewRequest(http.MethodPost, be.URL+path, body)
					res, err := tr.RoundTrip(req)
					if err != nil {
						errs <- err
						continue
					}
					b, err := io.ReadAll(res.Body)
					res.Body.Close()
					if want := path + ":" + map[bool]string{true: path}[i%2 == 1]; err == nil && string(b) != want {
						err = fmt.Errorf("got %q, want %q", b, want)
					}
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
	}},
}

// orderedBody notes whether its first Read came after before was set.
type orderedBody struct {
	io.Reader
	before         *atomic.Bool
	firstReadAfter atomic.Bool
	read           atomic.Bool
}

func (b *orderedBody) Read(p []byte) (int, error) {
	if b.read.CompareAndSwap(false, true) {
		b.firstReadAfter.Store(b.before.Load())
	}
	return b.Reader.Read(p)
}

func (b *orderedBody) Close() error { return nil }

// upgradeEcho switches to a line echo protocol, sending a first line in the
// same write as the 101's headers.
func upgradeEcho(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		http.Error(w, "upgrade to echo only", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n")
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo: " + line)
		if brw.Flush() != nil {
			return
		}
	}
}

// barrier is a handler that answers once n requests are in at the same
// time, so that n connections are open together.
func barrier(n int) http.HandlerFunc {
	var mu sync.Mutex
	in := 0
	all := make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if in++; in == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-r.Context().Done():
		}
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		assert.Fail(t, "timed out: "+what)
	}
}

package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// resetter is a backend that accepts a connection, reads the request head and
// then resets the connection without answering.
type resetter struct {
	ln      net.Listener
	accepts atomic.Int64
	wg      sync.WaitGroup
}

func newResetter(t *testing.T) *resetter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &resetter{ln: ln}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepts.Add(1)
			http.ReadRequest(bufio.NewReader(c))
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *resetter) URL() string { return "http://" + r.ln.Addr().String() }

func TestKilledBackendIsMarkedDownAndTheRequestStillServed(t *testing.T) {
	a, b := backend(t, echo("a")), backend(t, echo("b"))
	f := newFixture(t, proxy.Config{}, a.URL, b.URL)
	code, body := f.get(t, "/") // a, with a kept-alive connection
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "a", body[:1])
	f.get(t, "/") // b

	a.kill()
	code, body = f.get(t, "/") // a's turn: refused, marked down, served by b
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "b", body[:1])
	st := f.status(t, a.URL)
	assert.Equal(t, pool.StateDown, st.State)
	assert.Contains(t, st.Reason, "connection refused")
	f.assertIdle(t)
}

func TestPostWithBodyRetriedIntactWhenConnectionRefused(t *testing.T) {
	good := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %s", r.Method, r.ContentLength, b)
	})
	dead := closedURL(t)
	f := newFixture(t, proxy.Config{}, dead, good.URL)
	payload := strings.Repeat("0123456789", 10_000)
	res, err := f.client.Post(f.front.URL, "text/plain", strings.NewReader(payload))
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, fmt.Sprintf("POST %d %s", len(payload), payload), readAll(t, res))
	assert.Equal(t, pool.StateDown, f.status(t, dead).State)

	// The same with a body of unknown length (chunked).
	// (A passing check brings the dead one back into rotation first.)
	require.NoError(t, f.pool.ReportProbe(t.Context(), mustPick(t, f, dead), pool.ProbeResult{OK: true, Reason: "test"}))
	res, err = f.client.Post(f.front.URL, "text/plain", io.MultiReader(strings.NewReader(payload)))
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, fmt.Sprintf("POST -1 %s", payload), readAll(t, res))
}

// mustPick finds the *Backend for url.
func mustPick(t *testing.T, f *fixture, url string) *pool.Backend {
	t.Helper()
	return pooltest.BackendOf(t, f.pool, url)
}

// A backend that accepts and then resets has received the request: a GET may
// be sent again, a POST may not (its effect may have happened). Neither takes
// the backend out: the connection was made.
func TestResetAfterConnectRetriesOnlySafeMethods(t *testing.T) {
	rst := newResetter(t)
	good := backend(t, echo("good"))
	f := newFixture(t, proxy.Config{}, rst.URL(), good.URL)

	code, body := f.get(t, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "good GET / host="+f.front.Listener.Addr().String(), body)
	assert.Equal(t, int64(1), rst.accepts.Load())

	// The retry took good's turn, so the rotation is back at the resetter.
	res, err := f.client.Post(f.front.URL, "text/plain", strings.NewReader("charge the card"))
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusBadGateway, res.StatusCode)
	assert.Equal(t, int64(2), rst.accepts.Load())

	assert.Equal(t, pool.StateUp, f.status(t, rst.URL()).State)
	f.assertIdle(t)
}

func TestAtMostThreeAttemptsEachOnADifferentBackend(t *testing.T) {
	rs := []*resetter{newResetter(t), newResetter(t), newResetter(t), newResetter(t)}
	var urls []string
	for _, r := range rs {
		urls = append(urls, r.URL())
	}
	f := newFixture(t, proxy.Config{}, urls...)
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code)
	var total int64
	for _, r := range rs {
		assert.LessOrEqual(t, r.accepts.Load(), int64(1), "no backend tried twice")
		total += r.accepts.Load()
	}
	assert.Equal(t, int64(3), total)
}

// One request's failure (here, its handler panicked) says nothing about the
// backend: it stays in rotation.
func TestPanickingHandlerDoesNotMarkTheBackendDown(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler bug")
		}
		fmt.Fprint(w, "fine")
	})
	be.Config.ErrorLog = quietLog()
	f := newFixture(t, proxy.Config{}, be.URL)
	code, _ := f.get(t, "/panic")
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Equal(t, pool.StateUp, f.status(t, be.URL).State)
	code, body := f.get(t, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "fine", body)
	f.assertIdle(t)
}

// Killing a backend while 16 clients send GETs costs those clients nothing.
func TestNoErrorsAcrossAKillUnderLoad(t *testing.T) {
	bs := []*testBackend{backend(t, echo("a")), backend(t, echo("b")), backend(t, echo("c"))}
	f := newFixture(t, proxy.Config{}, bs[0].URL, bs[1].URL, bs[2].URL)

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := f.client.Get(f.front.URL)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	bs[1].kill()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("%d requests served, %d errors, across one kill", ok.Load(), failed.Load())
	assert.Zero(t, failed.Load())
	assert.Positive(t, ok.Load())
	assert.Equal(t, pool.StateDown, f.status(t, bs[1].URL).State)
	f.assertIdle(t)
}

// A backend that sent an interim answer (here 103 Early Hints, which goes
// straight to the client) and then broke has been heard from: the request is
// not sent again, so the client never sees two backends' answers.
func TestNoRetryAfterAnInterimAnswer(t *testing.T) {
	hinting := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
		fmt.Fprint(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		time.Sleep(20 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
	})
	good := backend(t, echo("good"))
	f := newFixture(t, proxy.Config{}, hinting, good.URL)
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Zero(t, f.status(t, hinting).Retries)
	assert.Zero(t, f.status(t, good.URL).Requests, "the good backend was not asked")
}

// A failed attempt counts as a retry only once another backend takes the
// request over.
func TestRetriesCountOnlyRealRetries(t *testing.T) {
	rst := newResetter(t)
	f := newFixture(t, proxy.Config{}, rst.URL())
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code, "nobody to retry on")
	assert.Zero(t, f.status(t, rst.URL()).Retries)

	good := backend(t, echo("good"))
	f = newFixture(t, proxy.Config{}, rst.URL(), good.URL)
	code, _ = f.get(t, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, uint64(1), f.status(t, rst.URL()).Retries)
}

// Responses that arrive just as the deadline passes get a 504 or their
// answer, never a dropped connection (the timer can have fired before its
// function has cancelled the request).
func TestResponsesAtTheDeadline(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		fmt.Fprint(w, "ok")
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 1500 * time.Microsecond}, be.URL)
	counts := map[int]int{}
	for range 1000 {
		res, err := f.client.Get(f.front.URL)
		require.NoError(t, err, "the proxy dropped the connection")
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		counts[res.StatusCode]++
	}
	t.Logf("status counts: %v", counts)
	assert.Equal(t, 1000, counts[http.StatusOK]+counts[http.StatusGatewayTimeout])
	f.assertIdle(t)
}

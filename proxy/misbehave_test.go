package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// A backend that accepts and never answers: 504 at the deadline, and the
// proxy lets go of the connection.
func TestBackendThatNeverAnswers(t *testing.T) {
	released := make(chan struct{})
	url := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
		io.Copy(io.Discard, c) // until the proxy closes its end
		close(released)
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 200 * time.Millisecond}, url)
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusGatewayTimeout, code)
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Error("the proxy kept the connection to a backend that timed out")
	}
	f.assertIdle(t)
}

func TestBackendThatSpeaksGarbage(t *testing.T) {
	url := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
		fmt.Fprint(c, "SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP\r\n\r\n")
	})
	f := newFixture(t, proxy.Config{}, url)
	code, body := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Equal(t, "Bad Gateway\n", body)
	assert.Equal(t, pool.StateUp, f.status(t, url).State)
}

func TestBackendHeadersOverTheLimit(t *testing.T) {
	url := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 2\r\n\r\nok", strings.Repeat("a", 8<<10))
	})
	f := newFixture(t, proxy.Config{MaxResponseHeaderBytes: 4 << 10}, url)
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code)
}

// A backend that dies half-way through a body: the client must see a broken
// transfer, never a short body passed off as complete.
func TestBackendClosesHalfWayThroughTheBody(t *testing.T) {
	for _, tc := range []struct{ name, head string }{
		{"content-length", "Content-Length: 1000\r\n"},
		{"chunked", "Transfer-Encoding: chunked\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%s\r\n", tc.head)
				if strings.HasPrefix(tc.head, "Transfer") {
					fmt.Fprintf(c, "64\r\n%s\r\n", strings.Repeat("x", 100))
				} else {
					fmt.Fprint(c, strings.Repeat("x", 100))
				}
			})
			f := newFixture(t, proxy.Config{}, url)
			res, err := f.client.Get(f.front.URL)
			if err == nil {
				// The head reached the client before the body broke: the
				// body must then end in an error, not look complete.
				defer res.Body.Close()
				assert.Equal(t, http.StatusOK, res.StatusCode)
				_, err = io.ReadAll(res.Body)
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			} else {
				// The proxy had not yet flushed the head: the client sees the
				// connection close with no answer at all.
				assert.ErrorIs(t, err, io.EOF)
			}
			f.assertIdle(t)
			assert.Equal(t, pool.StateUp, f.status(t, url).State)
		})
	}
}

// A backend that answers byte by byte, slower than the request timeout in
// all, is not cut while it keeps sending.
func TestSlowBackendIsNotCutWhileItSends(t *testing.T) {
	const body = "slow but steady"
	url := pooltest.RawBackend(t, func(c net.Conn, _ *http.Request) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		for i := range len(body) {
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte{body[i]})
		}
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 100 * time.Millisecond}, url)
	code, got := f.get(t, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, body, got)
}

// A client whose request body stops mid-way and goes away: the backend's
// request is cancelled and nothing is left in flight.
func TestClientBodyStopsMidWay(t *testing.T) {
	gotErr := make(chan error, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		gotErr <- err
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
	require.NoError(t, err)
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("y", 100))
	time.Sleep(50 * time.Millisecond)
	conn.Close()
	select {
	case err := <-gotErr:
		assert.Error(t, err, "the backend sees a broken body, not a short one")
	case <-time.After(5 * time.Second):
		t.Error("the backend request was not cancelled")
	}
	f.assertIdle(t)
	assert.Equal(t, pool.StateUp, f.status(t, be.URL).State)
}

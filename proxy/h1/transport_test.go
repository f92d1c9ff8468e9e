package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOnlyHTTPIsServed(t *testing.T) {
	tr := &Transport{}
	for _, u := range []string{"https://127.0.0.1:1/", "h2c://127.0.0.1:1/", "ftp://127.0.0.1/"} {
		body := &trackedBody{Reader: strings.NewReader("x")}
		req, err := http.NewRequest(http.MethodPost, u, body)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.ErrorIs(t, err, ErrUnsupportedScheme, u)
		assert.True(t, body.closed.Load(), "the body is closed, as RoundTrip must")
	}
	req := &http.Request{Method: http.MethodGet, URL: nil, Header: http.Header{}}
	_, err := tr.RoundTrip(req)
	assert.Error(t, err)
	req, err = http.NewRequest(http.MethodGet, "http:///nohost", nil)
	require.NoError(t, err)
	_, err = tr.RoundTrip(req)
	assert.Error(t, err)
}

func TestNegativeFieldsAreErrorsNamingThem(t *testing.T) {
	tr := &Transport{DialTimeout: -time.Second, MaxIdleConnsPerHost: -1, IdleConnTimeout: -1,
		MaxResponseHeaderBytes: -1, ExpectContinueTimeout: -1}
	err := tr.Validate()
	require.ErrorIs(t, err, ErrConfig)
	for _, f := range []string{"DialTimeout", "MaxIdleConnsPerHost", "IdleConnTimeout", "MaxResponseHeaderBytes", "ExpectContinueTimeout"} {
		assert.Contains(t, err.Error(), f)
	}

	// RoundTrip refuses to run on them rather than choosing defaults.
	be := newBackend(t, func(http.ResponseWriter, *http.Request) {})
	req, err := http.NewRequest(http.MethodGet, be.URL, nil)
	require.NoError(t, err)
	_, err = tr.RoundTrip(req)
	assert.ErrorIs(t, err, ErrConfig)
	assert.Equal(t, int64(0), be.opened.Load())

	assert.NoError(t, (&Transport{}).Validate(), "zero means default")
}

func TestZeroValueAndDefaultPort(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })
	var tr Transport
	defer tr.CloseIdleConnections()
	res := get(t, &tr, be.URL)
	assert.Equal(t, be.Listener.Addr().String(), readAll(t, res))
	for host, want := range map[string]string{"127.0.0.1": "127.0.0.1:80", "[::1]": "[::1]:80", "a:8080": "a:8080", "a:": "a:80"} {
		u, err := url.Parse("http://" + host + "/")
		require.NoError(t, err)
		assert.Equal(t, want, hostPort(u))
	}
}

// A custom DialContext gets DialTimeout as its context's deadline, and its
// errors come back as they are.
func TestCustomDialContext(t *testing.T) {
	errDial := errors.New("test: no dialing")
	var deadline time.Duration
	tr := &Transport{DialTimeout: time.Minute, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d, _ := ctx.Deadline()
		deadline = time.Until(d)
		return nil, errDial
	}}
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	require.NoError(t, err)
	_, err = tr.RoundTrip(req)
	assert.ErrorIs(t, err, errDial)
	assert.InDelta(t, time.Minute, deadline, float64(10*time.Second))
}

// hiddenConn hides the socket's file descriptor, as a custom dialer's
// wrapper may: the liveness check cannot look, and the retry is left.
type hiddenConn struct{ net.Conn }

func hidingDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return hiddenConn{c}, nil
}

// Without the liveness check, a request that may be repeated is still sent
// again when it finds its reused connection closed by the backend.
func TestStaleConnectionWithoutPeekIsRetried(t *testing.T) {
	be := newBackendWith(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(s *http.Server) { s.IdleTimeout = 10 * time.Millisecond })
	tr := &Transport{DialContext: hidingDialer}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if i > 0 {
			be.waitClosed(t, int64(i))
		}
		assert.Equal(t, "ok", readAll(t, get(t, tr, be.URL)))
	}
	assert.Equal(t, int64(3), be.opened.Load())
}

// The liveness check finds an idle connection closed by its backend, reset,
// or holding bytes nobody asked for (a 408 sent before closing), and passes
// an idle one.
func TestLivenessCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(c net.Conn)
		open bool
	}{
		{"idle", func(net.Conn) {}, true},
		{"closed", func(c net.Conn) { c.Close() }, false},
		{"reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }, false},
		{"unsolicited bytes", func(c net.Conn) { io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\n\r\n") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			nc, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			srv, err := ln.Accept()
			require.NoError(t, err)
			defer srv.Close()
			c := newConn(nc, newHostPool("x", 1, time.Minute))
			defer c.close()
			tc.do(srv)
			if tc.open {
				assert.True(t, c.stillOpen())
				return
			}
			assert.Eventually(t, func() bool { return !c.stillOpen() }, 5*time.Second, time.Millisecond)
		})
	}
}

// The request sent is exactly what (*http.Request).Write writes: the
// Transport adds nothing and drops nothing.
func TestRequestAsWriteWritesIt(t *testing.T) {
	got := make(chan string, 1)
	be := newRawBackend(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		var sb strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			sb.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		got <- sb.String()
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
	})
	req, err := http.NewRequest(http.MethodGet, be.URL()+"/p?q=1", nil)
	require.NoError(t, err)
	req.Header.Set("X-A", "b")
	req.Close = true
	var want strings.Builder
	require.NoError(t, req.Write(&want))

	tr := &Transport{}
	res, err := tr.RoundTrip(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, want.String(), <-got)
	assert.Contains(t, want.String(), "Connection: close\r\n")
}

// A response's body read after EOF keeps saying EOF, and its connection has
// gone back to the pool once, whatever the caller does next.
func TestBodyAfterEOF(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") })
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	res := get(t, tr, be.URL)
	assert.Equal(t, "abc", readAll(t, res))
	n, err := res.Body.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	assert.NoError(t, res.Body.Close())
	assert.Equal(t, int64(1), tr.pool(be).n.Load())
	readAll(t, get(t, tr, be.URL))
	assert.Equal(t, int64(1), be.opened.Load())
}

func (t *Transport) pool(be *backend) *hostPool {
	p, _ := t.pools.Load(be.Listener.Addr().String())
	return p.(*hostPool)
}

func TestPoolSlots(t *testing.T) {
	p := newHostPool("x", 3, time.Minute)
	conns := make([]*conn, 4)
	for i := range conns {
		conns[i] = &conn{hp: p, idle: time.AfterFunc(time.Hour, func() {}), nc: nopConn{}}
	}
	for _, c := range conns[:3] {
		assert.True(t, p.put(c))
	}
	assert.False(t, p.put(conns[3]), "full")
	assert.Same(t, conns[0], p.get(), "the lowest slot first")
	assert.True(t, p.put(conns[3]))
	assert.Same(t, conns[3], p.get(), "what came back last, into the lowest free slot, goes first")
	assert.True(t, p.remove(conns[1]))
	assert.False(t, p.remove(conns[1]))
	assert.Same(t, conns[2], p.get())
	assert.Nil(t, p.get())
	assert.Equal(t, int64(0), p.n.Load())
	for _, c := range conns {
		c.idle.Stop()
	}
}

type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }

// A backend address's pool lives while it has connections: once the last
// one closes, the Transport forgets it, so that the addresses of backends
// long gone (discovery, scaling) are not kept for ever.
func TestPoolIsForgottenWithItsLastConnection(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") })
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	readAll(t, get(t, tr, be.URL))
	readAll(t, get(t, tr, be.URL))
	_, ok := tr.pools.Load(be.Listener.Addr().String())
	require.True(t, ok, "kept while a connection is idle in it")
	tr.CloseIdleConnections()
	_, ok = tr.pools.Load(be.Listener.Addr().String())
	assert.False(t, ok, "forgotten with its last connection")
	readAll(t, get(t, tr, be.URL))
	assert.Equal(t, int64(1), tr.pool(be).live.Load(), "and made again when needed")
	assert.Equal(t, int64(2), be.opened.Load())
}

// A pool outlives its last connection by IdleConnTimeout, as an idle
// connection would: a backend that closes every connection keeps one pool
// rather than having one made and dropped per request.
func TestPoolOutlivesItsLastConnection(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "abc")
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	readAll(t, get(t, tr, be.URL))
	hp := tr.pool(be)
	assert.Equal(t, int64(0), hp.live.Load(), "the backend closed it")
	readAll(t, get(t, tr, be.URL))
	assert.Same(t, hp, tr.pool(be), "the next request finds the same pool")
	assert.Equal(t, int64(2), be.opened.Load())
}

// Failed dials leave no pool behind: an address that cannot be reached
// (a backend gone with discovery) is forgotten IdleConnTimeout after its
// last attempt, although it never had a connection to lose.
func TestFailedDialsLeaveNoPool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	synctest.Test(t, func(t *testing.T) {
		tr := &Transport{}
		for range 3 {
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			require.NoError(t, err)
			_, err = tr.RoundTrip(req)
			assertDialError(t, err)
		}
		_, ok := tr.pools.Load(addr)
		assert.True(t, ok, "kept for a while: each failed dial does not make a pool of its own")
		time.Sleep(DefaultIdleConnTimeout + time.Second)
		synctest.Wait()
		_, ok = tr.pools.Load(addr)
		assert.False(t, ok, "forgotten after IdleConnTimeout")
	})
}

// A URL without a port is dialled on port 80, its pool found by the host as
// written.
func TestDefaultPortIsDialled(t *testing.T) {
	var dialled []string
	tr := &Transport{DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
		dialled = append(dialled, addr)
		return nil, errors.New("test: no dialing")
	}}
	for range 2 {
		req, err := http.NewRequest(http.MethodGet, "http://backend.example/", nil)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		assert.Error(t, err)
	}
	assert.Equal(t, []string{"backend.example:80", "backend.example:80"}, dialled)
	_, ok := tr.pools.Load("backend.example")
	assert.True(t, ok)
}

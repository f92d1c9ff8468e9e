package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/grpctest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// HTTP/2 towards the backends: streams refused unprocessed are sent again,
// in-flight counts follow streams, dead connections are found out by pings.

// refusal is what an h2Backend does with a connection.
type refusal int

const (
	serve      refusal = iota // hand it to a real HTTP/2 server
	goAway                    // GOAWAY at the first request, naming no stream processed
	refuseAll                 // RST_STREAM REFUSED_STREAM to every request
	refuseLate                // RST_STREAM REFUSED_STREAM once 40 KiB of a request's body have come
)

// h2Backend is an HTTP/2 cleartext backend that treats its n-th connection
// (from 0) as plan(n) says: refusing requests with a framer of
// golang.org/x/net/http2 on the raw connection, or serving them with h.
type h2Backend struct {
	url      string
	conns    atomic.Int64 // connections accepted
	refused  atomic.Int64 // requests refused
	received atomic.Int64 // body bytes of refused requests
}

func newH2Backend(t *testing.T, plan func(n int) refusal, h http.Handler) *h2Backend {
	t.Helper()
	b := &h2Backend{}
	srv := &http2.Server{}
	b.url = "h2c://" + pooltest.ServeConns(t, func(c net.Conn) {
		// n counts connections as their handling starts, which is their
		// order of arrival whenever the client opens them one after another.
		how := plan(int(b.conns.Add(1) - 1))
		if how == serve {
			srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
			return
		}
		b.refuse(c, how)
	})
	return b
}

// refuse speaks just enough HTTP/2 to refuse every request on c.
func (b *h2Backend) refuse(c net.Conn, how refusal) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	if fr.WriteSettings() != nil {
		return
	}
	body := map[uint32]int{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			switch how {
			case goAway:
				b.refused.Add(1)
				fr.WriteGoAway(0, http2.ErrCodeNo, nil) // last processed: none
			case refuseAll:
				b.refused.Add(1)
				fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
			}
		case *http2.DataFrame:
			b.received.Add(int64(len(f.Data())))
			body[f.StreamID] += len(f.Data())
			if how == refuseLate && body[f.StreamID] >= 40<<10 && body[f.StreamID]-len(f.Data()) < 40<<10 {
				b.refused.Add(1)
				fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
			}
		}
	}
}

// bodyEcho answers with the length and a digest of the body it read.
func bodyEcho(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %d %s", name, r.Proto, len(b), b[:min(len(b), 16)])
	}
}

func post(t *testing.T, f *fixture, body string) (int, string) {
	t.Helper()
	res, err := f.client.Post(f.front.URL+"/", "text/plain", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode, readAll(t, res)
}

// A POST whose stream the backend refused unprocessed is sent again whole:
// by the Transport on a new connection after a GOAWAY that left it out, by
// the retrier to another backend when the same one refuses it twice. One
// whose body was read past what the proxy keeps cannot be sent again, and
// fails without another backend seeing it: 503, as nothing was processed.
func TestRefusedStreamIsSentAgain(t *testing.T) {
	payload := "0123456789abcdef" + strings.Repeat("x", 1000)
	t.Run("GOAWAY, then a new connection", func(t *testing.T) {
		be := newH2Backend(t, func(n int) refusal {
			if n == 0 {
				return goAway
			}
			return serve
		}, bodyEcho("a"))
		f := newFixture(t, proxy.Config{}, be.url)
		code, body := post(t, f, payload)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "a HTTP/2.0 1016 0123456789abcdef", body)
		assert.Equal(t, int64(1), be.refused.Load())
		assert.Equal(t, int64(2), be.conns.Load())
		st := f.status(t, be.url)
		assert.Zero(t, st.Retries, "the Transport sent it again, to the same backend")
		assert.Equal(t, pool.StateUp, st.State)
	})
	t.Run("REFUSED_STREAM, then another backend", func(t *testing.T) {
		refuser := newH2Backend(t, func(int) refusal { return refuseAll }, nil)
		good := newH2Backend(t, func(int) refusal { return serve }, bodyEcho("good"))
		f := newFixture(t, proxy.Config{}, refuser.url, good.url)
		code, body := post(t, f, payload)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "good HTTP/2.0 1016 0123456789abcdef", body)
		assert.Equal(t, int64(2), refuser.refused.Load(), "once by the Transport, once more, then the retrier moved on")
		st := f.status(t, refuser.url)
		assert.Equal(t, uint64(1), st.Retries)
		assert.Equal(t, pool.StateUp, st.State, "a refused stream does not take the backend out")
		f.assertIdle(t)
	})
	t.Run("refused after more than the proxy keeps", func(t *testing.T) {
		refuser := newH2Backend(t, func(int) refusal { return refuseLate }, nil)
		good := newH2Backend(t, func(int) refusal { return serve }, bodyEcho("good"))
		f := newFixture(t, proxy.Config{}, refuser.url, good.url)
		code, _ := post(t, f, strings.Repeat("y", 60<<10))
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, int64(1), refuser.refused.Load())
		assert.Zero(t, good.conns.Load(), "the good backend never saw it")
		f.assertIdle(t)
	})
	t.Run("gRPC", func(t *testing.T) {
		refuser := newH2Backend(t, func(int) refusal { return refuseAll }, nil)
		srv := grpctest.Start(t)
		f := newFixture(t, proxy.Config{}, refuser.url, srv.URL)
		c := newFront(t, f, false).client(t)
		res := c.Unary(t.Context(), []byte("hello"))
		require.NoError(t, res.Err)
		assert.Equal(t, [][]byte{[]byte("hello")}, res.Messages)
		assert.Equal(t, int64(2), refuser.refused.Load())
	})
}

// Least-connections counts requests in flight, not connections: streams
// multiplexed on one client connection spread over the backends one by one,
// and when some end, the next go where they ended.
func TestLeastConnectionsCountsStreams(t *testing.T) {
	a, b := grpctest.Start(t), grpctest.Start(t)
	f := newFixtureWith(t, pool.Config{Strategy: pool.LeastConnections}, proxy.Config{}, a.URL, b.URL)
	fr := newFront(t, f, false)
	c := fr.client(t)
	held := metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyHeaderFirst, "1", grpctest.KeyHold, "1")

	type stream struct {
		server string
		cancel context.CancelFunc
	}
	var streams []stream
	open := func() stream {
		ctx, cancel := context.WithCancel(held)
		st, err := c.Bidi(ctx)
		require.NoError(t, err)
		md, err := st.Header() // the proxy has picked and counted it
		require.NoError(t, err)
		s := stream{server: md.Get(grpctest.HeaderServer)[0], cancel: cancel}
		streams = append(streams, s)
		return s
	}
	inFlight := func() (int64, int64) {
		return f.status(t, a.URL).InFlight, f.status(t, b.URL).InFlight
	}
	for range 6 {
		open()
	}
	na, nb := inFlight()
	assert.Equal(t, int64(3), na)
	assert.Equal(t, int64(3), nb)
	assert.Equal(t, int64(1), fr.conns.Load(), "all of them on one client connection")

	// End two of a's streams: a has one in flight, b three.
	ended := 0
	for _, s := range streams {
		if s.server == a.Addr && ended < 2 {
			s.cancel()
			ended++
		}
	}
	assert.Eventually(t, func() bool { na, _ := inFlight(); return na == 1 }, 5*time.Second, 5*time.Millisecond)
	for range 2 {
		assert.Equal(t, a.Addr, open().server, "the next streams go to the backend with fewer in flight")
	}
	na, nb = inFlight()
	assert.Equal(t, int64(3), na)
	assert.Equal(t, int64(3), nb)

	for _, s := range streams {
		s.cancel()
	}
	f.assertIdle(t)
}

// relay forwards TCP connections to a target until frozen: then the
// connections open at that moment stop forwarding in both directions but
// stay open, as a backend that vanished without a FIN (a pulled cable, a
// host gone) looks to the proxy. New connections are forwarded as usual.
type relay struct {
	ln      net.Listener
	target  string
	accepts atomic.Int64
	done    chan struct{} // closed at cleanup: frozen forwarders give up

	mu     sync.Mutex
	frozen chan struct{} // closed by freeze for the connections open now
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &relay{ln: ln, target: target, done: make(chan struct{}), frozen: make(chan struct{})}
	r.wg.Go(func() { // waited for in the cleanup, which closes the listener
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepts.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			frozen := r.frozen
			r.mu.Unlock()
			// Each waited for in the cleanup, which closes both conns.
			r.wg.Go(func() { r.forward(up, c, frozen) })
			r.wg.Go(func() { r.forward(c, up, frozen) })
		}
	})
	t.Cleanup(func() {
		close(r.done)
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *relay) forward(dst, src net.Conn, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			<-r.done // swallow it, and everything after, with the socket open
			return
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// freeze stops the connections open now.
func (r *relay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.frozen)
	r.frozen = make(chan struct{})
}

// An h2c backend connection gone silent without a FIN is found out by the
// HTTP/2 pings (shortened here to 200ms of silence and 500ms for the
// answer): the call on it fails as UNAVAILABLE long before its 10s
// deadline, rather than hanging until the kernel gives up, and the next
// call gets a new connection.
func TestDeadH2CConnectionIsFoundByPings(t *testing.T) {
	proxy.SetPingTimeouts(t, 200*time.Millisecond, 500*time.Millisecond)
	srv := grpctest.Start(t)
	r := newRelay(t, srv.Addr)
	f := newFixture(t, proxy.Config{}, "h2c://"+r.ln.Addr().String())
	c := newFront(t, f, false).client(t)
	call := func() codes.Code {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return c.Unary(ctx, []byte("x")).Code()
	}
	require.Equal(t, codes.OK, call())
	require.Equal(t, int64(1), r.accepts.Load())

	r.freeze()
	assert.Equal(t, codes.Unavailable, call(), "the dead connection failed the call, not the deadline")
	assert.Equal(t, codes.OK, call())
	assert.Equal(t, int64(2), r.accepts.Load(), "a new connection")
	f.assertIdle(t)
}

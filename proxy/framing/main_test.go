package framing

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is a request as the handler saw it, with the verdict Next gave.
type seen struct {
	Method, URI, Proto string
	Action             Action
}

// fixture is an http.Server on a Listener over a real TCP socket, with a
// handler that calls Next and records what it saw.
type fixture struct {
	ln   *Listener
	srv  *http.Server
	addr string

	mu   sync.Mutex
	seen []seen
	// serve, when set, answers instead of the default handler (after Next
	// and the record).
	serve func(w http.ResponseWriter, r *http.Request, v Verdict)
	// wrap, when set, wraps the Listener the server serves from.
	wrap func(*Listener) net.Listener
}

// startServer runs a server until the test ends. tune may change the
// server before it starts.
func startServer(t testing.TB, cfg Config, tune ...func(*fixture)) *fixture {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := NewListener(tcp, cfg)
	require.NoError(t, err)
	fx := &fixture{ln: ln, addr: tcp.Addr().String()}
	fx.srv = &http.Server{
		Handler:           http.HandlerFunc(fx.handle),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          discardLog,
	}
	// net/http's lingering close sleeps before it closes a connection,
	// after Server.Close has returned: the cleanup waits for every
	// connection's last state, so that no goroutine outlives the test.
	var conns sync.WaitGroup
	fx.srv.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Done()
		}
	}
	ConfigureServer(fx.srv)
	for _, f := range tune {
		f(fx)
	}
	var serveLn net.Listener = ln
	if fx.wrap != nil {
		serveLn = fx.wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- fx.srv.Serve(serveLn) }() // waited for by the cleanup
	t.Cleanup(func() {
		_ = fx.srv.Close()
		<-served
		conns.Wait()
	})
	return fx
}

func (fx *fixture) handle(w http.ResponseWriter, r *http.Request) {
	v := Next(r)
	fx.mu.Lock()
	fx.seen = append(fx.seen, seen{r.Method, r.RequestURI, r.Proto, v.Action})
	fx.mu.Unlock()
	if fx.serve != nil {
		fx.serve(w, r, v)
		return
	}
	switch v.Action {
	case Reject:
		Refuse(w)
		return
	case Close:
		w.Header().Set("Connection", "close")
	}
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, "ok "+r.RequestURI)
}

func (fx *fixture) requests() []seen {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return append([]seen(nil), fx.seen...)
}

// exchange sends the pieces over a new connection (pausing between them so
// that the server reads them apart), half-closes, and returns everything
// the server sent until it closed.
func exchange(t *testing.T, addr string, pieces ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	got := make(chan []byte, 1)
	go func() { // waited for below
		b, _ := io.ReadAll(c) // a reset after the response is fine
		got <- b
	}()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			break // the server closed early: what it sent is the answer
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	return string(<-got)
}

// bytewise splits s into one-byte pieces.
func bytewise(s string) []string {
	p := make([]string, len(s))
	for i := range s {
		p[i] = s[i : i+1]
	}
	return p
}

var discardLog = newDiscardLog()

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func newDiscardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return client, server
}

// testConn wraps an accepted connection as l.Accept would, for tests that
// drive a conn without a server.
func testConn(l *Listener, c net.Conn) *conn {
	l.mu.Lock()
	l.inUse++
	l.mu.Unlock()
	l.open.Add(1)
	return l.newConn(c)
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

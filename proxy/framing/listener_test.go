package framing

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigErrorsNameEveryField(t *testing.T) {
	_, err := NewListener(nil, Config{MaxHeaderBytes: -1, SendTimeout: -1, BodyTimeout: -time.Second, MaxConns: -3, TLSHandshakeTimeout: -1})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	for _, field := range []string{"MaxHeaderBytes", "SendTimeout", "BodyTimeout", "MaxConns", "TLSHandshakeTimeout"} {
		assert.Contains(t, err.Error(), field)
	}

	l, err := NewListener(nil, Config{MaxConns: 4})
	require.NoError(t, err)
	assert.ErrorIs(t, l.SetConfig(Config{MaxConns: -1}), ErrInvalidConfig)
	assert.Equal(t, 4, l.Stats().Limit, "an invalid config changes nothing")
}

// client is a keep-alive connection that sends GETs and reads responses.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr) // completes in the kernel's backlog, accepted or not
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &client{c: c, br: bufio.NewReader(c)}
}

func (c *client) send(t *testing.T, path string) {
	t.Helper()
	_, err := io.WriteString(c.c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
}

// answered reports whether a response arrives within d.
func (c *client) answered(d time.Duration) bool {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestMaxConns(t *testing.T) {
	const n = 3
	fx := startServer(t, Config{MaxConns: n})
	clients := make([]*client, n+5)
	for i := range clients {
		clients[i] = dialClient(t, fx.addr)
		clients[i].send(t, "/")
	}
	// The first n are served (in some order: the backlog is FIFO, and
	// they were dialled in order).
	for _, c := range clients[:n] {
		assert.True(t, c.answered(5*time.Second))
	}
	for _, c := range clients[n:] {
		assert.False(t, c.answered(100*time.Millisecond), "beyond MaxConns, nothing is accepted")
	}
	st := fx.ln.Stats()
	assert.Equal(t, Stats{Open: n, LimitWaits: 1, Limit: n}, st)

	// One closes: exactly one more is accepted.
	require.NoError(t, clients[0].c.Close())
	assert.True(t, clients[n].answered(5*time.Second))
	for _, c := range clients[n+1:] {
		assert.False(t, c.answered(100*time.Millisecond))
	}
	assert.Eventually(t, func() bool { return fx.ln.Stats().LimitWaits == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, n, fx.ln.Stats().Open)

	// A higher limit wakes the waiting Accept at once.
	require.NoError(t, fx.ln.SetConfig(Config{MaxConns: n + 10}))
	for _, c := range clients[n+1:] {
		assert.True(t, c.answered(5*time.Second))
	}
	assert.Equal(t, Stats{Open: n + 4, LimitWaits: 2, Limit: n + 10}, fx.ln.Stats())
}

func TestCloseWakesAnAcceptWaitingForASlot(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := NewListener(tcp, Config{MaxConns: 1})
	require.NoError(t, err)
	c := dialClient(t, tcp.Addr().String())
	_ = c
	first, err := ln.Accept()
	require.NoError(t, err)
	defer first.Close()

	accepted := make(chan error, 1)
	go func() { // reports to accepted, waited for below
		_, err := ln.Accept()
		accepted <- err
	}()
	assert.Eventually(t, func() bool { return ln.Stats().LimitWaits == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case err := <-accepted:
		assert.ErrorIs(t, err, ErrClosed)
		assert.True(t, errors.Is(err, net.ErrClosed))
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the waiting Accept")
	}

	// The slot is freed once, however often the conn is closed.
	require.NoError(t, first.Close())
	_ = first.Close()
	assert.EqualValues(t, 0, ln.Stats().Open)
	assert.Equal(t, 0, ln.inUse)
}

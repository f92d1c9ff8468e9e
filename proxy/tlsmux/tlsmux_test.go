package tlsmux_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
	"github.com/switchyard-proxy/switchyard/proxy/tlsmux"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a Mux on 127.0.0.1 with an http.Server on both of its
// listeners, answering with the protocol it was asked in.
type fixture struct {
	mux   *tlsmux.Mux
	addr  string
	roots *x509.CertPool
	ran   chan error
}

func serverConfig(t *testing.T, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	certFile, keyFile, roots := certstest.Write(t, t.TempDir(), names...)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}, roots
}

func start(t *testing.T, timeout time.Duration) *fixture {
	t.Helper()
	cfg, roots := serverConfig(t, "mux.test")
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux, err := tlsmux.New(tcp, cfg, timeout)
	require.NoError(t, err)
	fx := &fixture{mux: mux, addr: tcp.Addr().String(), roots: roots, ran: make(chan error, 1)}
	go func() { fx.ran <- mux.Run() }() // waited for by the cleanup
	// Cleanups run last first: the servers close their listeners, which
	// closes the Mux, as http.Server.Shutdown does; then Run has ended.
	t.Cleanup(func() {
		require.NoError(t, mux.Close())
		assert.NoError(t, <-fx.ran)
	})
	// One server on both listeners, as cmd/proxy has: its Shutdown closes
	// them together, so neither Serve sees the other's close as a failure.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	for _, ln := range []net.Listener{mux.HTTP1(), mux.HTTP2()} {
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }() // waited for by the cleanup
		t.Cleanup(func() { assert.ErrorIs(t, <-served, http.ErrServerClosed) })
	}
	t.Cleanup(func() { _ = srv.Close() })
	return fx
}

func (fx *fixture) get(t *testing.T, protos ...string) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fx.roots, ServerName: "mux.test", NextProtos: protos}}
	// The Transport offers what its Protocols say, on top of NextProtos.
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(slices.Contains(protos, "h2"))
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + fx.addr + "/")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(body)
}

func TestConnectionsGoByTheProtocolChosen(t *testing.T) {
	fx := start(t, 0)
	assert.Equal(t, "HTTP/2.0", fx.get(t, "h2", "http/1.1"))
	assert.Equal(t, "HTTP/1.1", fx.get(t, "http/1.1"))
	assert.Equal(t, "HTTP/1.1", fx.get(t), "a client without ALPN speaks HTTP/1.1")
	assert.Equal(t, tlsmux.Stats{Handshakes: 3}, fx.mux.Stats())
}

func TestFailedAndSilentHandshakes(t *testing.T) {
	fx := start(t, 200*time.Millisecond)

	// Not TLS at all.
	c, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, _ = io.ReadAll(c) // a TLS alert, then the close
	c.Close()

	// A client that does not trust the certificate gives up.
	_, err = tls.Dial("tcp", fx.addr, &tls.Config{ServerName: "mux.test", RootCAs: x509.NewCertPool()})
	require.Error(t, err)

	// A client that says nothing is cut off at the handshake timeout.
	silent, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	defer silent.Close()
	require.NoError(t, silent.SetReadDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	_, err = io.ReadAll(silent)
	assert.NoError(t, err, "closed by the server, not by our read deadline")
	assert.Less(t, time.Since(start), 9*time.Second)

	assert.Eventually(t, func() bool { return fx.mux.Stats() == tlsmux.Stats{Failures: 3} }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "HTTP/2.0", fx.get(t, "h2"), "and the next client is served")
}

// Close ends Run at once, even with a handshake under way that would
// last until its timeout, and both listeners' Accept return ErrClosed.
func TestCloseInterruptsHandshakes(t *testing.T) {
	cfg, _ := serverConfig(t, "mux.test")
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux, err := tlsmux.New(tcp, cfg, time.Hour)
	require.NoError(t, err)
	ran := make(chan error, 1)
	go func() { ran <- mux.Run() }() // waited for below
	silent, err := net.Dial("tcp", tcp.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	// An unaccepted handshake's connection is on its way too.
	pending, err := tls.Dial("tcp", tcp.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	defer pending.Close()

	require.NoError(t, mux.Close())
	select {
	case err := <-ran:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	for _, ln := range []net.Listener{mux.HTTP1(), mux.HTTP2()} {
		_, err := ln.Accept()
		assert.ErrorIs(t, err, net.ErrClosed)
	}
	require.NoError(t, silent.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(silent)
	assert.NoError(t, err, "the handshake's connection was closed")
}

// SetConfig changes what the next handshakes get.
func TestSetConfig(t *testing.T) {
	fx := start(t, 0)
	cfg, roots := serverConfig(t, "other.test")
	fx.mux.SetConfig(cfg)
	c, err := tls.Dial("tcp", fx.addr, &tls.Config{ServerName: "other.test", RootCAs: roots})
	require.NoError(t, err)
	assert.Equal(t, []string{"other.test"}, c.ConnectionState().PeerCertificates[0].DNSNames)
	c.Close()
}

func TestNewChecksItsArguments(t *testing.T) {
	_, err := tlsmux.New(nil, nil, -time.Second)
	require.Error(t, err)
	for _, want := range []string{"inner listener", "TLS config", "handshake timeout"} {
		assert.Contains(t, err.Error(), want)
	}
}

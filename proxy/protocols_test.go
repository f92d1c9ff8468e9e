package proxy_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// protoEcho answers with the protocol and scheme it was reached over.
func protoEcho(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s tls=%v upgrade=%q", r.Proto, r.TLS != nil, r.Header.Get("Upgrade"))
}

// An https backend is verified against BackendCAs and spoken to in HTTP/2
// when it offers it; an h2c:// backend in HTTP/2 without TLS; a plain one in
// HTTP/1.1. Each kind has its transport.
func TestBackendKinds(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, roots := certstest.Write(t, dir, "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	secure := httptest.NewUnstartedServer(http.HandlerFunc(protoEcho))
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
	secure.StartTLS()
	t.Cleanup(secure.Close)

	h2c := &http.Server{Handler: http.HandlerFunc(protoEcho), Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); h2c.Serve(ln) }() // waited for in the cleanup
	t.Cleanup(func() { h2c.Close(); <-done })
	plain := backend(t, protoEcho)

	for _, tc := range []struct {
		url, want string
	}{
		{secure.URL, "HTTP/2.0 tls=true"},
		{"h2c://" + ln.Addr().String(), "HTTP/2.0 tls=false"},
		{plain.URL, "HTTP/1.1 tls=false"},
	} {
		f := newFixtureWith(t, pool.Config{}, proxy.Config{BackendCAs: roots}, tc.url)
		code, body := f.get(t, "/")
		assert.Equal(t, http.StatusOK, code, tc.url)
		assert.Contains(t, body, tc.want, tc.url)
	}

	// Without the CA, the https backend is not trusted: 502, nothing sent.
	f := newFixture(t, proxy.Config{}, secure.URL)
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusBadGateway, code)
}

// An HTTP/1.1 client's Upgrade: h2c never reaches the backend.
func TestUpgradeToH2CIsNotPassedOn(t *testing.T) {
	be := backend(t, protoEcho)
	f := newFixture(t, proxy.Config{}, be.URL)
	req, err := http.NewRequest(http.MethodGet, f.front.URL+"/", nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, `HTTP/1.1 tls=false upgrade=""`, readAll(t, res))
}

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// tlsSite is a CA and the certificate files of a TLS port's config.
type tlsSite struct {
	ca      *certstest.CA
	dir     string
	entries []map[string]string // "cert_file", "key_file"
}

// newTLSSite writes one certificate per list of names, in order.
func newTLSSite(t *testing.T, names ...[]string) *tlsSite {
	t.Helper()
	s := &tlsSite{ca: certstest.NewCA(t), dir: t.TempDir()}
	for _, n := range names {
		cert, key := s.ca.Write(t, s.dir, n...)
		s.entries = append(s.entries, map[string]string{"cert_file": cert, "key_file": key})
	}
	return s
}

// withTLS adds a TLS port serving site's certificates to cfg.
func withTLS(t *testing.T, cfg map[string]any, site *tlsSite) int {
	t.Helper()
	port := pooltest.FreePort(t)
	cfg["tls"] = map[string]any{"port": port, "certificates": site.entries}
	return port
}

// tlsClient is a client of the TLS port that trusts site's CA and sends
// serverName as SNI; h2 says whether it offers HTTP/2.
func tlsClient(t *testing.T, roots *x509.CertPool, serverName string, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(h2)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// handshake connects to addr with SNI serverName and returns the
// certificate the server chose.
func handshake(t *testing.T, addr, serverName string, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	cfg = cfg.Clone()
	cfg.ServerName = serverName
	if cfg.RootCAs == nil {
		cfg.InsecureSkipVerify = true // the choice is what is under test, not the chain
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// protoBackend answers with the protocol it was spoken to in and the
// X-Forwarded-Proto it was given.
func protoBackend(t *testing.T) string {
	t.Helper()
	srv := namedBackend(t, "") // for its cleanup and URL
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	})
	return srv.URL
}

// The TLS port speaks HTTP/2 and HTTP/1.1 by ALPN to the same backends,
// which are told the client came over https; the certificate is chosen by
// SNI, wildcards included, and the first is the default.
func TestTLSPort(t *testing.T) {
	site := newTLSSite(t, []string{"default.test"}, []string{"a.test"}, []string{"*.b.test"})
	cfg := testConfig(t, protoBackend(t))
	port := withTLS(t, cfg, site)
	r := start(t, cfg)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	url := "https://" + addr + "/"

	code, body := get(t, tlsClient(t, site.ca.Pool, "a.test", true), url)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "HTTP/1.1 https", body, "an HTTP/2 client, to an HTTP/1.1 backend")
	code, body = get(t, tlsClient(t, site.ca.Pool, "a.test", false), url)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "HTTP/1.1 https", body)

	for sni, want := range map[string]string{"a.test": "a.test", "x.b.test": "*.b.test", "": "default.test",
		"unknown.test": "default.test", "b.test": "default.test"} {
		cert, err := handshake(t, addr, sni, &tls.Config{})
		require.NoError(t, err, sni)
		assert.Equal(t, []string{want}, cert.DNSNames, "SNI %q", sni)
	}
	assert.Equal(t, exitOK, r.stop(t))
}

// min_version 1.3 refuses a client that stops at 1.2; the default takes
// it. Nothing below 1.2 is ever accepted.
func TestTLSMinVersion(t *testing.T) {
	site := newTLSSite(t, []string{"site.test"})
	cfg := testConfig(t)
	port := withTLS(t, cfg, site)
	r := start(t, cfg)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	_, err := handshake(t, addr, "site.test", &tls.Config{MaxVersion: tls.VersionTLS12})
	assert.NoError(t, err, "1.2 by default")
	_, err = handshake(t, addr, "site.test", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	assert.Error(t, err, "1.1 never")
	assert.Equal(t, exitOK, r.stop(t))

	cfg["tls"].(map[string]any)["min_version"] = "1.3"
	r = start(t, cfg)
	_, err = handshake(t, addr, "site.test", &tls.Config{MaxVersion: tls.VersionTLS12})
	assert.Error(t, err)
	_, err = handshake(t, addr, "site.test", &tls.Config{})
	assert.NoError(t, err)
	assert.Equal(t, exitOK, r.stop(t))
}

// HTTP/1.1 over TLS passes the same connection guard as the plain port:
// a request that would smuggle another is refused, and the backend sees
// nothing of it.
func TestNoRequestIsSmuggledOverTLS(t *testing.T) {
	rec := pooltest.NewRecorder(t, health.DefaultUserAgent)
	site := newTLSSite(t, []string{"site.test"})
	cfg := testConfig(t, rec.URL)
	port := withTLS(t, cfg, site)
	r := start(t, cfg)
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: site.ca.Pool, ServerName: "site.test",
		NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	_, err = http.ReadResponse(br, nil)
	assert.Error(t, err, "nothing more: the connection is closed")
	assert.Empty(t, rec.Requests())
	assert.Equal(t, exitOK, r.stop(t))
}

// redirect_http turns the plain port into a redirect to the TLS port, and
// a reload turns it off again; the TLS port proxies throughout.
func TestRedirectHTTP(t *testing.T) {
	site := newTLSSite(t, []string{"site.test"})
	cfg := testConfig(t, protoBackend(t))
	port := withTLS(t, cfg, site)
	cfg["tls"].(map[string]any)["redirect_http"] = true
	r := start(t, cfg)
	c := newClient(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, err := http.NewRequest(method, r.proxyURL+"/a/b?c=d&e", nil)
		require.NoError(t, err)
		res, err := c.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusPermanentRedirect, res.StatusCode, method)
		assert.Equal(t, fmt.Sprintf("https://127.0.0.1:%d/a/b?c=d&e", port), res.Header.Get("Location"))
	}
	code, body := get(t, tlsClient(t, site.ca.Pool, "site.test", true), fmt.Sprintf("https://127.0.0.1:%d/", port))
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "HTTP/1.1 https", body)

	delete(cfg["tls"].(map[string]any), "redirect_http")
	rewrite(t, r, cfg)
	code, res := reload(t, newClient(t), r)
	require.Equal(t, http.StatusOK, code, "%v", res)
	assert.Equal(t, []any{"tls"}, res["settings_changed"])
	code, body = get(t, c, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "HTTP/1.1 http", body)
	assert.Equal(t, exitOK, r.stop(t))
}

func TestRedirectLocation(t *testing.T) {
	for _, tc := range []struct {
		host, uri string
		port      int
		want      string
	}{
		{"example.com", "/x?y", 443, "https://example.com/x?y"},
		{"example.com:8080", "/x", 8443, "https://example.com:8443/x"},
		{"[::1]:8080", "/", 443, "https://[::1]/"},
		{"example.com", "*", 443, "https://example.com/"},
	} {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("OPTIONS " + tc.uri + " HTTP/1.1\r\nHost: " + tc.host + "\r\n\r\n")))
		require.NoError(t, err)
		w := httptest.NewRecorder()
		redirectToHTTPS(w, req, tc.port)
		assert.Equal(t, http.StatusPermanentRedirect, w.Code)
		assert.Equal(t, tc.want, w.Header().Get("Location"), "%s %s", tc.host, tc.uri)
	}
}

// h2c makes the plain port take HTTP/2 with prior knowledge, as gRPC
// clients without TLS speak it; without it, the preface is refused.
func TestH2C(t *testing.T) {
	cfg := testConfig(t, protoBackend(t))
	cfg["h2c"] = true
	r := start(t, cfg)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	h2c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	code, body := get(t, h2c, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "HTTP/1.1 http", body)
	code, body = get(t, newClient(t), r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code, "HTTP/1.1 still")
	assert.Equal(t, "HTTP/1.1 http", body)
	assert.Equal(t, exitOK, r.stop(t))

	delete(cfg, "h2c")
	r = start(t, cfg)
	_, err := h2c.Get(r.proxyURL + "/")
	assert.Error(t, err, "no HTTP/2 on the plain port without h2c")
	assert.Equal(t, exitOK, r.stop(t))
}

// https backends are verified against backend_ca_file, spoken to in
// HTTP/2 when they offer it, and health-checked over TLS too; without the
// CA they are neither trusted nor brought up.
func TestBackendCAFile(t *testing.T) {
	ca := certstest.NewCA(t)
	certFile, keyFile := ca.Write(t, t.TempDir(), "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	backend := newTLSBackend(t, pair)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM, 0o644))

	cfg := testConfig(t, backend)
	r := start(t, cfg)
	waitAlive(t, r, backend, false)
	code, _ := get(t, newClient(t), r.proxyURL+"/")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not trusted: the system's roots do not know the test's CA")
	assert.Equal(t, exitOK, r.stop(t))

	cfg["backend_ca_file"] = caFile
	r = start(t, cfg)
	waitAlive(t, r, backend, true)
	code, body := get(t, newClient(t), r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "secure HTTP/2.0", body)
	assert.Equal(t, exitOK, r.stop(t))
}

// newTLSBackend serves "secure" and the protocol over TLS with pair,
// HTTP/2 offered.
func newTLSBackend(t *testing.T, pair tls.Certificate) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "secure %s", r.Proto)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitAlive waits until /status shows url alive (or not).
func waitAlive(t *testing.T, r *running, url string, alive bool) {
	t.Helper()
	c := newClient(t)
	require.Eventually(t, func() bool { // polled off the test goroutine: fails nothing
		st, err := fetchStatus(c, r)
		if err != nil {
			return false
		}
		b, ok := statusOf(st, url)
		return ok && b.Alive == alive
	}, 10*time.Second, 20*time.Millisecond, "%s never became alive=%v", url, alive)
}

// A certificate renewed in place under load, then a reload: the next
// handshake gets the new serial, connections already open go on, and no
// request fails. A renewal whose key does not match is refused, naming the
// entry, and the new certificate goes on serving.
func TestCertificateRenewalUnderLoad(t *testing.T) {
	site := newTLSSite(t, []string{"site.test"})
	certFile, keyFile := site.entries[0]["cert_file"], site.entries[0]["key_file"]
	cfg := testConfig(t, namedBackend(t, "a").URL)
	port := withTLS(t, cfg, site)
	r := start(t, cfg)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	url := "https://" + addr + "/"
	verify := &tls.Config{RootCAs: site.ca.Pool}
	old, err := handshake(t, addr, "site.test", verify)
	require.NoError(t, err)

	// Keep-alive HTTP/2 clients, and clients that shake hands afresh for
	// every request.
	var clients atomic.Int32
	load := startSteadyLoadWith(url, 6, func() *http.Transport {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: site.ca.Pool, ServerName: "site.test"}, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP1(true)
		if clients.Add(1)%2 == 0 {
			tr.Protocols.SetHTTP2(true)
		} else {
			tr.DisableKeepAlives = true
		}
		return tr
	})
	defer load.stop()
	time.Sleep(200 * time.Millisecond)

	serial := big.NewInt(424242)
	site.ca.Issue(t, certstest.Leaf{Names: []string{"site.test"}, Serial: serial}).WriteFiles(t, certFile, keyFile)
	code, res := reload(t, newClient(t), r)
	require.Equal(t, http.StatusOK, code, "%v", res)
	renewed, err := handshake(t, addr, "site.test", verify)
	require.NoError(t, err)
	assert.Equal(t, serial, renewed.SerialNumber, "the next handshake gets the new certificate")
	assert.NotEqual(t, old.SerialNumber, renewed.SerialNumber)
	time.Sleep(200 * time.Millisecond)

	// A half-done renewal: the key of another certificate.
	other := site.ca.Issue(t, certstest.Leaf{Names: []string{"site.test"}})
	require.NoError(t, os.WriteFile(keyFile, other.KeyPEM, 0o600))
	code, res = reload(t, newClient(t), r)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, fmt.Sprint(res["problems"]), "tls.certificates[0]: key_file")
	still, err := handshake(t, addr, "site.test", verify)
	require.NoError(t, err)
	assert.Equal(t, serial, still.SerialNumber, "the certificate in force goes on serving")
	time.Sleep(200 * time.Millisecond)

	load.stop()
	c := newClient(t)
	reloads, _ := scrape(t, c, r.adminURL, "switchyard_tls_certificate_reloads_total")
	assert.Equal(t, 1.0, reloads, "the good renewal; the bad one was refused with the reload")
	expiry, ok := scrape(t, c, r.adminURL, fmt.Sprintf(`switchyard_tls_certificate_expiry_timestamp_seconds{index="0",serial="%X"}`, serial))
	assert.True(t, ok)
	assert.InDelta(t, float64(renewed.NotAfter.Unix()), expiry, 1)
	handshakes, _ := scrape(t, c, r.adminURL, `switchyard_tls_handshakes_total{result="ok"}`)
	assert.Greater(t, handshakes, 3.0)
	assert.Zero(t, load.failures.Load(), "failed requests:\n%s", load.errs.String())
	assert.Greater(t, load.requests.Load(), int64(20))
	t.Logf("%d requests across the renewal, 0 failed", load.requests.Load())
	assert.Equal(t, exitOK, r.stop(t))
}

// -demo -tls serves HTTPS and HTTP/2 with a certificate it makes, and
// says how to try it.
func TestDemoTLS(t *testing.T) {
	backend := fmt.Sprintf("http://127.0.0.1:%d", pooltest.FreePort(t))
	port := pooltest.FreePort(t)
	r := start(t, testConfig(t, backend), "-demo", "-tls", "-tls-port", strconv.Itoa(port))
	assert.Contains(t, r.stdout.String(), fmt.Sprintf("curl -k --http2 https://localhost:%d/\n", port))

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(fmt.Sprintf("https://localhost:%d/hello", port))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "HTTP/2.0", res.Proto)
	assert.Contains(t, string(body), "GET /hello")
	assert.Equal(t, []string{"localhost"}, res.TLS.PeerCertificates[0].DNSNames)
	assert.Equal(t, exitOK, r.stop(t))

	var stdout, stderr pooltest.SyncBuffer
	assert.Equal(t, exitUsage, run(context.Background(), []string{"-config", writeConfig(t, testConfig(t)), "-tls"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-tls is for -demo")
}

// A reload changes certificates, min_version and redirect_http live;
// turning TLS on or off, or moving it, or h2c, takes a restart and is
// said so, and the TLS port goes on as it was.
func TestReloadTLSFields(t *testing.T) {
	site := newTLSSite(t, []string{"site.test"})
	cfg := testConfig(t)
	r := start(t, cfg)
	c := newClient(t)
	withTLS(t, cfg, site)
	cfg["h2c"] = true
	rewrite(t, r, cfg)
	code, res := reload(t, c, r)
	require.Equal(t, http.StatusOK, code, "%v", res)
	assert.ElementsMatch(t, []any{"tls", "h2c"}, res["restart_needed"])
	assert.Equal(t, exitOK, r.stop(t))

	delete(cfg, "h2c")
	r = start(t, cfg)
	port := cfg["tls"].(map[string]any)["port"].(int)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg["tls"] = map[string]any{"port": pooltest.FreePort(t), "certificates": site.entries, "min_version": "1.3"}
	rewrite(t, r, cfg)
	code, res = reload(t, c, r)
	require.Equal(t, http.StatusOK, code, "%v", res)
	assert.Equal(t, []any{"tls.port"}, res["restart_needed"])
	assert.Equal(t, []any{"tls"}, res["settings_changed"])
	_, err := handshake(t, addr, "site.test", &tls.Config{MaxVersion: tls.VersionTLS12})
	assert.Error(t, err, "min_version 1.3 in force, on the port bound at start")
	_, err = handshake(t, addr, "site.test", &tls.Config{RootCAs: site.ca.Pool})
	assert.NoError(t, err)
	assert.Equal(t, exitOK, r.stop(t))
}

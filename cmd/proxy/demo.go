package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool"
)

// demoAddresses returns the address to run a test backend on for each
// configured backend (one per address, whatever the paths). The test
// backends are plain HTTP on this machine: a backend elsewhere cannot be run
// here, and one on https would not be reached.
func demoAddresses(backends []pool.Spec) ([]string, error) {
	if len(backends) == 0 {
		return nil, errors.New("the config lists no backends to run")
	}
	var addrs []string
	for _, b := range backends {
		raw := b.URL
		u, err := url.Parse(raw) // already checked by pool.ParseURL
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("backend %s: the test backends speak plain http", raw)
		}
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("backend %s is not on this machine; -demo runs backends on localhost or 127.0.0.1 only", raw)
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if addr := net.JoinHostPort(u.Hostname(), port); !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// demoTLSConfig makes a self-signed certificate for localhost, writes it to
// dir and returns the TLS port's config for -demo -tls. The certificate is
// loaded as a configured one is, through the same checks.
func demoTLSConfig(dir string, port int) (*TLSConfig, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("-tls-port must be between 1 and 65535, got %d", port)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "switchyard demo"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	entry := certs.Entry{CertFile: filepath.Join(dir, "demo.pem"), KeyFile: filepath.Join(dir, "demo.key")}
	if err := os.WriteFile(entry.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(entry.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	set, err := certs.Load([]certs.Entry{entry}, now)
	if err != nil {
		return nil, err
	}
	return &TLSConfig{Port: port, Certificates: []certs.Entry{entry}, Set: set, MinVersion: tls.VersionTLS12}, nil
}

// printDemo tells a person running -demo what to try. The token itself is
// not printed: whoever set it knows it, and terminals get recorded.
func printDemo(w io.Writer, lns listeners, withToken bool) {
	_, proxyPort, _ := net.SplitHostPort(lns.proxy.Addr().String())
	auth := ""
	if withToken {
		auth = " -H 'Authorization: Bearer <admin_token>'"
	}
	fmt.Fprintf(w, `
switchyard demo: test backends on %[1]s, the proxy on port %[2]s, its admin API on %[3]s.
Try:
  curl localhost:%[2]s/
  curl 'localhost:%[2]s/?sleep=2s'
  curl%[5]s %[3]s/status
  open http://%[3]s/ in a browser: the status page
  curl%[5]s -X POST %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "http://localhost:8085"}'
  curl%[5]s -X DELETE %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "%[4]s"}'
A backend added with POST is used once a health check passes: start one with
  PORT=8085 go run ./cmd/testbackend
%[6]sCtrl-C stops everything.

`, strings.Join(lns.demoAddrs, ", "), proxyPort, lns.admin.Addr().String(), "http://"+lns.demoAddrs[0], auth, tlsLines(lns))
}

// tlsLines are -demo's instructions for the TLS port, if there is one.
func tlsLines(lns listeners) string {
	if lns.tls == nil {
		return ""
	}
	_, port, _ := net.SplitHostPort(lns.tls.mux.HTTP2().Addr().String())
	return fmt.Sprintf(`HTTPS and HTTP/2 on port %[1]s (-k: the demo's certificate is self-signed):
  curl -k --http2 https://localhost:%[1]s/
`, port)
}

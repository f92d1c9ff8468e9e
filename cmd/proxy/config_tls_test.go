package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// tlsFiles are certificate files for the tests of "tls": a good pair, an
// expired one, a key that belongs to another certificate, and a CA file.
type tlsFiles struct {
	ca                      *certstest.CA
	cert, key               string
	expiredCert, expiredKey string
	caFile                  string
}

func writeTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	f := tlsFiles{ca: ca}
	f.cert, f.key = ca.Write(t, dir, "localhost", "127.0.0.1")
	f.expiredCert, f.expiredKey = filepath.Join(dir, "old.pem"), filepath.Join(dir, "old.key")
	ca.Issue(t, certstest.Leaf{Names: []string{"old.test"}, NotBefore: time.Now().Add(-48 * time.Hour),
		NotAfter: time.Now().Add(-24 * time.Hour)}).WriteFiles(t, f.expiredCert, f.expiredKey)
	f.caFile = filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(f.caFile, ca.CertPEM, 0o644))
	return f
}

func TestProtocolFields(t *testing.T) {
	f := writeTLSFiles(t)
	cfg, err := loadConfig(fmt.Appendf(nil, `{"port": 8080, "h2c": true, "backend_ca_file": %q,
		"tls": {"port": 8443, "certificates": [{"cert_file": %q, "key_file": %q}], "min_version": "1.3", "redirect_http": true}}`,
		f.caFile, f.cert, f.key), noEnv)
	require.NoError(t, err)
	assert.True(t, cfg.H2C)
	assert.Equal(t, f.caFile, cfg.BackendCAFile)
	assert.True(t, cfg.BackendCAs.Equal(f.ca.Pool), "the CA file's certificates")
	require.NotNil(t, cfg.TLS)
	assert.Equal(t, 8443, cfg.TLS.Port)
	assert.Equal(t, uint16(tls.VersionTLS13), cfg.TLS.MinVersion)
	assert.True(t, cfg.TLS.RedirectHTTP)
	assert.Equal(t, []certs.Entry{{CertFile: f.cert, KeyFile: f.key}}, cfg.TLS.Certificates)
	require.NotNil(t, cfg.TLS.Set, "loaded while checking")
	assert.Equal(t, []string{"localhost"}, cfg.TLS.Set.Certificates()[0].Names)
	assertRoundTrips(t, cfg)

	// Left out: no TLS port, HTTP/1.1 only on port, the system's roots.
	cfg, err = loadConfig([]byte(`{"port": 8080}`), noEnv)
	require.NoError(t, err)
	assert.Nil(t, cfg.TLS)
	assert.False(t, cfg.H2C)
	assert.Nil(t, cfg.BackendCAs)
	// min_version defaults to 1.2.
	cfg, err = loadConfig(fmt.Appendf(nil, `{"port": 8080, "tls": {"port": 8443, "certificates": [{"cert_file": %q, "key_file": %q}]}}`,
		f.cert, f.key), noEnv)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.TLS.MinVersion)
	assert.False(t, cfg.TLS.RedirectHTTP)
}

// Every bad part of "tls" is named, down to the certificate entry, and
// all of them at once.
func TestBadProtocolFields(t *testing.T) {
	f := writeTLSFiles(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o644))
	entry := func(cert, key string) string {
		b, _ := json.Marshal(certs.Entry{CertFile: cert, KeyFile: key})
		return string(b)
	}
	for _, tc := range []struct {
		name, file string
		wants      []string
	}{
		{"no port", `{"port": 8080, "tls": {"certificates": [` + entry(f.cert, f.key) + `]}}`,
			[]string{"tls.port: missing"}},
		{"same port", `{"port": 8080, "tls": {"port": 8080, "certificates": [` + entry(f.cert, f.key) + `]}}`,
			[]string{"tls.port: port 8080 is also the proxy's plain port"}},
		{"admin's port", `{"port": 8080, "tls": {"port": 8081, "certificates": [` + entry(f.cert, f.key) + `]}}`,
			[]string{"tls.port: port 8081 is also admin_addr's"}},
		{"bad version", `{"port": 8080, "tls": {"port": 8443, "min_version": "1.1", "certificates": [` + entry(f.cert, f.key) + `]}}`,
			[]string{`tls.min_version: must be "1.2" or "1.3", got "1.1"`}},
		{"no certificates", `{"port": 8080, "tls": {"port": 8443}}`,
			[]string{"tls.certificates: missing"}},
		{"unknown field", `{"port": 8080, "tls": {"port": 8443, "cert": "x", "certificates": [` + entry(f.cert, f.key) + `]}}`,
			[]string{"tls: ", "cert"}},
		{"bad entries", `{"port": 8080, "tls": {"port": 8443, "certificates": [` + strings.Join([]string{
			entry(f.cert, f.key), entry("/nonexistent/site.pem", f.key), entry(f.expiredCert, f.expiredKey),
			entry(f.cert, f.expiredKey)}, ", ") + `]}}`,
			[]string{`tls.certificates[1]: cert_file "/nonexistent/site.pem"`, `tls.certificates[2]: `, `expired`,
				`tls.certificates[3]: `}},
		{"missing CA file", `{"port": 8080, "backend_ca_file": "/nonexistent/ca.pem"}`,
			[]string{"backend_ca_file: ", "/nonexistent/ca.pem"}},
		{"CA file without certificates", `{"port": 8080, "backend_ca_file": "` + garbage + `"}`,
			[]string{"backend_ca_file: ", "holds no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig([]byte(tc.file), noEnv)
			require.Error(t, err)
			for _, want := range tc.wants {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// -check passes a certificate that still serves but needs a person, and
// says why on stderr, as nginx -t does: one that expires within a week,
// and one no client can be given (no DNS name, not the first).
func TestCheckWarnsOfCertificates(t *testing.T) {
	f := writeTLSFiles(t)
	dir := t.TempDir()
	soon, soonKey := filepath.Join(dir, "soon.pem"), filepath.Join(dir, "soon.key")
	f.ca.Issue(t, certstest.Leaf{Names: []string{"soon.test"}, NotAfter: time.Now().Add(48 * time.Hour)}).WriteFiles(t, soon, soonKey)
	nameless, namelessKey := filepath.Join(dir, "ip.pem"), filepath.Join(dir, "ip.key")
	f.ca.Issue(t, certstest.Leaf{Names: []string{"127.0.0.2"}}).WriteFiles(t, nameless, namelessKey)
	cfg := writeConfig(t, map[string]any{"port": 8080, "tls": map[string]any{"port": 8443, "certificates": []any{
		map[string]string{"cert_file": f.cert, "key_file": f.key},
		map[string]string{"cert_file": soon, "key_file": soonKey},
		map[string]string{"cert_file": nameless, "key_file": namelessKey},
	}}})
	var stdout, stderr strings.Builder
	assert.Equal(t, exitOK, run(t.Context(), []string{"-check", "-config", cfg}, &stdout, &stderr))
	assert.Equal(t, "config "+cfg+": ok\n", stdout.String())
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Len(t, lines, 2, stderr.String())
	assert.Contains(t, lines[0], cfg+": warning: tls.certificates[1]: ")
	assert.Contains(t, lines[0], "expires on")
	assert.Contains(t, lines[1], cfg+": warning: tls.certificates[2]: ")
	assert.Contains(t, lines[1], "no DNS names")
}

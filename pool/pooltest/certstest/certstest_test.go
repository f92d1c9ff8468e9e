package certstest_test

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// TestMain checks that no test leaves a goroutine behind: the TLS test
// shakes hands on one.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteMakesAPairThatVerifiesForEveryName(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, roots := certstest.Write(t, dir, "backend.test", "*.pool.test", "127.0.0.1", "::1")
	assert.Equal(t, dir, filepath.Dir(certFile))
	assert.Equal(t, dir, filepath.Dir(keyFile))
	fi, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a key file readable by its owner alone")

	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	for _, name := range []string{"backend.test", "a.pool.test", "127.0.0.1", "::1"} {
		_, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots})
		assert.NoError(t, err, name)
	}
	_, err = pair.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots})
	assert.Error(t, err)
	_, err = pair.Leaf.Verify(x509.VerifyOptions{DNSName: "backend.test", Roots: x509.NewCertPool()})
	assert.Error(t, err, "trusted through the pool only")

	// Two calls: two files, two CAs.
	certFile2, _, roots2 := certstest.Write(t, dir, "backend.test")
	assert.NotEqual(t, certFile, certFile2)
	assert.NotSame(t, roots, roots2)
}

func TestIssueFollowsTheLeaf(t *testing.T) {
	ca := certstest.NewCA(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	p := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, Key: certstest.RSA,
		NotBefore: start, NotAfter: start.Add(time.Hour), Serial: big.NewInt(7)})
	assert.Equal(t, "7", p.Cert.SerialNumber.String())
	assert.True(t, start.Equal(p.Cert.NotBefore))
	assert.True(t, start.Add(time.Hour).Equal(p.Cert.NotAfter))
	assert.Equal(t, x509.RSA, p.Cert.PublicKeyAlgorithm)
	_, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	assert.NoError(t, err)

	d := ca.Issue(t, certstest.Leaf{Names: []string{"b.test"}})
	assert.Equal(t, x509.ECDSA, d.Cert.PublicKeyAlgorithm)
	assert.WithinDuration(t, time.Now().Add(certstest.DefaultValidity), d.Cert.NotAfter, time.Minute)
	assert.NoError(t, d.Cert.CheckSignatureFrom(ca.Cert))
}

// TLSCertificate is the pair as a TLS server serves it: a client that
// trusts the CA, and only it, verifies it for the leaf's name.
func TestTLSCertificateServesThePair(t *testing.T) {
	ca := certstest.NewCA(t)
	p := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
	c := p.TLSCertificate()
	assert.Same(t, p.Cert, c.Leaf)
	assert.Equal(t, p.Key, c.PrivateKey)

	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	srv := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{c}})
	handshaken := make(chan error, 1)
	go func() { handshaken <- srv.Handshake() }() // waited for below
	cli := tls.Client(client, &tls.Config{ServerName: "a.test", RootCAs: ca.Pool})
	require.NoError(t, cli.Handshake())
	require.NoError(t, <-handshaken)
	assert.Equal(t, p.Cert.Raw, cli.ConnectionState().PeerCertificates[0].Raw)
}

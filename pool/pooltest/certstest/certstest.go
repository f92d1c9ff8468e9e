// Package certstest makes certificates for tests: a certificate authority of
// the test's own, leaf certificates signed by it for the names a test needs,
// and files holding them, so that tests of TLS servers and clients need no
// key checked into the repository and no certificate that expires one day.
//
// The simplest use is Write, which makes a CA, one leaf for the names given
// and the two files, and returns the pool a client trusts:
//
//	certFile, keyFile, roots := certstest.Write(t, t.TempDir(), "backend.test", "127.0.0.1")
//
// Validity is counted from time.Now when a certificate is made. Inside a
// testing/synctest bubble that is the bubble's clock (which starts in 2000),
// so make the certificates in the bubble that uses them.
//
// Goroutines: the package starts none.
package certstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeyType is the kind of key a leaf is made with.
type KeyType int

const (
	// ECDSA is a P-256 key, the default.
	ECDSA KeyType = iota
	// RSA is a 2048-bit RSA key. Every RSA leaf made without a Signer
	// shares one key per process, because making one costs tens of
	// milliseconds (far more under the race detector); give Signer a key
	// of its own where a test needs two different RSA keys.
	RSA
)

// String names the key type as it appears in test names.
func (k KeyType) String() string {
	if k == RSA {
		return "RSA"
	}
	return "ECDSA"
}

// DefaultValidity is how long a leaf made with a zero NotAfter stays valid:
// as long as a Let's Encrypt certificate, and well outside the window in
// which the certs package warns about a certificate's coming expiry.
const DefaultValidity = 90 * 24 * time.Hour

// A CA is a self-signed certificate authority that signs leaves.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM-encoded.
	CertPEM []byte
	// Key signs the leaves.
	Key crypto.Signer
	// Pool holds Cert alone: give it to clients as tls.Config.RootCAs so
	// that they verify the leaves this CA signs.
	Pool *x509.CertPool
}

// NewCA makes a CA with an ECDSA P-256 key, valid from an hour ago for ten
// years. It fails the test if anything goes wrong.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certstest: CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "switchyard test CA", Organization: []string{"switchyard tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("certstest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certstest: CA certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:     key,
		Pool:    pool,
	}
}

// A Leaf says what certificate to make. The zero value is an ECDSA
// certificate with no names, valid from an hour ago for DefaultValidity.
type Leaf struct {
	// Names are the certificate's subject alternative names: each one that
	// parses as an IP address becomes an IP SAN, every other one a DNS SAN
	// (wildcards such as "*.example.test" included). The first is also the
	// subject's common name, for people reading the certificate; clients
	// match only the SANs.
	Names []string
	// Key is the kind of key made when Signer is nil.
	Key KeyType
	// Signer is the leaf's key; nil means a new one of type Key.
	Signer crypto.Signer
	// NotBefore and NotAfter bound the validity. Zero means an hour before
	// now, and DefaultValidity after now.
	NotBefore, NotAfter time.Time
	// Serial is the serial number; nil means a random one of 127 bits.
	Serial *big.Int
}

// A Pair is a certificate with its key.
type Pair struct {
	// Cert is the leaf certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
	// CertPEM is the certificate, PEM-encoded: the leaf alone, since the CA
	// is the root the client trusts.
	CertPEM []byte
	// KeyPEM is the key, PEM-encoded as PKCS #8 ("PRIVATE KEY").
	KeyPEM []byte
}

// Issue makes a leaf certificate signed by ca, for server and client
// authentication. It fails the test if anything goes wrong.
func (ca *CA) Issue(t testing.TB, l Leaf) Pair {
	t.Helper()
	key := l.Signer
	if key == nil {
		key = newKey(t, l.Key)
	}
	now := time.Now()
	if l.NotBefore.IsZero() {
		l.NotBefore = now.Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = now.Add(DefaultValidity)
	}
	if l.Serial == nil {
		l.Serial = serial(t)
	}
	tmpl := &x509.Certificate{
		SerialNumber: l.Serial,
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		// TLS 1.2's RSA key exchange encrypts to the key; ECDHE_RSA, which
		// Go offers, only signs. Allowing both keeps the leaf usable by any
		// client a test may build.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for i, n := range l.Names {
		if i == 0 {
			tmpl.Subject.CommonName = n
		}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("certstest: leaf certificate for %q: %v", l.Names, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certstest: leaf certificate for %q: %v", l.Names, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certstest: leaf key for %q: %v", l.Names, err)
	}
	return Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// TLSCertificate returns p as a tls.Config takes it, for a server or a
// client in the test's own process: the leaf alone, as CertPEM holds it,
// with Leaf already parsed.
func (p Pair) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// WriteFiles writes p's certificate to certFile and its key to keyFile (mode
// 0600), in place: each file is truncated and rewritten, as an editor or a
// careless renewal script would, not replaced by a rename.
func (p Pair) WriteFiles(t testing.TB, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(certFile, p.CertPEM, 0o644); err != nil {
		t.Fatalf("certstest: %v", err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatalf("certstest: %v", err)
	}
}

// Write makes a leaf for names, signed by ca, and writes it to two new files
// in dir, named after the first name. It returns their paths.
func (ca *CA) Write(t testing.TB, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	base := "cert"
	if len(names) > 0 {
		base = fileName.Replace(names[0])
	}
	certFile, keyFile = newFile(t, dir, base+"-*.pem"), newFile(t, dir, base+"-*.key")
	ca.Issue(t, Leaf{Names: names}).WriteFiles(t, certFile, keyFile)
	return certFile, keyFile
}

// Write makes a new CA and a leaf it signs for names (DNS names or IP
// addresses), writes the leaf's certificate and key to two new files in dir
// and returns their paths and the pool that trusts the CA, for a client's
// tls.Config.RootCAs.
func Write(t testing.TB, dir string, names ...string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	ca := NewCA(t)
	certFile, keyFile = ca.Write(t, dir, names...)
	return certFile, keyFile, ca.Pool
}

// fileName makes a name (a wildcard, an IPv6 address) fit for a file name.
var fileName = strings.NewReplacer("*", "wildcard", "/", "_", ":", "_")

// newFile creates an empty file in dir whose name follows pattern, as
// os.CreateTemp does, and returns its path.
func newFile(t testing.TB, dir, pattern string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatalf("certstest: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("certstest: %v", err)
	}
	return filepath.Clean(f.Name())
}

// sharedRSAKey is made once: see RSA.
var sharedRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

func newKey(t testing.TB, k KeyType) crypto.Signer {
	t.Helper()
	if k == RSA {
		key, err := sharedRSAKey()
		if err != nil {
			t.Fatalf("certstest: RSA key: %v", err)
		}
		return key
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certstest: ECDSA key: %v", err)
	}
	return key
}

// serial is random, as RFC 5280 section 4.1.2.2 asks of a CA, so that two
// certificates made in one test never share one.
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certstest: serial number: %v", err)
	}
	return n.Add(n, big.NewInt(1)) // positive, never zero
}

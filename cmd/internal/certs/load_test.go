package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

func TestParseMinVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS12, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		got, err := certs.ParseMinVersion(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"1.0", "1.1", "TLS1.2", "1.4", "12", " 1.2"} {
		_, err := certs.ParseMinVersion(in)
		assert.ErrorIs(t, err, certs.ErrMinVersion, in)
		assert.EqualError(t, err, fmt.Sprintf(`certs: invalid min_version: must be "1.2" or "1.3", got %q`, in))
	}
}

func TestLoadNoCertificates(t *testing.T) {
	_, err := certs.Load(nil, time.Now())
	assert.ErrorIs(t, err, certs.ErrNoCertificates)
	assert.Nil(t, certs.EntryErrors(err), "no entry to blame")
	assert.Nil(t, certs.EntryErrors(nil))
}

// entryErrors splits Load's error into its entries' errors.
func entryErrors(t *testing.T, err error) map[int]*certs.EntryError {
	t.Helper()
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "Load's error joins the entries' errors: %v", err)
	out := map[int]*certs.EntryError{}
	for _, e := range joined.Unwrap() {
		var ee *certs.EntryError
		require.ErrorAs(t, e, &ee)
		require.NotContains(t, out, ee.Index, "one error per entry")
		out[ee.Index] = ee
		assert.ErrorIs(t, e, certs.ErrInvalid)
		assert.Equal(t, fmt.Sprintf("certs: certificates[%d]: %v", ee.Index, ee.Err), e.Error())
	}
	return out
}

func TestLoadReportsEveryBadEntryNamingIt(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	now := time.Now()
	good := files(t, dir, "good", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}}))

	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not a certificate\n"), 0o644))

	mismatch := good
	other := files(t, dir, "other", ca.Issue(t, certstest.Leaf{Names: []string{"c.test"}}))
	mismatch.KeyFile = other.KeyFile

	expiredAt := now.Add(-48 * time.Hour).Truncate(time.Second)
	expired := files(t, dir, "expired", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"},
		NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: expiredAt}))
	validFrom := now.Add(48 * time.Hour).Truncate(time.Second)
	future := files(t, dir, "future", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"},
		NotBefore: validFrom, NotAfter: now.Add(90 * 24 * time.Hour)}))

	encrypted := filepath.Join(dir, "encrypted.key")
	require.NoError(t, os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600))

	// A chain file that begins with the CA: the key matches the leaf,
	// which is second.
	caFirst := filepath.Join(dir, "ca-first.pem")
	require.NoError(t, os.WriteFile(caFirst, append(append([]byte{}, ca.CertPEM...), readFile(t, good.CertFile)...), 0o644))

	entries := []certs.Entry{
		0:  good,
		1:  {CertFile: filepath.Join(dir, "missing.pem"), KeyFile: filepath.Join(dir, "missing.key")},
		2:  {CertFile: garbage, KeyFile: good.KeyFile},
		3:  {CertFile: good.KeyFile, KeyFile: good.CertFile}, // swapped
		4:  mismatch,
		5:  expired,
		6:  future,
		7:  {CertFile: good.CertFile, KeyFile: encrypted},
		8:  {CertFile: "", KeyFile: good.KeyFile},
		9:  {CertFile: caFirst, KeyFile: good.KeyFile},
		10: {CertFile: dir, KeyFile: good.KeyFile},
		11: {CertFile: good.CertFile, KeyFile: garbage},
	}
	_, err := certs.Load(entries, now)
	errs := entryErrors(t, err)
	require.Len(t, errs, len(entries)-1, "every entry but the first is bad")
	assert.NotContains(t, errs, 0)

	q := func(s string) string { return fmt.Sprintf("%q", s) }
	want := map[int]string{
		1: "cert_file " + q(entries[1].CertFile) + ": file does not exist; key_file " + q(entries[1].KeyFile) + ": file does not exist",
		2: "cert_file " + q(garbage) + ": not PEM: no -----BEGIN CERTIFICATE----- block in it",
		3: "cert_file " + q(good.KeyFile) + ": holds a private key, not a certificate (are cert_file and key_file swapped?); " +
			"key_file " + q(good.CertFile) + ": holds a certificate, not a private key (are cert_file and key_file swapped?)",
		4:  "key_file " + q(other.KeyFile) + ": does not match the certificate in cert_file " + q(good.CertFile),
		5:  "cert_file " + q(expired.CertFile) + ": expired on " + expiredAt.UTC().Format("2006-01-02 15:04:05") + " UTC",
		6:  "cert_file " + q(future.CertFile) + ": not valid until " + validFrom.UTC().Format("2006-01-02 15:04:05") + " UTC",
		7:  "key_file " + q(encrypted) + ": the key is encrypted: give it unencrypted (the proxy has no way to ask for a passphrase)",
		8:  "cert_file is required",
		9:  "key_file " + q(good.KeyFile) + ": does not match the certificate in cert_file " + q(caFirst) + " (the file begins with a CA certificate: give the full chain, the server's own certificate first)",
		10: "cert_file " + q(dir) + ": not a regular file",
		11: "key_file " + q(garbage) + ": not PEM: no -----BEGIN PRIVATE KEY----- block in it",
	}
	for i, w := range want {
		if assert.Contains(t, errs, i) {
			assert.EqualError(t, errs[i].Err, w, "certificates[%d]", i)
			assert.Equal(t, entries[i], errs[i].Entry)
		}
	}
	assert.ErrorIs(t, errs[1], fs.ErrNotExist, "the cause stays wrapped")
	if ees := certs.EntryErrors(err); assert.Len(t, ees, len(entries)-1) {
		assert.Equal(t, 1, ees[0].Index, "in list order")
		assert.Equal(t, 11, ees[len(ees)-1].Index)
	}
	assert.ErrorIs(t, err, certs.ErrInvalid)
}

func TestLoadAcceptsTheKeyEncodingsInTheWild(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}

	// SEC 1 "EC PRIVATE KEY" after an "EC PARAMETERS" block, as
	// `openssl ecparam -genkey` writes it.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecPair := ca.Issue(t, certstest.Leaf{Names: []string{"ec.test"}, Signer: ec})
	sec1, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	ecEntry := certs.Entry{
		CertFile: write("ec.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ecPair.Cert.Raw}),
		KeyFile: write("ec.key", &pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}},
			&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
	}

	// PKCS #1 "RSA PRIVATE KEY".
	rsaPair := ca.Issue(t, certstest.Leaf{Names: []string{"rsa.test"}, Key: certstest.RSA})
	rsaEntry := certs.Entry{
		CertFile: write("rsa.pem", &pem.Block{Type: "CERTIFICATE", Bytes: rsaPair.Cert.Raw}),
		KeyFile:  write("rsa.key", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPair.Key.(*rsa.PrivateKey))}),
	}

	// One file holding the chain (leaf, then the CA as an intermediate
	// would be) and the key, named as both files.
	combined := write("combined.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ecPair.Cert.Raw},
		&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}, &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	combinedEntry := certs.Entry{CertFile: combined, KeyFile: combined}

	set := load(t, ecEntry, rsaEntry, combinedEntry)
	infos := set.Certificates()
	require.Len(t, infos, 3)
	assert.Equal(t, "ECDSA P-256", infos[0].Key)
	assert.Equal(t, "RSA 2048", infos[1].Key)
	assert.Equal(t, []string{"rsa.test"}, infos[1].Names)
	assert.Equal(t, fmt.Sprintf("%X", rsaPair.Cert.SerialNumber), infos[1].Serial)
	assert.Equal(t, rsaPair.Cert.NotAfter, infos[1].NotAfter)
	assert.Equal(t, combinedEntry, infos[2].Entry)

	hello := &tls.ClientHelloInfo{ServerName: "ec.test"}
	got := set.Select(hello)
	assert.Len(t, got.Certificate, 1, "the first entry for ec.test is served, with its one certificate")
	assert.Equal(t, []certs.Entry{ecEntry, rsaEntry, combinedEntry}, set.Entries())
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	now := time.Now()
	soonAt := now.Add(3 * 24 * time.Hour).Truncate(time.Second)
	entries := []certs.Entry{
		files(t, dir, "fine", ca.Issue(t, certstest.Leaf{Names: []string{"fine.test"}})),
		files(t, dir, "soon", ca.Issue(t, certstest.Leaf{Names: []string{"soon.test"}, NotAfter: soonAt})),
		files(t, dir, "ip", ca.Issue(t, certstest.Leaf{Names: []string{"127.0.0.1"}})),
	}
	set, err := certs.Load(entries, now)
	require.NoError(t, err, "a certificate expiring soon is a warning, not an error")
	assert.True(t, soonAt.Equal(set.NotAfter()), "the soonest expiry: %v", set.NotAfter())

	ws := set.Warnings(now)
	require.Len(t, ws, 2)
	assert.Equal(t, 1, ws[0].Index)
	assert.ErrorIs(t, ws[0], certs.ErrExpiringSoon)
	assert.NotErrorIs(t, ws[0], certs.ErrInvalid)
	assert.Equal(t, fmt.Sprintf("certs: certificates[1]: cert_file %q: expires on %s UTC, in 72h0m0s", entries[1].CertFile,
		soonAt.UTC().Format("2006-01-02 15:04:05")), ws[0].Error())
	assert.Equal(t, 2, ws[1].Index)
	assert.ErrorIs(t, ws[1], certs.ErrUnreachable, "no DNS name and not the default: never served")

	later := set.Warnings(soonAt.Add(time.Minute))
	require.NotEmpty(t, later)
	assert.Contains(t, later[0].Error(), "expired on", "a Set kept past its certificate's expiry says so")
	// Without DNS names the first certificate is still the default, and so
	// is a later one with the same (no) names: the same site, another key.
	rsa := files(t, dir, "ip-rsa", ca.Issue(t, certstest.Leaf{Names: []string{"127.0.0.1"}, Key: certstest.RSA}))
	assert.Empty(t, load(t, entries[2], rsa, entries[0]).Warnings(now))
}

func TestLoadRefusesHugeFiles(t *testing.T) {
	dir := t.TempDir()
	good := certstest.NewCA(t)
	e := files(t, dir, "a", good.Issue(t, certstest.Leaf{Names: []string{"a.test"}}))
	big := filepath.Join(dir, "big.pem")
	require.NoError(t, os.WriteFile(big, make([]byte, 1<<20+1), 0o644))
	_, err := certs.Load([]certs.Entry{{CertFile: big, KeyFile: e.KeyFile}}, time.Now())
	errs := entryErrors(t, err)
	assert.EqualError(t, errs[0].Err, fmt.Sprintf("cert_file %q: larger than 1024 KiB: not a certificate or key file", big))
}

func TestEntryErrorUnwrapsToTheCause(t *testing.T) {
	_, err := certs.Load([]certs.Entry{{CertFile: "/nonexistent/a.pem", KeyFile: "/nonexistent/a.key"}}, time.Now())
	assert.True(t, errors.Is(err, fs.ErrNotExist))
	var ee *certs.EntryError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 0, ee.Index)
}

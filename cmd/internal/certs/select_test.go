package certs_test

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// The list the selection tests serve, by index.
const (
	aECDSA    = iota // a.test: the default
	bWildcard        // *.b.test
	cECDSA           // c.test
	cRSA             // c.test, for clients without ECDSA
	aRSA             // a.test again: the default's RSA twin
	xExact           // x.b.test, also matched by *.b.test
)

// selection builds a Store over the list above, and a server using it.
func selection(t *testing.T) (addr string, ca *certstest.CA, serials map[int]string) {
	t.Helper()
	dir := t.TempDir()
	ca = certstest.NewCA(t)
	leaves := []certstest.Leaf{
		aECDSA:    {Names: []string{"a.test"}},
		bWildcard: {Names: []string{"*.b.test"}},
		cECDSA:    {Names: []string{"c.test"}},
		cRSA:      {Names: []string{"c.test"}, Key: certstest.RSA},
		aRSA:      {Names: []string{"a.test"}, Key: certstest.RSA},
		xExact:    {Names: []string{"x.b.test"}},
	}
	serials = map[int]string{}
	var entries []certs.Entry
	for i, l := range leaves {
		p := ca.Issue(t, l)
		serials[i] = p.Cert.SerialNumber.String()
		entries = append(entries, files(t, dir, l.Names[0]+"-"+l.Key.String(), p))
	}
	store, _ := newStore(t, certs.Config{}, entries...)
	return serve(t, store.TLSConfig(0)), ca, serials
}

func TestSNISelectsTheCertificateOverRealHandshakes(t *testing.T) {
	addr, _, serials := selection(t)
	// A TLS 1.2 client offering only suites: the suite says which kind of
	// key it can use (in TLS 1.3 every client takes both).
	tls12 := func(serverName string, suites ...uint16) *tls.Config {
		c := client(serverName)
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = suites
		return c
	}
	const rsaOnly, ecdsaOnly = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	cases := []struct {
		name string
		cfg  *tls.Config
		want int
	}{
		{"exact name", client("a.test"), aECDSA},
		{"exact name, any case", client("C.Test"), cECDSA},
		{"wildcard: one label", client("y.b.test"), bWildcard},
		{"exact beats wildcard", client("x.b.test"), xExact},
		{"wildcard: not two labels", client("z.y.b.test"), aECDSA},
		{"wildcard: not the bare domain", client("b.test"), aECDSA},
		{"unknown name: the default", client("unknown.test"), aECDSA},
		{"no SNI: the default", client(""), aECDSA},
		{"RSA-only client: the RSA twin", tls12("c.test", rsaOnly), cRSA},
		{"ECDSA-only client", tls12("c.test", ecdsaOnly), cECDSA},
		{"RSA-only client without SNI: the default's RSA twin", tls12("", rsaOnly), aRSA},
		{"RSA-only client, unknown name: the default's RSA twin", tls12("unknown.test", rsaOnly), aRSA},
		{"TLS 1.2, both kinds: the first listed", tls12("c.test", rsaOnly, ecdsaOnly), cECDSA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := served(addr, c.cfg)
			require.NoError(t, err)
			assert.Equal(t, serials[c.want], got.SerialNumber.String())
		})
	}
}

func TestServedChainVerifies(t *testing.T) {
	addr, ca, serials := selection(t)
	for name, want := range map[string]int{"y.b.test": bWildcard, "a.test": aECDSA, "c.test": cECDSA} {
		got, err := served(addr, &tls.Config{ServerName: name, RootCAs: ca.Pool})
		if assert.NoError(t, err, name) {
			assert.Equal(t, serials[want], got.SerialNumber.String(), name)
		}
	}
	_, err := served(addr, &tls.Config{ServerName: "z.y.b.test", RootCAs: ca.Pool})
	assert.Error(t, err, "the default is served for an unknown name, and a verifying client refuses it")
}

func TestSelectNormalisesTheName(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	a := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
	b := ca.Issue(t, certstest.Leaf{Names: []string{"*.B.Test."}}) // as some CAs' tools write them
	set := load(t, files(t, dir, "a", a), files(t, dir, "b", b))
	for name, want := range map[string]certstest.Pair{
		"a.test.":   a,
		"A.TEST":    a,
		"x.b.test":  b,
		"X.B.TEST.": b,
		".b.test":   a, // an empty label is no label
		"b.test":    a,
		"*.b.test":  b, // a literal asterisk is a label, as crypto/x509 sees it
	} {
		got := set.Select(&tls.ClientHelloInfo{ServerName: name})
		assert.Equal(t, want.Cert.Raw, got.Certificate[0], name)
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	store, _ := newStore(t, certs.Config{}, files(t, dir, "a", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})))

	cfg := store.TLSConfig(tls.VersionTLS13)
	assert.Equal(t, []string{"h2", "http/1.1"}, cfg.NextProtos)
	addr := serve(t, cfg)
	c, err := dial(addr, &tls.Config{ServerName: "a.test", RootCAs: ca.Pool, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	assert.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	assert.Equal(t, uint16(tls.VersionTLS13), c.ConnectionState().Version)
	c.Close()
	_, err = dial(addr, &tls.Config{ServerName: "a.test", RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12})
	assert.Error(t, err, "min_version 1.3 refuses TLS 1.2")

	assert.Equal(t, uint16(tls.VersionTLS12), store.TLSConfig(0).MinVersion)
	assert.Panics(t, func() { store.TLSConfig(tls.VersionTLS11) })
	assert.NotSame(t, store.TLSConfig(0), store.TLSConfig(0), "a new Config each call")
}

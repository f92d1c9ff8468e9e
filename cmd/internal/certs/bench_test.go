package certs_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// benchList writes n certificates: n0.test (also *.w.test), n1.test, ...,
// and, when n is 3 or more, the last is an RSA twin of the one before it,
// so that a lookup of that name has two candidates to choose between.
func benchList(b *testing.B, n int) []certs.Entry {
	b.Helper()
	dir := b.TempDir()
	ca := certstest.NewCA(b)
	var entries []certs.Entry
	for i := range n {
		names := []string{fmt.Sprintf("n%d.test", i)}
		if i == 0 {
			names = append(names, "*.w.test")
		}
		e := certs.Entry{CertFile: filepath.Join(dir, fmt.Sprintf("%d.pem", i)), KeyFile: filepath.Join(dir, fmt.Sprintf("%d.key", i))}
		leaf := certstest.Leaf{Names: names}
		if n >= 3 && i == n-1 {
			leaf = certstest.Leaf{Names: []string{fmt.Sprintf("n%d.test", n-2)}, Key: certstest.RSA}
		}
		ca.Issue(b, leaf).WriteFiles(b, e.CertFile, e.KeyFile)
		entries = append(entries, e)
	}
	return entries
}

// goHello is what a Go 1.26 client offers, near enough: TLS 1.3 and 1.2,
// ECDSA and RSA-PSS signatures.
func goHello(serverName string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        serverName,
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		CipherSuites: []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.Ed25519, tls.PSSWithSHA256,
			tls.ECDSAWithP384AndSHA384, tls.PSSWithSHA384, tls.PKCS1WithSHA256},
		SupportedPoints: []uint8{0},
	}
}

// BenchmarkGetCertificate is the cost a handshake pays to the store, by the
// size of the list and the kind of match.
func BenchmarkGetCertificate(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		store, err := certs.NewStore(mustLoad(b, benchList(b, n)), certs.Config{})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ kind, name string }{
			{"exact", "n0.test"},
			{"wildcard", "x.w.test"},
			{"unknown", "nowhere.test"},
			{"noSNI", ""},
			{"twoCandidates", fmt.Sprintf("n%d.test", n-2)},
			{"upperCase", "N0.TEST"},
		} {
			if c.kind == "twoCandidates" && n < 3 {
				continue
			}
			hello := goHello(c.name)
			b.Run(fmt.Sprintf("certs=%d/%s", n, c.kind), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := store.GetCertificate(hello); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGetCertificateParallel shows that handshakes do not contend on
// the store: the Set in force is one atomic load away.
func BenchmarkGetCertificateParallel(b *testing.B) {
	store, err := certs.NewStore(mustLoad(b, benchList(b, 100)), certs.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		hello := goHello("n50.test")
		for pb.Next() {
			_, _ = store.GetCertificate(hello)
		}
	})
}

// BenchmarkLoad is what a reload costs, by the size of the list: every
// file read and parsed, every pair checked. Run's look at unchanged files
// costs the reading alone (BenchmarkLook, in the package's own tests).
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		entries := benchList(b, n)
		b.Run(fmt.Sprintf("certs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				mustLoad(b, entries)
			}
		})
	}
}

// BenchmarkHandshake puts GetCertificate's cost beside a whole TLS 1.3
// handshake's (in memory, ECDSA P-256, 100 certificates in the list).
func BenchmarkHandshake(b *testing.B) {
	store, err := certs.NewStore(mustLoad(b, benchList(b, 100)), certs.Config{})
	if err != nil {
		b.Fatal(err)
	}
	srvCfg := store.TLSConfig(0)
	cliCfg := &tls.Config{ServerName: "n50.test", InsecureSkipVerify: true}
	b.ReportAllocs()
	for b.Loop() {
		c, s := net.Pipe()
		done := make(chan error, 1)
		// This iteration waits for it.
		go func() { done <- tls.Server(s, srvCfg).Handshake() }()
		if err := tls.Client(c, cliCfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		c.Close()
		s.Close()
	}
}

func mustLoad(b *testing.B, entries []certs.Entry) *certs.Set {
	b.Helper()
	set, err := certs.Load(entries, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return set
}

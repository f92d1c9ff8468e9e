package certs

import (
	"fmt"
	"testing"

	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// BenchmarkLook is what Run pays at each look at unchanged files: every
// file read and the digest compared, by the number of certificates (two
// files each).
func BenchmarkLook(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		dir := b.TempDir()
		ca := certstest.NewCA(b)
		var entries []Entry
		for i := range n {
			c, k := ca.Write(b, dir, fmt.Sprintf("n%d.test", i))
			entries = append(entries, Entry{CertFile: c, KeyFile: k})
		}
		want := readFiles(entries).sum
		b.Run(fmt.Sprintf("certs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if readFiles(entries).sum != want {
					b.Fatal("the files changed")
				}
			}
		})
	}
}

package certs_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// These tests run in real time, since they drive real handshakes: the
// store looks at its files every few milliseconds, and the tests wait for
// what they expect with a generous bound rather than a fixed sleep.
const (
	fastInterval = 10 * time.Millisecond
	patience     = 20 * time.Second // a bound on waiting, never a speed asserted
)

// A renewal is how a tool replaces the files: each layout sets them up and
// later renews them its way.
type renewal struct {
	name  string
	setup func(t *testing.T, dir string, p certstest.Pair) certs.Entry
	renew func(t *testing.T, dir string, e certs.Entry, p certstest.Pair, n int)
}

// writeAtomically writes data to a new file beside path and renames it over
// path, as most tools that are careful do.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// symlinkAtomically points link at target by renaming a new link over it.
func symlinkAtomically(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	require.NoError(t, os.Symlink(target, tmp))
	require.NoError(t, os.Rename(tmp, link))
}

var renewals = []renewal{
	{
		// An editor, or a script doing `cat > file`: each file truncated
		// and rewritten, the certificate first.
		name: "in place",
		setup: func(t *testing.T, dir string, p certstest.Pair) certs.Entry {
			return files(t, dir, "site", p)
		},
		renew: func(t *testing.T, _ string, e certs.Entry, p certstest.Pair, _ int) {
			p.WriteFiles(t, e.CertFile, e.KeyFile)
		},
	},
	{
		// The same, by a writer slow enough that several looks find the
		// new certificate beside the old key: the old pair serves
		// meanwhile.
		name: "in place, the key a while later",
		setup: func(t *testing.T, dir string, p certstest.Pair) certs.Entry {
			return files(t, dir, "site", p)
		},
		renew: func(t *testing.T, _ string, e certs.Entry, p certstest.Pair, _ int) {
			require.NoError(t, os.WriteFile(e.CertFile, p.CertPEM, 0o644))
			time.Sleep(5 * fastInterval)
			require.NoError(t, os.WriteFile(e.KeyFile, p.KeyPEM, 0o600))
		},
	},
	{
		name: "renamed over",
		setup: func(t *testing.T, dir string, p certstest.Pair) certs.Entry {
			return files(t, dir, "site", p)
		},
		renew: func(t *testing.T, _ string, e certs.Entry, p certstest.Pair, _ int) {
			writeAtomically(t, e.CertFile, p.CertPEM)
			writeAtomically(t, e.KeyFile, p.KeyPEM)
		},
	},
	{
		// certbot: live/NAME/fullchain.pem and privkey.pem are symlinks
		// into archive/NAME/, repointed one after the other.
		name: "certbot symlinks",
		setup: func(t *testing.T, dir string, p certstest.Pair) certs.Entry {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "archive", "site"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "live", "site"), 0o755))
			e := certs.Entry{CertFile: filepath.Join(dir, "live", "site", "fullchain.pem"), KeyFile: filepath.Join(dir, "live", "site", "privkey.pem")}
			certbotRenew(t, dir, e, p, 1)
			return e
		},
		renew: certbotRenew,
	},
	{
		// A Kubernetes secret volume: tls.crt and tls.key are symlinks into
		// ..data, itself a symlink to a timestamped directory, swapped in
		// one rename.
		name: "kubernetes ..data",
		setup: func(t *testing.T, dir string, p certstest.Pair) certs.Entry {
			kubeRenew(t, dir, certs.Entry{}, p, 1)
			for _, f := range []string{"tls.crt", "tls.key"} {
				require.NoError(t, os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)))
			}
			return certs.Entry{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
		},
		renew: kubeRenew,
	},
}

func certbotRenew(t *testing.T, dir string, e certs.Entry, p certstest.Pair, n int) {
	cert := filepath.Join(dir, "archive", "site", fmt.Sprintf("fullchain%d.pem", n))
	key := filepath.Join(dir, "archive", "site", fmt.Sprintf("privkey%d.pem", n))
	require.NoError(t, os.WriteFile(cert, p.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(key, p.KeyPEM, 0o600))
	rel := func(target string) string {
		r, err := filepath.Rel(filepath.Dir(e.CertFile), target)
		require.NoError(t, err)
		return r
	}
	symlinkAtomically(t, rel(cert), e.CertFile)
	symlinkAtomically(t, rel(key), e.KeyFile)
}

func kubeRenew(t *testing.T, dir string, _ certs.Entry, p certstest.Pair, n int) {
	version := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", n, n)
	require.NoError(t, os.Mkdir(filepath.Join(dir, version), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version, "tls.crt"), p.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version, "tls.key"), p.KeyPEM, 0o600))
	symlinkAtomically(t, version, filepath.Join(dir, "..data"))
}

// run runs store.Run until the test ends.
func run(t *testing.T, store *certs.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Cleanup cancels it and waits for it to return.
	go func() { done <- store.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
}

func TestRenewalUnderLoad(t *testing.T) {
	for _, r := range renewals {
		t.Run(r.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := certstest.NewCA(t)
			v1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
			v2 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
			e := r.setup(t, dir, v1)
			store, _ := newStore(t, certs.Config{Interval: fastInterval}, e)
			run(t, store)
			addr := serve(t, store.TLSConfig(0))
			verify := &tls.Config{ServerName: "a.test", RootCAs: ca.Pool}

			open, err := dial(addr, verify)
			require.NoError(t, err)
			defer open.Close()
			require.NoError(t, echo(open))

			// Clients handshake in a loop, each with full verification and
			// no session to resume, so that every handshake asks the store.
			const clients, maxPerClient = 4, 5000
			var (
				wg                sync.WaitGroup
				stop              = make(chan struct{})
				handshakes, fresh atomic.Int64
				failures          = make([][]error, clients)
				backwards         = make([]bool, clients)
			)
			for i := range clients {
				wg.Add(1)
				// The test closes stop and waits for it (wg.Wait).
				go func() {
					defer wg.Done()
					seenNew := false
					for range maxPerClient {
						select {
						case <-stop:
							return
						default:
						}
						leaf, err := served(addr, verify)
						if err != nil {
							failures[i] = append(failures[i], err)
							continue
						}
						handshakes.Add(1)
						switch leaf.SerialNumber.String() {
						case serialOf(v2):
							seenNew = true
							fresh.Add(1)
						case serialOf(v1):
							backwards[i] = backwards[i] || seenNew
						default:
							failures[i] = append(failures[i], fmt.Errorf("unknown serial %v", leaf.SerialNumber))
						}
					}
				}()
			}
			assert.Eventually(t, func() bool { return handshakes.Load() >= 10*clients }, patience, time.Millisecond,
				"handshakes with the old certificate first")
			r.renew(t, dir, e, v2, 2)
			assert.Eventually(t, func() bool { return fresh.Load() >= 10*clients }, patience, time.Millisecond,
				"handshakes see the new certificate")
			close(stop)
			wg.Wait()

			for i := range clients {
				assert.Empty(t, failures[i], "client %d: no handshake failed", i)
				assert.False(t, backwards[i], "client %d: once the new certificate was seen, the old one never again", i)
			}
			assert.NoError(t, echo(open), "the connection opened before the renewal still works")
			assert.Equal(t, serialOf(v1), open.ConnectionState().PeerCertificates[0].SerialNumber.String(),
				"and keeps its session with the old certificate")
			st := store.Stats()
			assert.Equal(t, uint64(1), st.Reloads)
			assert.Equal(t, v2.Cert.NotAfter, st.NotAfter)
			t.Logf("%d handshakes", handshakes.Load())
		})
	}
}

func TestBadRenewalsKeepTheOldCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	v1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
	e := files(t, dir, "site", v1)
	store, logs := newStore(t, certs.Config{Interval: fastInterval}, e)
	run(t, store)
	addr := serve(t, store.TLSConfig(0))
	verify := &tls.Config{ServerName: "a.test", RootCAs: ca.Pool}
	servesV1 := func(msg string) {
		t.Helper()
		leaf, err := served(addr, verify)
		if assert.NoError(t, err, msg) {
			assert.Zero(t, leaf.SerialNumber.Cmp(v1.Cert.SerialNumber), msg)
		}
	}

	require.NoError(t, os.WriteFile(e.CertFile, []byte("-----BEGIN GARBAGE-----\n"), 0o644))
	assert.Eventually(t, func() bool { return store.Stats().Failures == 1 }, patience, time.Millisecond)
	assert.Contains(t, store.Stats().LastError, "not PEM")
	servesV1("after a garbage file")

	other := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
	require.NoError(t, os.WriteFile(e.CertFile, other.CertPEM, 0o644)) // with v1's key
	assert.Eventually(t, func() bool { return store.Stats().Failures == 2 }, patience, time.Millisecond)
	assert.Contains(t, store.Stats().LastError, "does not match")
	servesV1("after a key that does not match")
	assert.Contains(t, logs.String(), "the certificates in force go on serving")

	// Fixed at last.
	fixed := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, Serial: big.NewInt(42)})
	fixed.WriteFiles(t, e.CertFile, e.KeyFile)
	assert.Eventually(t, func() bool { return store.Stats().Reloads == 1 }, patience, time.Millisecond)
	leaf, err := served(addr, verify)
	require.NoError(t, err)
	assert.Equal(t, "42", leaf.SerialNumber.String())
	assert.Empty(t, store.Stats().LastError)
}

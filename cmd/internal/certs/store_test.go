package certs_test

import (
	"bytes"
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

func TestNewStoreReportsEveryProblem(t *testing.T) {
	_, err := certs.NewStore(nil, certs.Config{Interval: -time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certs: NewStore needs a Set made by Load")
	assert.Contains(t, err.Error(), "certs: Interval must not be negative, got -1s")
}

// serialFor is the serial number of the certificate the store serves for
// serverName.
func serialFor(s *certs.Store, serverName string) string {
	c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	return c.Leaf.SerialNumber.String()
}

func serialOf(p certstest.Pair) string { return p.Cert.SerialNumber.String() }

func TestReplaceIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	a1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
	b1 := ca.Issue(t, certstest.Leaf{Names: []string{"b.test"}})
	store, _ := newStore(t, certs.Config{}, files(t, dir, "a1", a1), files(t, dir, "b1", b1))
	addr := serve(t, store.TLSConfig(0))
	before := store.Current()

	a2 := files(t, dir, "a2", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}}))
	bad := certs.Entry{CertFile: a2.CertFile, KeyFile: files(t, dir, "c", ca.Issue(t, certstest.Leaf{Names: []string{"c.test"}})).KeyFile}
	err := store.Replace([]certs.Entry{a2, bad})
	require.Error(t, err)
	assert.ErrorIs(t, err, certs.ErrInvalid)
	assert.Contains(t, err.Error(), "certificates[1]: key_file")
	assert.NotContains(t, err.Error(), "certificates[0]")
	assert.Same(t, before, store.Current(), "nothing changed")
	got, err := served(addr, client("a.test"))
	require.NoError(t, err)
	assert.Equal(t, serialOf(a1), got.SerialNumber.String(), "the old certificate still serves")
	st := store.Stats()
	assert.Equal(t, uint64(0), st.Reloads)
	assert.Equal(t, uint64(1), st.Failures)
	assert.Contains(t, st.LastError, "certificates[1]")

	c := files(t, dir, "c2", ca.Issue(t, certstest.Leaf{Names: []string{"c.test"}}))
	require.NoError(t, store.Replace([]certs.Entry{a2, c}))
	for name, want := range map[string]string{"a.test": serialFor(store, "a.test"), "c.test": serialFor(store, "c.test")} {
		got, err := served(addr, client(name))
		require.NoError(t, err)
		assert.Equal(t, want, got.SerialNumber.String(), name)
	}
	assert.NotEqual(t, serialOf(a1), serialFor(store, "a.test"))
	assert.Equal(t, serialFor(store, "b.test"), serialFor(store, "a.test"), "b.test is gone: the default serves it")
	st = store.Stats()
	assert.Equal(t, uint64(1), st.Reloads)
	assert.Empty(t, st.LastError, "the failure is over")
	assert.Equal(t, []certs.Entry{a2, c}, store.Current().Entries())

	// Install puts a Set loaded earlier in force, and cannot fail.
	set := load(t, files(t, dir, "b2", b1))
	store.Install(set)
	assert.Same(t, set, store.Current())
	assert.Equal(t, serialOf(b1), serialFor(store, "a.test"))
	assert.Equal(t, uint64(2), store.Stats().Reloads)
	assert.Panics(t, func() { store.Install(nil) })
}

// watching runs store.Run in the bubble until the test's function returns
// and gives a function that lets one interval pass.
func watching(t *testing.T, store *certs.Store, interval time.Duration) (tick func()) {
	t.Helper()
	run(t, store)
	return func() {
		time.Sleep(interval)
		synctest.Wait() // Run has looked, and is waiting for the next tick
	}
}

func TestRunReloadsChangedFilesAndReportsLastingFailuresOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca := certstest.NewCA(t)
		v1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
		e := files(t, dir, "a", v1)
		store, logs := newStore(t, certs.Config{}, e)
		tick := watching(t, store, certs.DefaultInterval)
		stats := func() certs.Stats { return store.Stats() }

		tick()
		assert.Equal(t, certs.Stats{NotAfter: v1.Cert.NotAfter}, stats(), "nothing changed, nothing done")

		// The certificate is written before its key: for one look they
		// do not match, and that is not a failure.
		v2 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
		require.NoError(t, os.WriteFile(e.CertFile, v2.CertPEM, 0o644))
		tick()
		assert.Equal(t, serialOf(v1), serialFor(store, "a.test"))
		assert.Equal(t, certs.Stats{NotAfter: v1.Cert.NotAfter}, stats())
		assert.Contains(t, logs.String(), "do not load (yet)")
		require.NoError(t, os.WriteFile(e.KeyFile, v2.KeyPEM, 0o600))
		tick()
		assert.Equal(t, serialOf(v2), serialFor(store, "a.test"), "the matching pair is in force")
		assert.Equal(t, certs.Stats{Reloads: 1, NotAfter: v2.Cert.NotAfter}, stats())
		assert.Contains(t, logs.String(), "serial="+store.Current().Certificates()[0].Serial)

		// A garbage file fails at two looks in a row: reported once.
		require.NoError(t, os.WriteFile(e.CertFile, []byte("garbage\n"), 0o644))
		tick()
		assert.Equal(t, uint64(0), stats().Failures, "not yet: it may be half-written")
		for range 3 {
			tick()
		}
		st := stats()
		assert.Equal(t, uint64(1), st.Failures)
		assert.Equal(t, `certs: certificates[0]: cert_file "`+e.CertFile+`": not PEM: no -----BEGIN CERTIFICATE----- block in it`, st.LastError)
		assert.Equal(t, 1, strings.Count(logs.String(), "cannot be loaded"), "logged once")
		assert.Equal(t, serialOf(v2), serialFor(store, "a.test"), "the old certificate still serves")

		// Another failure, a key that does not match, is reported too.
		v3 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
		require.NoError(t, os.WriteFile(e.CertFile, v3.CertPEM, 0o644))
		tick()
		tick()
		st = stats()
		assert.Equal(t, uint64(2), st.Failures)
		assert.Contains(t, st.LastError, "does not match the certificate")
		assert.Equal(t, 2, strings.Count(logs.String(), "cannot be loaded"))

		// The files are put back as they were: nothing to load, and the
		// failure is over.
		v2.WriteFiles(t, e.CertFile, e.KeyFile)
		tick()
		assert.Equal(t, certs.Stats{Reloads: 1, Failures: 2, NotAfter: v2.Cert.NotAfter}, stats())
		assert.Contains(t, logs.String(), "back to those in force")

		// An expired certificate is refused.
		old := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, Signer: v2.Key,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		require.NoError(t, os.WriteFile(e.CertFile, old.CertPEM, 0o644))
		tick()
		tick()
		assert.Contains(t, stats().LastError, "expired on")
		assert.Equal(t, serialOf(v2), serialFor(store, "a.test"))
	})
}

func TestRunSeesARewriteOfTheSameSizeAndTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca := certstest.NewCA(t)
		v1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
		e := files(t, dir, "a", v1)
		fi, err := os.Stat(e.CertFile)
		require.NoError(t, err)
		// The same key, and a certificate of exactly the same length:
		// only the content tells them apart. (An ECDSA signature's length
		// varies by a byte or two, so a few tries find one.)
		var v2 certstest.Pair
		for range 100 {
			v2 = ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, Signer: v1.Key})
			if len(v2.CertPEM) == len(v1.CertPEM) {
				break
			}
		}
		require.Len(t, v2.CertPEM, len(v1.CertPEM))
		store, _ := newStore(t, certs.Config{}, e)
		tick := watching(t, store, certs.DefaultInterval)

		require.NoError(t, os.WriteFile(e.CertFile, v2.CertPEM, 0o644))
		require.NoError(t, os.Chtimes(e.CertFile, fi.ModTime(), fi.ModTime()))
		after, err := os.Stat(e.CertFile)
		require.NoError(t, err)
		require.Equal(t, fi.Size(), after.Size())
		require.Equal(t, fi.ModTime(), after.ModTime())
		tick()
		assert.Equal(t, serialOf(v2), serialFor(store, "a.test"))
	})
}

func TestRunWatchesTheFilesOfTheSetInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca := certstest.NewCA(t)
		a := files(t, dir, "a", ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}}))
		store, _ := newStore(t, certs.Config{Interval: time.Minute}, a)
		tick := watching(t, store, time.Minute)

		b := files(t, dir, "b", ca.Issue(t, certstest.Leaf{Names: []string{"b.test"}}))
		require.NoError(t, store.Replace([]certs.Entry{b}))
		tick()
		assert.Equal(t, uint64(1), store.Stats().Reloads)

		// a's files are no longer watched; b's are.
		ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}}).WriteFiles(t, a.CertFile, a.KeyFile)
		tick()
		assert.Equal(t, uint64(1), store.Stats().Reloads)
		b2 := ca.Issue(t, certstest.Leaf{Names: []string{"b.test"}})
		b2.WriteFiles(t, b.CertFile, b.KeyFile)
		tick()
		assert.Equal(t, uint64(2), store.Stats().Reloads)
		assert.Equal(t, serialOf(b2), serialFor(store, "b.test"))
	})
}

func TestRunWarnsOfExpiryOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca := certstest.NewCA(t)
		notAfter := time.Now().Add(certs.ExpiryWarning + 90*time.Minute)
		p := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, NotAfter: notAfter})
		store, logs := newStore(t, certs.Config{Interval: time.Hour}, files(t, dir, "a", p))
		assert.True(t, notAfter.Truncate(time.Second).Equal(store.Stats().NotAfter))
		tick := watching(t, store, time.Hour)
		count := func(s string) int { return strings.Count(logs.String(), s) }

		tick()
		assert.Zero(t, count("certificate warning"), "more than a week left")
		for range 3 {
			tick()
		}
		assert.Equal(t, 1, count("expires on"), "within a week: once")
		time.Sleep(time.Until(notAfter) + time.Minute)
		for range 3 {
			tick()
		}
		assert.Equal(t, 1, count("expired on"), "expired: once")
		assert.Equal(t, 1, count("expires on"))
	})
}

func TestNewStoreLogsTheCertificatesAndWarnings(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	p := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}, NotAfter: time.Now().Add(time.Hour)})
	_, logs := newStore(t, certs.Config{}, files(t, dir, "a", p))
	out := logs.String()
	assert.Contains(t, out, `level=INFO msg="certificate in force" source=start index=0`)
	assert.Contains(t, out, "names=[a.test]")
	assert.Contains(t, out, `level=WARN msg="certificate warning"`)
	assert.Equal(t, 1, bytes.Count([]byte(out), []byte("expires on")))
}

func TestResumedSessionsEndWithTheirCertificates(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			dir := t.TempDir()
			ca := certstest.NewCA(t)
			a1 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
			e := files(t, dir, "a", a1)
			store, _ := newStore(t, certs.Config{}, e)
			addr := serve(t, store.TLSConfig(0))
			cfg := &tls.Config{ServerName: "a.test", RootCAs: ca.Pool, MaxVersion: version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			// connect returns whether the handshake resumed a session, and
			// the certificate the session is with.
			connect := func() (bool, string) {
				t.Helper()
				c, err := dial(addr, cfg)
				require.NoError(t, err)
				defer c.Close()
				require.NoError(t, echo(c)) // reads the ticket TLS 1.3 sends after the handshake
				st := c.ConnectionState()
				return st.DidResume, st.PeerCertificates[0].SerialNumber.String()
			}

			resumed, serial := connect()
			assert.False(t, resumed)
			assert.Equal(t, serialOf(a1), serial)
			resumed, _ = connect()
			assert.True(t, resumed, "tickets work")

			require.NoError(t, store.Replace([]certs.Entry{e}))
			resumed, _ = connect()
			assert.True(t, resumed, "a reload of unchanged files keeps the tickets good")

			a2 := ca.Issue(t, certstest.Leaf{Names: []string{"a.test"}})
			a2.WriteFiles(t, e.CertFile, e.KeyFile)
			require.NoError(t, store.Replace([]certs.Entry{e}))
			resumed, serial = connect()
			assert.False(t, resumed, "a ticket from the old certificate is refused")
			assert.Equal(t, serialOf(a2), serial, "so the client is given the new one")
			resumed, serial = connect()
			assert.True(t, resumed)
			assert.Equal(t, serialOf(a2), serial)
		})
	}
}

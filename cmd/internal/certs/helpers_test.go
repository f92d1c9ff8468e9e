package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// files writes p into dir as name.pem and name.key and returns the entry
// naming them.
func files(t *testing.T, dir, name string, p certstest.Pair) certs.Entry {
	t.Helper()
	e := certs.Entry{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+".key")}
	p.WriteFiles(t, e.CertFile, e.KeyFile)
	return e
}

// load loads entries now and fails the test if that fails.
func load(t *testing.T, entries ...certs.Entry) *certs.Set {
	t.Helper()
	set, err := certs.Load(entries, time.Now())
	require.NoError(t, err)
	return set
}

// newStore makes a store of entries that logs into the returned buffer.
func newStore(t *testing.T, cfg certs.Config, entries ...certs.Entry) (*certs.Store, *pooltest.SyncBuffer) {
	t.Helper()
	var buf pooltest.SyncBuffer
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := certs.NewStore(load(t, entries...), cfg)
	require.NoError(t, err)
	return s, &buf
}

// serve runs a TLS echo server with cfg on 127.0.0.1 until the test ends and
// returns its address. Each connection is handshaken and then echoed back
// until the client closes it.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Add(1)
	// The accept loop ends when Cleanup closes the listener, and Cleanup
	// waits for it and for every connection's goroutine.
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			// Ends when the client closes the connection, or when
			// Cleanup closes it; Cleanup waits.
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial makes a TLS connection to addr with cfg, which names the server (or
// not) and says what to trust.
func dial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// served handshakes with addr and returns the certificate the server sent.
// It may be called off the test's goroutine.
func served(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}

// client asks for serverName and does not verify what it gets, so that a
// test can see which certificate is served even when it is the wrong one.
func client(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, InsecureSkipVerify: true}
}

// echo checks that c still carries data both ways.
func echo(c *tls.Conn) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	msg := []byte("ping\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo: got " + string(got))
	}
	return nil
}

// readFile reads a file or fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// Package certs holds the certificates the proxy serves over TLS: it loads
// and checks them (for start-up, -check and reload), picks the one a client
// asks for by SNI, and reloads them when their files change on disk.
//
// Load reads a list of certificate and key files into a Set, an immutable
// snapshot that chooses a certificate for each ClientHello (Set.Select). A
// Store holds the Set in force in an atomic pointer: its GetCertificate, for
// tls.Config.GetCertificate, reads it without a lock, so a reload never
// delays a handshake and a handshake never sees half a reload. A config
// reload puts a Set it loaded and checked with the rest of the file in
// force with Store.Install (Store.Replace loads and installs in one step);
// Store.Run watches the files of the Set in force and
// loads them again when they change, as certbot and cert-manager renew them
// in place. A Set that fails to load never replaces a good one: the old
// certificates go on serving. Connections already open keep their session;
// the next handshakes get the new certificates.
//
// Goroutines: Store.Run is the package's only long-lived loop, and it runs
// on its caller's goroutine (cmd/proxy runs it in its errgroup), which waits
// for it; Run returns nil once its context is done. Nothing else in the
// package starts a goroutine: Load, Replace and GetCertificate run on their
// callers' goroutines.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Errors. Every problem Load reports is an *EntryError that wraps
// ErrInvalid; ParseMinVersion's wrap ErrMinVersion.
var (
	// ErrInvalid says a certificate entry cannot be served.
	ErrInvalid = errors.New("certs: invalid certificate")
	// ErrNoCertificates says Load was given an empty list: TLS needs at
	// least one certificate, the default.
	ErrNoCertificates = errors.New("certs: at least one certificate is required")
	// ErrMinVersion says min_version names no version the proxy offers.
	ErrMinVersion = errors.New("certs: invalid min_version")
	// ErrExpiringSoon is wrapped by the warnings of Set.Warnings about a
	// certificate that expires within ExpiryWarning.
	ErrExpiringSoon = errors.New("certs: certificate expiring soon")
	// ErrUnreachable is wrapped by the warnings of Set.Warnings about a
	// certificate that no client can be given: it is not the default and
	// has no DNS name to be chosen by.
	ErrUnreachable = errors.New("certs: certificate never chosen")
)

// ExpiryWarning is how close to its expiry a certificate draws a warning
// (Set.Warnings, and the log of a Store). A week is enough for a person to
// act when automatic renewal, which usually runs a month ahead, has failed.
const ExpiryWarning = 7 * 24 * time.Hour

// maxFileSize bounds what is read of a certificate or key file. A chain of a
// few certificates is a few KiB; a path that names something huge by
// mistake (a log, a disk image) is refused rather than read every 10 s.
const maxFileSize = 1 << 20

// ParseMinVersion parses the config's min_version: "1.2" (also the meaning
// of "") or "1.3", returning tls.VersionTLS12 or tls.VersionTLS13. Older
// versions are not offered: they are deprecated (RFC 8996).
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%w: must be %q or %q, got %q", ErrMinVersion, "1.2", "1.3", s)
}

// An Entry names the files of one certificate, as the config lists them.
type Entry struct {
	// CertFile holds the certificate chain, PEM-encoded, the server's own
	// certificate first and then the intermediates (certbot's
	// fullchain.pem).
	CertFile string `json:"cert_file"`
	// KeyFile holds the certificate's private key, PEM-encoded and not
	// encrypted: PKCS #8, PKCS #1 (RSA) or SEC 1 (EC). It may be the same
	// file as CertFile.
	KeyFile string `json:"key_file"`
}

// An EntryError is what is wrong with one entry of a list. Load's error
// joins one per bad entry (errors.Join), in the order of the list.
//
// The config loader names the field itself: Index and Err are there so
// that it can write "tls.certificates[1]: " + Err.Error().
type EntryError struct {
	// Index is the entry's position in the list.
	Index int
	// Entry is the entry.
	Entry Entry
	// Err says what is wrong, worded for the operator and naming the file,
	// such as `cert_file "site.pem": expired on 2025-01-02 15:04:05 UTC`.
	// All the problems of the entry are in it, separated by "; ".
	Err error
}

// Error is the problem, after the entry's place in the list.
func (e *EntryError) Error() string {
	return fmt.Sprintf("certs: certificates[%d]: %v", e.Index, e.Err)
}

// Unwrap returns Err, which wraps ErrInvalid (or, for a warning,
// ErrExpiringSoon or ErrUnreachable) and the causes behind it, such as
// fs.ErrNotExist.
func (e *EntryError) Unwrap() error { return e.Err }

// EntryErrors returns the *EntryError values in an error of Load or
// Replace, in list order, so that a config loader can name each field its
// own way. It returns nil for an error that has none (ErrNoCertificates).
func EntryErrors(err error) []*EntryError {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*EntryError
	for _, e := range errs {
		var ee *EntryError
		if errors.As(e, &ee) {
			out = append(out, ee)
		}
	}
	return out
}

// problem is the Err of an EntryError: its text is what an operator reads,
// and it wraps the sentinel and the underlying causes for errors.Is.
type problem struct {
	msg  string
	wrap []error
}

func (p *problem) Error() string   { return p.msg }
func (p *problem) Unwrap() []error { return p.wrap }

// Load reads the certificates and keys of entries and checks each pair: the
// files exist and can be read, hold PEM, the key matches the certificate,
// and the certificate is valid at now. It returns every problem at once, one
// *EntryError per bad entry. A certificate expiring soon is not an error:
// see Set.Warnings.
//
// Only the first certificate of a file (the server's own) is checked for
// expiry. An expired intermediate is sometimes served on purpose, for old
// clients that need the cross-signature (Let's Encrypt did so until 2024);
// a modern client builds its chain around it.
func Load(entries []Entry, now time.Time) (*Set, error) {
	return build(entries, readFiles(entries), now)
}

// fileData is what was read of one file: its content, or why it could not
// be read.
type fileData struct {
	data []byte
	err  error
}

// pairData is what was read of one entry's files.
type pairData struct {
	cert, key fileData
}

// readSet is what was read of a whole list, with a digest of it: the
// watcher compares digests to see that something changed, and keeps the
// digest of a list that failed to load so as to try it only once.
type readSet struct {
	pairs []pairData
	sum   [sha256.Size]byte
}

// readFiles reads every file of entries. The digest covers the paths, every
// byte read and every error, so that any change to what Load would see
// changes it: a rewrite in place within the same second and at the same
// size, a symlink pointed elsewhere, a file renamed over another. Reading a
// few KiB per file is cheap enough to do every interval, and comparing the
// content rather than sizes and times cannot be fooled by a file system's
// coarse timestamps or by a tool that preserves them.
func readFiles(entries []Entry) readSet {
	h := sha256.New()
	field := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	file := func(path string) fileData {
		fd := readFile(path)
		field([]byte(path))
		if fd.err != nil {
			field([]byte("error: " + fd.err.Error()))
		} else {
			field(fd.data)
		}
		return fd
	}
	rs := readSet{pairs: make([]pairData, len(entries))}
	for i, e := range entries {
		rs.pairs[i].cert = file(e.CertFile)
		rs.pairs[i].key = file(e.KeyFile)
	}
	h.Sum(rs.sum[:0])
	return rs
}

// readFile reads a certificate or key file, following symlinks, and words
// its failure for the operator (the path is added by the caller).
func readFile(path string) fileData {
	if path == "" {
		return fileData{err: errors.New("is required")}
	}
	// Stat first, so that a path naming a FIFO or a device is refused
	// rather than opened, which could block the watcher for good.
	fi, err := os.Stat(path)
	if err != nil {
		return fileData{err: describeFSError(err)}
	}
	if !fi.Mode().IsRegular() {
		return fileData{err: errors.New("not a regular file")}
	}
	f, err := os.Open(path)
	if err != nil {
		return fileData{err: describeFSError(err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fileData{err: describeFSError(err)}
	}
	if len(data) > maxFileSize {
		return fileData{err: fmt.Errorf("larger than %d KiB: not a certificate or key file", maxFileSize>>10)}
	}
	return fileData{data: data}
}

// describeFSError drops the path (the message names the field and file
// already) and says the common cases plainly. It keeps the cause wrapped.
func describeFSError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &problem{msg: "file does not exist", wrap: []error{err}}
	case errors.Is(err, fs.ErrPermission):
		return &problem{msg: "cannot be read: permission denied", wrap: []error{err}}
	}
	return fmt.Errorf("cannot be read: %w", err)
}

// build makes a Set of what was read, or reports every bad entry.
func build(entries []Entry, rs readSet, now time.Time) (*Set, error) {
	if len(entries) == 0 {
		return nil, ErrNoCertificates
	}
	certs := make([]*certificate, len(entries))
	var errs []error
	for i, e := range entries {
		c, err := loadPair(e, rs.pairs[i], now)
		if err != nil {
			errs = append(errs, &EntryError{Index: i, Entry: e, Err: err})
			continue
		}
		c.index = i
		certs[i] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newSet(entries, certs, rs.sum), nil
}

// loadPair parses and checks one entry's files, gathering every problem
// with them into one error.
func loadPair(e Entry, pd pairData, now time.Time) (*certificate, error) {
	var msgs []string
	causes := []error{ErrInvalid}
	fail := func(field, path, format string, args ...any) {
		if path == "" {
			msgs = append(msgs, fmt.Sprintf("%s %s", field, fmt.Sprintf(format, args...)))
			return
		}
		msgs = append(msgs, fmt.Sprintf("%s %q: %s", field, path, fmt.Sprintf(format, args...)))
	}
	failed := func() error {
		return &problem{msg: strings.Join(msgs, "; "), wrap: causes}
	}

	var chain []*x509.Certificate
	if pd.cert.err != nil {
		fail("cert_file", e.CertFile, "%v", pd.cert.err)
		causes = append(causes, pd.cert.err)
	} else if c, msg := parseChain(pd.cert.data); msg != "" {
		fail("cert_file", e.CertFile, "%s", msg)
	} else {
		chain = c
	}
	var key crypto.Signer
	if pd.key.err != nil {
		fail("key_file", e.KeyFile, "%v", pd.key.err)
		causes = append(causes, pd.key.err)
	} else if k, msg := parseKey(pd.key.data); msg != "" {
		fail("key_file", e.KeyFile, "%s", msg)
	} else {
		key = k
	}
	if chain == nil || key == nil {
		return nil, failed()
	}

	leaf := chain[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		hint := ""
		if leaf.IsCA {
			hint = " (the file begins with a CA certificate: give the full chain, the server's own certificate first)"
		}
		fail("key_file", e.KeyFile, "does not match the certificate in cert_file %q%s", e.CertFile, hint)
	}
	if now.After(leaf.NotAfter) {
		fail("cert_file", e.CertFile, "expired on %s", formatTime(leaf.NotAfter))
	}
	if now.Before(leaf.NotBefore) {
		fail("cert_file", e.CertFile, "not valid until %s", formatTime(leaf.NotBefore))
	}
	if len(msgs) > 0 {
		return nil, failed()
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &certificate{
		entry: e,
		tls:   &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
	}, nil
}

// formatTime writes a certificate's time as an operator reads it, in UTC.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// parseChain reads the CERTIFICATE blocks of a cert file, in order. It
// returns a message worded for the operator when there are none or one
// cannot be parsed.
func parseChain(data []byte) ([]*x509.Certificate, string) {
	var chain []*x509.Certificate
	var other []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			other = append(other, b.Type)
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Sprintf("certificate %d of the file cannot be parsed: %v", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	switch {
	case len(chain) > 0:
		return chain, ""
	case len(other) == 0:
		return nil, "not PEM: no -----BEGIN CERTIFICATE----- block in it"
	case hasKeyBlock(other):
		return nil, "holds a private key, not a certificate (are cert_file and key_file swapped?)"
	}
	return nil, fmt.Sprintf("no CERTIFICATE block in it, only %s", strings.Join(other, ", "))
}

func hasKeyBlock(types []string) bool {
	for _, t := range types {
		if strings.HasSuffix(t, "PRIVATE KEY") {
			return true
		}
	}
	return false
}

// parseKey reads the first private key block of a key file. Other blocks
// (EC PARAMETERS, which openssl writes before an EC key, or certificates, in
// a combined file) are skipped.
func parseKey(data []byte) (crypto.Signer, string) {
	var other []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			other = append(other, b.Type)
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, "the key is encrypted: give it unencrypted (the proxy has no way to ask for a passphrase)"
		}
		k, err := parsePrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Sprintf("the private key cannot be parsed: %v", err)
		}
		return k, ""
	}
	switch {
	case len(other) == 0:
		return nil, "not PEM: no -----BEGIN PRIVATE KEY----- block in it"
	case other[0] == "CERTIFICATE":
		return nil, "holds a certificate, not a private key (are cert_file and key_file swapped?)"
	}
	return nil, fmt.Sprintf("no PRIVATE KEY block in it, only %s", strings.Join(other, ", "))
}

// parsePrivateKey tries the three encodings crypto/tls accepts, in the order
// it tries them, whatever the block's type says: files in the wild label
// them loosely.
func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		}
		return nil, fmt.Errorf("unsupported key type %T: use RSA, ECDSA or Ed25519", k)
	}
	k, err := x509.ParseECPrivateKey(der)
	if err != nil {
		return nil, errors.New("not an RSA, ECDSA or Ed25519 key in PKCS #1, PKCS #8 or SEC 1 form")
	}
	return k, nil
}

// certificate is one loaded entry.
type certificate struct {
	index int
	entry Entry
	tls   *tls.Certificate
	// fallback says the certificate is one of the default's: see newSet.
	fallback bool
}

// Info describes one certificate of a Set, for logs, status pages and
// metrics.
type Info struct {
	// Index is the entry's position in the list.
	Index int
	// Entry is the entry the certificate was loaded from.
	Entry Entry
	// Names are the certificate's DNS names as written in it, wildcards
	// included.
	Names []string
	// Serial is the serial number in hexadecimal, as openssl prints it.
	Serial string
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore, NotAfter time.Time
	// Key is the kind of key: "ECDSA P-256", "RSA 2048", "Ed25519".
	Key string
}

func (c *certificate) info() Info {
	leaf := c.tls.Leaf
	return Info{
		Index:     c.index,
		Entry:     c.entry,
		Names:     append([]string(nil), leaf.DNSNames...),
		Serial:    fmt.Sprintf("%X", leaf.SerialNumber),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Key:       keyName(leaf.PublicKey),
	}
}

func keyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// A Set is the certificates of one list, loaded and checked, with the index
// that chooses among them. It never changes once made (the Store's log
// bookkeeping aside), so any number of handshakes may read it at once.
type Set struct {
	entries  []Entry
	certs    []*certificate
	exact    map[string][]*certificate // lower-case DNS name -> the certificates naming it, in list order
	wildcard map[string][]*certificate // "example.com" for "*.example.com" -> likewise
	fallback []*certificate            // the first certificate, and any later one with exactly its names
	notAfter time.Time
	sum      [sha256.Size]byte // of what was read; see readFiles
	// tag marks the session tickets issued while s is in force (see
	// Store.TLSConfig). It comes from sum, so that loading the same files
	// again gives the same tag and keeps the tickets good.
	tag []byte

	// warned is the most severe expiry level of this Set a Store has
	// logged (see expiryLevel), so that each is logged once.
	warned atomic.Int32
}

// Certificates describes the certificates of s, in list order.
func (s *Set) Certificates() []Info {
	out := make([]Info, len(s.certs))
	for i, c := range s.certs {
		out[i] = c.info()
	}
	return out
}

// Entries returns the list s was loaded from.
func (s *Set) Entries() []Entry { return append([]Entry(nil), s.entries...) }

// NotAfter is the expiry of the certificate of s that expires first.
func (s *Set) NotAfter() time.Time { return s.notAfter }

// Warnings lists what deserves a warning but does not stop s from serving,
// one *EntryError per certificate: one that expires within ExpiryWarning of
// now (ErrExpiringSoon) or has already expired (also ErrExpiringSoon: a Set
// loaded earlier may outlive its certificates), and one that can never be
// chosen, having no DNS name and not being the first (ErrUnreachable).
// cmd/proxy prints them at -check; a Store logs them.
func (s *Set) Warnings(now time.Time) []*EntryError {
	var out []*EntryError
	warn := func(c *certificate, sentinel error, format string, args ...any) {
		msg := fmt.Sprintf("cert_file %q: ", c.entry.CertFile) + fmt.Sprintf(format, args...)
		out = append(out, &EntryError{Index: c.index, Entry: c.entry, Err: &problem{msg: msg, wrap: []error{sentinel}}})
	}
	for _, c := range s.certs {
		na := c.tls.Leaf.NotAfter
		switch left := na.Sub(now); {
		case left < 0:
			warn(c, ErrExpiringSoon, "expired on %s", formatTime(na))
		case left <= ExpiryWarning:
			warn(c, ErrExpiringSoon, "expires on %s, in %s", formatTime(na), left.Round(time.Minute))
		}
		if !c.fallback && len(c.tls.Leaf.DNSNames) == 0 {
			warn(c, ErrUnreachable, "has no DNS names, so no client asking by name can get it, and only the first certificate is the default")
		}
	}
	return out
}

// expiryLevel is 0 while every certificate of s has more than
// ExpiryWarning left, 1 when one has less, 2 when one has expired.
func (s *Set) expiryLevel(now time.Time) int32 {
	switch left := s.notAfter.Sub(now); {
	case left < 0:
		return 2
	case left <= ExpiryWarning:
		return 1
	}
	return 0
}

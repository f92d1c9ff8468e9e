package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Run looks at the files when Config.Interval
// is zero.
const DefaultInterval = 10 * time.Second

// Config says how a Store watches its files and where it logs.
type Config struct {
	// Interval is the time between two looks at the files by Run. Zero
	// means DefaultInterval; it must not be negative.
	Interval time.Duration
	// Logger receives the certificates put in force (Info), files that
	// changed but cannot be loaded (Error), and certificates close to their
	// expiry or past it (Warn). Nil means no logging.
	Logger *slog.Logger
}

// A Store holds the certificates in force and serves them to handshakes.
// Its methods are safe for concurrent use: handshakes call GetCertificate
// while Run and a config reload replace the Set.
type Store struct {
	cur      atomic.Pointer[Set]
	interval time.Duration
	log      *slog.Logger

	// Counters for Stats; see there.
	reloads  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Pointer[string] // nil: none
}

// NewStore returns a Store serving set, which Load made. It logs each
// certificate of set, and the warnings about it.
func NewStore(set *Set, cfg Config) (*Store, error) {
	var errs []error
	if set == nil {
		errs = append(errs, errors.New("certs: NewStore needs a Set made by Load"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("certs: Interval must not be negative, got %v", cfg.Interval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{interval: cfg.Interval, log: cfg.Logger}
	s.cur.Store(set)
	s.logInForce(nil, set, "start", time.Now())
	return s, nil
}

// GetCertificate returns the certificate of the Set in force that Set.Select
// chooses for hello. It never fails; it has the signature of
// tls.Config.GetCertificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().Select(hello), nil
}

// TLSConfig returns a server configuration that takes its certificates from
// s, accepts TLS from minVersion (tls.VersionTLS12 or tls.VersionTLS13; zero
// means 1.2) and offers HTTP/2 and HTTP/1.1 by ALPN. The cipher suites are
// Go's defaults, which have no weak ones to turn off. The caller is given a
// new Config each call and may change NextProtos.
//
// Session tickets are tagged with the certificates in force when they are
// issued, and a ticket from other certificates is refused, so that once new
// certificates are in force every new connection is served them: a client
// resuming a session would otherwise go on with the certificate it was
// given before, for as long as its ticket lasts (up to a week). Connections
// already open are not touched. Reloading unchanged files keeps the
// tickets good. This is WrapSession and UnwrapSession, using this Config's
// ticket keys: a caller that sets its own loses it.
//
// Any other minVersion is a programmer's error (ParseMinVersion makes only
// those two) and panics.
func (s *Store) TLSConfig(minVersion uint16) *tls.Config {
	switch minVersion {
	case 0:
		minVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		panic(fmt.Sprintf("certs: TLSConfig: minVersion %#04x is neither TLS 1.2 nor TLS 1.3", minVersion))
	}
	cfg := &tls.Config{
		GetCertificate: s.GetCertificate,
		MinVersion:     minVersion,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, s.cur.Load().tag)
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if ss == nil || err != nil {
			return ss, err
		}
		if !slices.ContainsFunc(ss.Extra, func(b []byte) bool { return bytes.Equal(b, s.cur.Load().tag) }) {
			return nil, nil // a full handshake, with the certificates in force
		}
		return ss, nil
	}
	return cfg
}

// Current returns the Set in force.
func (s *Store) Current() *Set { return s.cur.Load() }

// Replace loads entries and puts them in force, for a config reload: all of
// them at once, or, if any entry is bad, none, and the Set in force goes on
// serving. Its error is Load's, and it counts in Stats.Failures; logging it
// is the caller's business, with the rest of the reload's problems.
func (s *Store) Replace(entries []Entry) error {
	now := time.Now()
	set, err := Load(entries, now)
	if err != nil {
		s.failures.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		return err
	}
	s.install(set, now)
	return nil
}

// Install puts set, which Load made, in force. A config loader that loaded
// the certificates while checking the file uses it, so that applying the
// checked file cannot fail half-way. A nil set panics.
func (s *Store) Install(set *Set) {
	if set == nil {
		panic("certs: Install of a nil Set")
	}
	s.install(set, time.Now())
}

func (s *Store) install(set *Set, now time.Time) {
	old := s.cur.Swap(set)
	s.installed(old, set, "config", now)
}

// installed does the bookkeeping of a Set put in force in old's place.
func (s *Store) installed(old, set *Set, source string, now time.Time) {
	s.reloads.Add(1)
	s.lastErr.Store(nil)
	s.logInForce(old, set, source, now)
}

// Stats are a Store's counters, for metrics and status pages.
type Stats struct {
	// Reloads counts the Sets put in force after the first: by Run when
	// the files changed, and by Replace and Install.
	Reloads uint64
	// Failures counts the loads that failed: each distinct failure of
	// changed files that Run reports (see Run), and each failed Replace.
	Failures uint64
	// LastError is why the last load failed, until one succeeds (or the
	// files are back to those in force); empty when none is failing.
	LastError string
	// NotAfter is when the first of the certificates in force expires.
	NotAfter time.Time
}

// Stats returns the Store's counters now.
func (s *Store) Stats() Stats {
	st := Stats{
		Reloads:  s.reloads.Load(),
		Failures: s.failures.Load(),
		NotAfter: s.cur.Load().NotAfter(),
	}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// Run watches the files of the Set in force, every Interval, until ctx is
// done; then it returns nil. It never returns earlier.
//
// At each look it reads every file (through symlinks) and compares a digest
// of what it read with what the Set in force was loaded from. When they
// differ, the whole list is loaded again; if that works, the new Set is put
// in force and the next handshakes use it.
//
// If it fails, the Set in force goes on serving, and the same files are not
// loaded again until they change. Renewal tools do not change a pair of
// files at once: certbot points its symlinks one after another, others write
// the certificate and then the key, so a look may well fall between the two
// and find a key that does not match. So a failure is reported only when the
// files are still not loadable at the next look: it is counted in
// Stats.Failures and logged once per distinct error (logged at Debug before
// that), and a pair that matches by the next look is put in force with
// nothing reported at all.
//
// If Replace or Install puts a Set in force while a load from the files is
// under way, theirs wins and Run's is dropped: Run then watches the new
// Set's files.
//
// Run also logs, once, when a certificate in force comes within
// ExpiryWarning of its expiry, and when it expires.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var w watch
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.look(&w, time.Now())
		}
	}
}

// watch is what Run remembers between looks.
type watch struct {
	// tried is the digest of the files last loaded without success, and
	// err the error; tried is meaningful when err is not nil.
	tried [sha256.Size]byte
	err   error
	// bad counts the looks in a row that found the files changed and not
	// loadable.
	bad int
	// reported is the text of the failure last reported, so that each
	// distinct one is reported once.
	reported string
}

// look is one look at the files.
func (s *Store) look(w *watch, now time.Time) {
	defer func() { s.warnExpiry(s.cur.Load(), now) }()
	cur := s.cur.Load()
	rs := readFiles(cur.entries)
	if rs.sum == cur.sum {
		if w.reported != "" {
			s.lastErr.Store(nil)
			s.log.Info("certificate files are back to those in force")
		}
		*w = watch{}
		return
	}
	if w.err == nil || rs.sum != w.tried {
		set, err := build(cur.entries, rs, now)
		if err == nil {
			if s.cur.CompareAndSwap(cur, set) {
				s.installed(cur, set, "files", now)
			}
			*w = watch{}
			return
		}
		w.tried, w.err = rs.sum, err
	}
	w.bad++
	if w.bad < 2 {
		s.log.Debug("certificate files changed but do not load (yet); looking again at the next interval", "error", w.err)
		return
	}
	if msg := w.err.Error(); msg != w.reported {
		w.reported = msg
		s.failures.Add(1)
		s.lastErr.Store(&msg)
		s.log.Error("certificate files changed but cannot be loaded; the certificates in force go on serving",
			"error", w.err, "not_after", cur.NotAfter())
	}
}

// logInForce logs the certificates of set that were not in force in old
// (nil at start) at the same place in the list, and set's warnings.
func (s *Store) logInForce(old, set *Set, source string, now time.Time) {
	for i, c := range set.certs {
		if old != nil && i < len(old.certs) && old.certs[i].entry == c.entry &&
			old.certs[i].tls.Leaf.Equal(c.tls.Leaf) {
			continue
		}
		in := c.info()
		s.log.Info("certificate in force", "source", source, "index", in.Index, "cert_file", in.Entry.CertFile,
			"names", in.Names, "serial", in.Serial, "key", in.Key, "not_after", in.NotAfter)
	}
	set.warned.Store(set.expiryLevel(now))
	for _, w := range set.Warnings(now) {
		s.warn(w)
	}
}

func (s *Store) warn(w *EntryError) {
	s.log.Warn("certificate warning", "index", w.Index, "cert_file", w.Entry.CertFile, "warning", w.Err.Error())
}

// warnExpiry logs set's expiry warnings if it has come closer to expiry
// than when they were last logged.
func (s *Store) warnExpiry(set *Set, now time.Time) {
	level := set.expiryLevel(now)
	if old := set.warned.Load(); level <= old || !set.warned.CompareAndSwap(old, level) {
		return
	}
	for _, w := range set.Warnings(now) {
		if errors.Is(w, ErrExpiringSoon) {
			s.warn(w)
		}
	}
}

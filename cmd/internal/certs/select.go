package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"slices"
	"strings"
)

// newSet indexes certs (loaded from entries, in their order) by name.
func newSet(entries []Entry, certs []*certificate, sum [sha256.Size]byte) *Set {
	s := &Set{
		entries:  slices.Clone(entries),
		certs:    certs,
		exact:    make(map[string][]*certificate),
		wildcard: make(map[string][]*certificate),
		sum:      sum,
		tag:      append([]byte("switchyard-certs:"), sum[:8]...),
	}
	for i, c := range certs {
		names := c.names()
		for _, n := range names {
			if suffix, ok := strings.CutPrefix(n, "*."); ok {
				// Only a whole leftmost label may be a wildcard (RFC 6125
				// section 6.4.3, as crypto/x509 matches): "*.example.com",
				// never "*.*.example.com" or "w*.example.com", which are
				// indexed as the literal names no valid host has.
				if suffix != "" && !strings.Contains(suffix, "*") {
					s.wildcard[suffix] = append(s.wildcard[suffix], c)
					continue
				}
			}
			s.exact[n] = append(s.exact[n], c)
		}
		if i == 0 || slices.Equal(names, certs[0].names()) {
			// The default is the first certificate; a later one for the
			// same names is the same site with another key (ECDSA beside
			// RSA), and a client without SNI, which is most often an old
			// one, should get whichever of them it supports.
			c.fallback = true
			s.fallback = append(s.fallback, c)
		}
		if na := c.tls.Leaf.NotAfter; i == 0 || na.Before(s.notAfter) {
			s.notAfter = na
		}
	}
	return s
}

// names are the certificate's DNS names normalised as a ServerName is, each
// once, sorted.
func (c *certificate) names() []string {
	out := make([]string, 0, len(c.tls.Leaf.DNSNames))
	for _, n := range c.tls.Leaf.DNSNames {
		out = append(out, normalizeName(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Select chooses the certificate for a ClientHello:
//
//  1. the certificates whose DNS names include the requested server name,
//     compared without case and without a trailing dot;
//  2. then those with a wildcard matching it, "*.example.com" matching
//     exactly one label more ("a.example.com", not "example.com" nor
//     "a.b.example.com");
//  3. when none match, or the client sent no name, the default: the first
//     certificate of the list (and any later one with exactly its names).
//
// Where several certificates are candidates, the first one in list order
// that the client supports (tls.ClientHelloInfo.SupportsCertificate: its
// signature algorithms, versions and cipher suites) is served, so an ECDSA
// certificate listed before an RSA one for the same names goes to every
// modern client and the RSA one to clients that cannot use ECDSA. If the
// client supports none, the first candidate is served: the right name with
// the wrong key fails as clearly as anything else would.
//
// Select never returns nil. It allocates only to lower-case a name sent
// with capitals, and SupportsCertificate allocates a little when several
// certificates match.
func (s *Set) Select(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := normalizeName(hello.ServerName)
	var exact, wild []*certificate
	if name != "" {
		exact = s.exact[name]
		if i := strings.IndexByte(name, '.'); i > 0 {
			wild = s.wildcard[name[i+1:]]
		}
	}
	switch n := len(exact) + len(wild); {
	case n == 0:
		return choose(hello, s.fallback, nil)
	case n == 1 && len(exact) == 1:
		return exact[0].tls
	case n == 1:
		return wild[0].tls
	}
	return choose(hello, exact, wild)
}

// choose returns the first certificate of a, then b, that the client
// supports, else the first of them all. There is at least one.
func choose(hello *tls.ClientHelloInfo, a, b []*certificate) *tls.Certificate {
	switch {
	case len(a) == 1 && len(b) == 0:
		return a[0].tls
	case len(a) == 0 && len(b) == 1:
		return b[0].tls
	}
	// The names have been matched already. With ServerName cleared,
	// SupportsCertificate skips x509's VerifyHostname, which would repeat
	// the match at the cost of allocations on every handshake, and which
	// would reject every certificate of the default for a name none has.
	h := *hello
	h.ServerName = ""
	for _, list := range [2][]*certificate{a, b} {
		for _, c := range list {
			if h.SupportsCertificate(c.tls) == nil {
				return c.tls
			}
		}
	}
	if len(a) > 0 {
		return a[0].tls
	}
	return b[0].tls
}

// normalizeName lower-cases an ASCII host name and drops one trailing dot,
// so that "Example.COM." is "example.com". It allocates only when there is
// an upper-case letter. Non-ASCII bytes are left as they are: SNI carries
// A-labels ("xn--..."), and crypto/x509 compares names in ASCII too.
func normalizeName(n string) string {
	n = strings.TrimSuffix(n, ".")
	for i := 0; i < len(n); i++ {
		if 'A' <= n[i] && n[i] <= 'Z' {
			b := []byte(n)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return n
}

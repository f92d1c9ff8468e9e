package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/switchyard-proxy/switchyard/pool"
)

// HashKey says which part of a request the Hash strategy hashes: the
// client's address, the URI, a header or a cookie.
type HashKey struct {
	Kind string // "client_ip", "uri", "header" or "cookie"; empty: no key
	Name string // the header's or cookie's name
}

// ParseHashKey parses hash_key: "client_ip", "uri", "header:NAME" or
// "cookie:NAME". Empty means client_ip.
func ParseHashKey(s string) (HashKey, error) {
	kind, name, named := strings.Cut(s, ":")
	switch {
	case s == "":
		return HashKey{Kind: "client_ip"}, nil
	case !named && (kind == "client_ip" || kind == "uri"):
		return HashKey{Kind: kind}, nil
	case named && (kind == "header" || kind == "cookie") && name != "" && !strings.ContainsAny(name, " \t\r\n:;=,"):
		if kind == "header" {
			name = http.CanonicalHeaderKey(name)
		}
		return HashKey{Kind: kind, Name: name}, nil
	}
	return HashKey{}, fmt.Errorf("proxy: hash key must be %q, %q, %q or %q, got %q", "client_ip", "uri", "header:NAME", "cookie:NAME", s)
}

func (k HashKey) String() string {
	if k.Name != "" {
		return k.Kind + ":" + k.Name
	}
	return k.Kind
}

// hash returns r's key for the Hash strategy, and false when r has none (a
// header or cookie it does not carry): such a request is picked in turn.
// peer is the address of the connection's other end, trusted whether it is
// one of TrustedProxies.
func (s *settings) hash(r *http.Request, peer netip.Addr, trusted bool) (uint64, bool) {
	var key string
	switch s.HashKey.Kind {
	case "client_ip":
		if ip := s.clientIP(r, peer, trusted); ip.IsValid() {
			key = ip.String()
		}
	case "uri":
		key = r.URL.RequestURI()
	case "header":
		key = r.Header.Get(s.HashKey.Name)
	case "cookie":
		if c, err := r.Cookie(s.HashKey.Name); err == nil {
			key = c.Value
		}
	}
	if key == "" {
		return 0, false
	}
	return pool.HashKey(key), true
}

// clientIP is the address of the client as this proxy knows it: the peer,
// unless the peer is a trusted proxy, in which case the nearest address in
// X-Forwarded-For that is not one of the trusted proxies.
func (s *settings) clientIP(r *http.Request, peer netip.Addr, trusted bool) netip.Addr {
	ip := peer
	if !trusted {
		return ip // invalid if RemoteAddr was no address
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return ip // a forged or broken hop: trust nothing beyond it
			}
			if hop = hop.Unmap(); !s.trustedAddr(hop) {
				return hop
			}
		}
	}
	return ip
}

// stickyCookie returns the Set-Cookie for a response from b, or nil when the
// request's cookie already names b (or sticky sessions are off).
func stickyCookie(b *pool.Backend, st *requestState) *http.Cookie {
	id := b.StickyID()
	if st.s.StickyCookie == "" || id == "" || id == st.sticky {
		return nil
	}
	return &http.Cookie{
		Name: st.s.StickyCookie, Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: st.secure,
	}
}

// errNoConnection says that no backend could be connected to: every attempt
// was refused or timed out while connecting. Nothing reached a backend, so
// the client gets 503, as when none is up, rather than a gateway's 502.
var errNoConnection = errors.New("proxy: no backend could be connected to")

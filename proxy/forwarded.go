package proxy

import (
	"errors"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// rewrite sets the forwarding headers. The backend's address is set per
// attempt by the retrier. The Host header is the client's, untouched: the
// backend sees the name the client asked for, as with HAProxy and Caddy.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	// The server fills in the values of the client's trailers when the body
	// has been read to its end, in the inbound request's map. The outbound
	// request was cloned before that, with a copy of the map whose values
	// would stay empty: share the map so that the trailers are forwarded.
	if pr.In.Trailer != nil {
		pr.Out.Trailer = pr.In.Trailer
	}
	// An HTTP/1.1 upgrade to h2c is never passed on: a backend that took it
	// would speak HTTP/2 on a connection the proxy still frames as
	// HTTP/1.1, and the requests in it would be smuggled past the proxy
	// (golang/go#80416, Traefik #9341). The request goes on as HTTP/1.1.
	// (HTTP2-Settings, named in Connection, is gone with the hop-by-hop
	// headers already.)
	if strings.EqualFold(pr.Out.Header.Get("Upgrade"), "h2c") {
		pr.Out.Header.Del("Upgrade")
		pr.Out.Header.Del("Connection")
	}
	// ReverseProxy has already removed the client's X-Forwarded-* headers. A
	// trusted proxy in front of this one gets its values kept.
	st := pr.Out.Context().Value(stateKey{}).(*requestState)
	trusted := st.trusted
	if trusted {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	}
}

func (s *settings) trustedAddr(ip netip.Addr) bool {
	for _, pfx := range s.TrustedProxies {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseTrustedProxy parses one entry of Config.TrustedProxies: it accepts a CIDR prefix or a bare address, which stands for
// itself alone. A prefix with host bits set ("10.1.2.3/8") is taken as the
// network it names.
//
// The proxy sees an IPv4 peer as an IPv4 address, even on a dual-stack
// listener, so an IPv4-mapped IPv6 entry (::ffff:10.0.0.1, ::ffff:0:0/96 and
// longer) is turned into the IPv4 entry it means; one that spans more than
// the mapped range could never match as written and is refused.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errors.New("an IPv4-mapped prefix must be /96 or longer")
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		// A zone names an interface on this machine; it cannot match a peer
		// address as the proxy sees it.
		return netip.Prefix{}, errors.New("zone not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

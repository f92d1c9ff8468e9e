package main

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// isSelf reports whether u points at the proxy's own port on this machine.
func isSelf(u *url.URL, port int) bool {
	p := u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443", "h2c": "80"}[u.Scheme]
	}
	if p != strconv.Itoa(port) {
		return false
	}
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	return isLoopback(host) || (err == nil && a.IsUnspecified())
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/switchyard-proxy/switchyard/pool"
)

// demoAddresses returns the address to run a test backend on for each
// configured backend (one per address, whatever the paths). The test
// backends are plain HTTP on this machine: a backend elsewhere cannot be run
// here, and one on https would not be reached.
func demoAddresses(backends []pool.Spec) ([]string, error) {
	if len(backends) == 0 {
		return nil, errors.New("the config lists no backends to run")
	}
	var addrs []string
	for _, b := range backends {
		raw := b.URL
		u, err := url.Parse(raw) // already checked by pool.ParseURL
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("backend %s: the test backends speak plain http", raw)
		}
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("backend %s is not on this machine; -demo runs backends on localhost or 127.0.0.1 only", raw)
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if addr := net.JoinHostPort(u.Hostname(), port); !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// printDemo tells a person running -demo what to try. The token itself is
// not printed: whoever set it knows it, and terminals get recorded.
func printDemo(w io.Writer, lns listeners, withToken bool) {
	_, proxyPort, _ := net.SplitHostPort(lns.proxy.Addr().String())
	auth := ""
	if withToken {
		auth = " -H 'Authorization: Bearer <admin_token>'"
	}
	fmt.Fprintf(w, `
switchyard demo: test backends on %[1]s, the proxy on port %[2]s, its admin API on %[3]s.
Try:
  curl localhost:%[2]s/
  curl 'localhost:%[2]s/?sleep=2s'
  curl%[5]s %[3]s/status
  curl%[5]s -X POST %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "http://localhost:8085"}'
  curl%[5]s -X DELETE %[3]s/backends -H 'Content-Type: application/json' -d '{"url": "%[4]s"}'
A backend added with POST is used once a health check passes: start one with
  PORT=8085 go run ./cmd/testbackend
Ctrl-C stops everything.

`, strings.Join(lns.demoAddrs, ", "), proxyPort, lns.admin.Addr().String(), "http://"+lns.demoAddrs[0], auth)
}

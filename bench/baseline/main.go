// Command baseline is the benchmark's yardstick: a bare httputil.ReverseProxy
// with round-robin over fixed backends and a transport tuned as the proxy's
// is. It has no pool owner, no health checks, no retries and no counters: what
// the proxy costs beyond this is the cost of those.
//
// With -tls-addr, -cert and -key it also serves HTTPS there, HTTP/2 and
// HTTP/1.1 by ALPN, as net/http does by itself for a TLS server: the
// yardstick for the proxy's TLS port.
//
//	go run ./bench/baseline -addr 127.0.0.1:19010 -backends http://127.0.0.1:19001,http://127.0.0.1:19002
//
// Goroutines: one per server; main waits for the first of them to fail and
// exits, which ends the other (it runs until then, or until it is killed).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19010", "listen address")
	backends := flag.String("backends", "http://127.0.0.1:19001", "comma-separated backend URLs")
	tlsAddr := flag.String("tls-addr", "", "HTTPS listen address (off when empty)")
	certFile := flag.String("cert", "", "PEM certificate chain for -tls-addr")
	keyFile := flag.String("key", "", "PEM key for -tls-addr")
	flag.Parse()
	if *tlsAddr != "" && (*certFile == "" || *keyFile == "") {
		fmt.Fprintln(os.Stderr, "baseline: -tls-addr needs -cert and -key")
		os.Exit(2)
	}

	var targets []*url.URL
	for _, raw := range strings.Split(*backends, ",") {
		u, err := url.Parse(raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(2)
		}
		targets = append(targets, u)
	}
	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targets[next.Add(1)%uint64(len(targets))])
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
	failed := make(chan error, 2)
	go func() { // main waits for its error on failed
		srv := &http.Server{Addr: *addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
		failed <- srv.ListenAndServe()
	}()
	if *tlsAddr != "" {
		go func() { // main waits for its error on failed
			srv := &http.Server{Addr: *tlsAddr, Handler: rp, ReadHeaderTimeout: 10 * time.Second,
				TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
			failed <- srv.ListenAndServeTLS(*certFile, *keyFile)
		}()
	}
	fmt.Fprintln(os.Stderr, "baseline:", <-failed)
	os.Exit(1)
}

// Command baseline is the benchmark's yardstick: a bare httputil.ReverseProxy
// with round-robin over fixed backends and a transport tuned as the proxy's
// is. It has no pool owner, no health checks, no retries and no counters: what
// the proxy costs beyond this is the cost of those.
//
//	go run ./bench/baseline -addr 127.0.0.1:19010 -backends http://127.0.0.1:19001,http://127.0.0.1:19002
package main

import (
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
	flag.Parse()

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
	srv := &http.Server{Addr: *addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "baseline:", srv.ListenAndServe())
	os.Exit(1)
}

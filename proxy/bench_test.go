package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// BenchmarkServeHTTP compares the proxy's handler with a bare
// httputil.ReverseProxy over the same backend and transport settings: the
// difference is what the pool owner, the retrier and the counters cost per
// request. Both run in-process with a recorder as the client, so that the
// client's own cost is left out.
func BenchmarkServeHTTP(b *testing.B) {
	body := strings.Repeat("x", 63) + "\n"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		w.Write([]byte(body))
	}))
	defer be.Close()
	target, _ := url.Parse(be.URL)

	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
		},
	}

	p := pooltest.Start(b, pool.Config{}, be.URL)
	ctx, cancel := context.WithCancel(context.Background())
	px := mustProxy(b, p, proxy.Config{})
	defer px.CloseIdleConnections()
	quiet := mustProxy(b, p, proxy.Config{DisableMetrics: true})
	defer quiet.CloseIdleConnections()
	al, err := proxy.NewAccessLog(io.Discard, 0)
	if err != nil {
		b.Fatal(err)
	}
	alDone := make(chan struct{})
	go func() { defer close(alDone); al.Run(ctx) }() // waited for below
	defer func() { cancel(); <-alDone }()
	logged := mustProxy(b, p, proxy.Config{AccessLog: al})
	defer logged.CloseIdleConnections()

	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"switchyard", px}, {"switchyard-nometrics", quiet}, {"switchyard-accesslog", logged}} {
		b.Run("proxy="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "http://front.example/", nil)
					req.RemoteAddr = "127.0.0.1:1234"
					w := httptest.NewRecorder()
					tc.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
		})
	}
	bare.Transport.(*http.Transport).CloseIdleConnections()
}

func mustProxy(b *testing.B, p proxy.Pool, cfg proxy.Config) *proxy.Proxy {
	b.Helper()
	px, err := proxy.New(p, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return px
}

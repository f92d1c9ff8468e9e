package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchVariants are the transports compared: h1-nopeek hides the socket
// from the liveness check (as a custom dialer's wrapper would), to show
// what the check costs.
var benchVariants = []struct {
	name string
	new  func() transport
}{
	{"h1", func() transport { return variants[0].new(config{}) }},
	{"h1-nopeek", func() transport { return &Transport{DialContext: hidingDialer} }},
	{"std", func() transport { return variants[1].new(config{}) }},
}

func smallBackend(b *testing.B) *backend {
	return newBackend(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})
}

// BenchmarkRoundTrip is a small GET on a kept-alive connection, one at a
// time and from many goroutines. The request's context can be cancelled, as
// a server's request's is.
func BenchmarkRoundTrip(b *testing.B) {
	be := smallBackend(b)
	for _, v := range benchVariants {
		b.Run(v.name, func(b *testing.B) {
			tr := v.new()
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			do := func(req *http.Request) error {
				res, err := tr.RoundTrip(req)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return err
			}
			b.Run("serial", func(b *testing.B) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					if err := do(req); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				defer reportCPU(b)()
				b.RunParallel(func(pb *testing.PB) {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
					for pb.Next() {
						if err := do(req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkReverseProxy is the proxy's case: httputil.ReverseProxy with
// Rewrite over the transport, 64 clients each on its own kept-alive
// connection, a small GET each time. Client, proxy and backend share the
// process, so cpu-ns/op is the CPU of all three; only the transport
// differs.
func BenchmarkReverseProxy(b *testing.B) {
	const clients = 64
	be := smallBackend(b)
	for _, v := range benchVariants {
		b.Run(v.name, func(b *testing.B) {
			tr := v.new()
			defer tr.CloseIdleConnections()
			fr := front(b, tr, be.URL)
			conns := make([]net.Conn, clients)
			for i := range conns {
				c, err := net.Dial("tcp", fr.Listener.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			const req = "GET / HTTP/1.1\r\nHost: front\r\n\r\n"
			var left, failed atomic.Int64
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.ResetTimer()
			report := reportCPU(b)
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Go(func() { // waited for below
					br := bufio.NewReader(c)
					for left.Add(-1) >= 0 {
						if _, err := io.WriteString(c, req); err != nil {
							failed.Add(1)
							return
						}
						res, err := http.ReadResponse(br, nil)
						if err != nil {
							failed.Add(1)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != http.StatusOK {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			report()
			if n := failed.Load(); n > 0 {
				b.Errorf("%d requests failed", n)
			}
		})
	}
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per op as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if used := processCPU() - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkLivenessCheck is what checking an idle connection before reuse
// costs: one non-blocking peek at its socket.
func BenchmarkLivenessCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c := newConn(nc, newHostPool("x", 1, time.Minute))
	defer c.close()
	b.ReportAllocs()
	for b.Loop() {
		if !c.stillOpen() {
			b.Fatal("closed")
		}
	}
}

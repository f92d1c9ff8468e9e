package framing

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// loopConn is a net.Conn whose reads replay data endlessly, in reads of at
// most the caller's buffer, as a socket full of pipelined requests would.
type loopConn struct {
	net.Conn // nil: only what the benchmark calls is implemented
	data     []byte
	off      int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}

func (c *loopConn) SetReadDeadline(time.Time) error { return nil }

const browserGET = "GET /static/app.js?v=3 HTTP/1.1\r\nHost: example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\nReferer: https://example.com/\r\n\r\n"

// BenchmarkConnRead reads pipelined requests through a conn in 4 KiB reads
// (the size of net/http's buffer), framing them; the stream's length is no
// multiple of 4 KiB, so heads also fall across reads.
func BenchmarkConnRead(b *testing.B) {
	streams := map[string]string{
		"get": strings.Repeat(browserGET, 41),
		"mixed": strings.Repeat(browserGET+
			"POST /api HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"+strings.Repeat("x", 64)+
			"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"40\r\n"+strings.Repeat("y", 64)+"\r\n10;ext=1\r\n"+strings.Repeat("z", 16)+"\r\n0\r\n\r\n", 13),
	}
	for name, stream := range streams {
		b.Run(name, func(b *testing.B) {
			heads := bytes.Count([]byte(stream), []byte(" HTTP/1.1\r\n"))
			l, err := NewListener(nil, Config{})
			if err != nil {
				b.Fatal(err)
			}
			c := l.newConn(&loopConn{data: []byte(stream)})
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				c.led.drain()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*4096/float64(len(stream))*float64(heads)), "ns/head")
		})
	}
}

// drain forgets every recorded head, as the handler's Next calls would.
func (l *ledger) drain() {
	l.mu.Lock()
	l.heads, l.lines, l.next = l.heads[:0], l.lines[:0], 0
	l.mu.Unlock()
}

// BenchmarkServer serves small keep-alive GETs from an http.Server on a
// plain listener and on a framing one, side by side: the difference is the
// framing's cost per request (the handler calls Next in both). Requests go
// in pipelined batches of 16 so that the loopback's latency does not hide
// it.
func BenchmarkServer(b *testing.B) {
	for _, name := range []string{"plain", "framing", "framing+timeouts"} {
		b.Run(name, func(b *testing.B) {
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = tcp
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if Next(r).Action != Pass {
					b.Error("not Pass")
				}
				_, _ = w.Write([]byte("ok"))
			})}
			if name != "plain" {
				cfg := Config{}
				if name == "framing+timeouts" {
					cfg = Config{SendTimeout: time.Minute, BodyTimeout: time.Minute}
				}
				fl, err := NewListener(tcp, cfg)
				if err != nil {
					b.Fatal(err)
				}
				ln = fl
				ConfigureServer(srv)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }() // waited for below
			defer func() {
				_ = srv.Close()
				<-served
			}()
			c, err := net.Dial("tcp", tcp.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const batch = 16
			req := []byte(strings.Repeat("GET /index HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n", batch))
			br := bufio.NewReaderSize(c, 64<<10)
			// Every response has the same length (Date has a fixed width):
			// learn it once, then read exactly that much.
			if _, err := c.Write(req[:len(req)/batch]); err != nil {
				b.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			var one bytes.Buffer
			_ = resp.Write(&one)
			size := len("HTTP/1.1 200 OK\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok")
			sink := make([]byte, size*batch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, sink); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

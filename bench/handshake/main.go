// Command handshake measures how many new TLS connections a server takes
// per second. Each of -c workers, over and over until -d is up, dials,
// shakes hands in full, sends one GET with "Connection: close", reads the
// answer and hangs up: a client that comes once and goes.
//
// Every handshake is a full one. A Go client resumes a session only from a
// ClientSessionCache, and this one has none; each connection's
// ConnectionState is checked all the same, and a resumed one is counted
// apart and fails the run. (h2load and wrk, given "Connection: close",
// reconnect but offer the server their last session: they measure
// resumptions.)
//
// The key exchange is X25519 alone unless -mlkem: that is what an OpenSSL
// 3.0 client offers, and an OpenSSL 3.0 server (nginx, HAProxy) can do
// nothing better, while a Go server would pick the costlier hybrid
// X25519MLKEM768 if offered it. Certificates are not verified (the
// benchmark's is self-signed), as wrk and h2load do not verify them either;
// the server's signature over the handshake is checked, as always.
//
// It prints one line of key=value pairs: handshakes (connections that got a
// 2xx answer), errors, resumed, seconds, rate (handshakes per second), p50_us
// and p99_us (dial to the end of the answer). The first connection's TLS
// version, cipher suite, key exchange and protocol go to stderr, and so
// does the first error. Failed and resumed connections are counted, not
// fatal: the caller decides (bench/run.sh counts both as errors).
//
//	go run ./bench/handshake -addr 127.0.0.1:19031 -c 16 -d 8s
//
// Goroutines: main starts the workers and waits for them; each stops at the
// first connection it would begin after -d, and every connection has a
// deadline of -timeout, so the run ends by itself.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// errResumed marks a connection the server let resume a session: it would
// not have measured a full handshake.
var errResumed = errors.New("handshake: the session was resumed")

func main() {
	addr := flag.String("addr", "127.0.0.1:19031", "server address")
	name := flag.String("name", "localhost", "server name to send (SNI and Host)")
	workers := flag.Int("c", 16, "connections in flight")
	duration := flag.Duration("d", 8*time.Second, "how long to go on")
	timeout := flag.Duration("timeout", 5*time.Second, "limit for one connection, dial to answer")
	mlkem := flag.Bool("mlkem", false, "offer X25519MLKEM768 before X25519")
	flag.Parse()
	if *workers <= 0 || *duration <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "handshake: -c, -d and -timeout must be positive")
		os.Exit(2)
	}

	curves := []tls.CurveID{tls.X25519}
	if *mlkem {
		curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
	}
	cfg := &tls.Config{
		ServerName:         *name,
		InsecureSkipVerify: true, // the benchmark's certificate is self-signed; see the package doc
		MinVersion:         tls.VersionTLS12,
		CurvePreferences:   curves,
		NextProtos:         []string{"http/1.1"},
		// No ClientSessionCache: nothing to resume from.
	}

	type tally struct {
		latencies []time.Duration
		errors    int
		resumed   int
		firstErr  error
	}
	tallies := make([]tally, *workers)
	var first sync.Once
	start := time.Now()
	end := start.Add(*duration)
	var wg sync.WaitGroup
	for i := range tallies {
		t := &tallies[i]
		wg.Go(func() { // waited for by wg.Wait below
			for time.Now().Before(end) {
				t0 := time.Now()
				cs, err := once(cfg, *addr, *name, *timeout)
				switch {
				case errors.Is(err, errResumed):
					t.resumed++
				case err != nil:
					t.errors++
					if t.firstErr == nil {
						t.firstErr = err
					}
				default:
					t.latencies = append(t.latencies, time.Since(t0))
					first.Do(func() {
						fmt.Fprintf(os.Stderr, "handshake: %s %s %s %s\n", tls.VersionName(cs.Version),
							tls.CipherSuiteName(cs.CipherSuite), cs.CurveID, cs.NegotiatedProtocol)
					})
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	var errs, resumed int
	var firstErr error
	for _, t := range tallies {
		all = append(all, t.latencies...)
		errs += t.errors
		resumed += t.resumed
		if firstErr == nil {
			firstErr = t.firstErr
		}
	}
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "handshake: first error:", firstErr)
	}
	slices.Sort(all)
	pct := func(p float64) int64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(p*float64(len(all)-1))].Microseconds()
	}
	fmt.Printf("handshakes=%d errors=%d resumed=%d seconds=%.3f rate=%.1f p50_us=%d p99_us=%d\n",
		len(all), errs, resumed, elapsed.Seconds(), float64(len(all))/elapsed.Seconds(), pct(0.50), pct(0.99))
}

// once makes one connection: dial, full handshake, one request, its whole
// answer, close. It returns the connection's TLS state.
func once(cfg *tls.Config, addr, host string, timeout time.Duration) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	conn := c.(*tls.Conn)
	cs := conn.ConnectionState()
	if cs.DidResume {
		return cs, errResumed
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return cs, err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return cs, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return cs, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return cs, err
	}
	if res.StatusCode/100 != 2 {
		return cs, fmt.Errorf("handshake: status %s", res.Status)
	}
	return cs, nil
}

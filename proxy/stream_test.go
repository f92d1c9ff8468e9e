package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Server-sent events reach the client as the backend flushes them: the client
// reads each event before the backend is allowed to send the next.
func TestServerSentEventsStream(t *testing.T) {
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	res, err := f.client.Get(f.front.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	for i := range 3 {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("data: event %d\n", i), line)
		_, err = rd.ReadString('\n')
		require.NoError(t, err)
		next <- struct{}{}
	}
}

// Chunks written and flushed by the backend reach the client one by one.
func TestChunkedResponseStreams(t *testing.T) {
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d;", i)
			w.(http.Flusher).Flush()
			<-next
		}
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	res, err := f.client.Get(f.front.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, []string{"chunked"}, res.TransferEncoding)
	buf := make([]byte, len("chunk 0;"))
	for i := range 3 {
		_, err := io.ReadFull(res.Body, buf)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("chunk %d;", i), string(buf))
		next <- struct{}{}
	}
}

// upgradeEcho is a backend that switches to a line-echo protocol, as a
// WebSocket server would, and records when the connection ends.
func upgradeEcho(closed chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer func() { conn.Close(); close(closed) }()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprint(brw, "echo: "+line)
			brw.Flush()
		}
	}
}

func TestUpgradedConnectionIsProxiedBothWays(t *testing.T) {
	closed := make(chan struct{})
	be := backend(t, upgradeEcho(closed))
	var logged pooltest.SyncBuffer
	al, _ := runAccessLog(t, &logged) // stopped by the test's Cleanup
	f := newFixture(t, proxy.Config{RequestTimeout: 100 * time.Millisecond, AccessLog: al}, be.URL)

	conn, rd := pooltest.DialUpgrade(t, f.front.Listener.Addr().String(), "echo")

	fmt.Fprint(conn, "hello\n")
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo: hello\n", line)
	assert.Equal(t, int64(1), f.status(t, be.URL).InFlight, "an open upgraded connection is in flight")

	// Well past the request timeout: an upgraded connection is not cut by it.
	time.Sleep(300 * time.Millisecond)
	fmt.Fprint(conn, "still there\n")
	line, err = rd.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo: still there\n", line)

	conn.Close()
	<-closed
	f.assertIdle(t)
	// Logged as what the client got: 101, though ReverseProxy writes it
	// past the ResponseWriter.
	assert.Eventually(t, func() bool { return strings.Contains(logged.String(), `"status":101`) }, 5*time.Second, 10*time.Millisecond,
		"access log: %s", logged.String())
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), p.left)
	for i := range b[:n] {
		b[i] = byte((p.left - int64(i)) % 251)
	}
	p.left -= n
	return int(n), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &patternReader{left: n})
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// 32 MiB go up and 32 MiB come down intact, streamed: the whole process
// (client, proxy and backend) allocates far less than the bodies' size.
func TestLargeBodiesStreamBothWays(t *testing.T) {
	const size = 32 << 20
	want := patternSum(size)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
			http.Error(w, fmt.Sprintf("upload damaged: %d bytes, %v", n, err), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, &patternReader{left: size})
	})
	f := newFixture(t, proxy.Config{}, be.URL)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, err := http.NewRequest(http.MethodPut, f.front.URL, &patternReader{left: size})
	require.NoError(t, err)
	req.ContentLength = size
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	require.NoError(t, err)
	runtime.ReadMemStats(&after)

	assert.Equal(t, int64(size), n)
	assert.Equal(t, want[:], h.Sum(nil), "download intact")
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while moving %d MiB each way", allocated>>10, size>>20)
	assert.Less(t, allocated, uint64(size/8), "bodies are streamed, not buffered")
}

func TestHeadRequest(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		w.Header().Set("X-Method", r.Method)
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	res, err := f.client.Head(f.front.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "HEAD", res.Header.Get("X-Method"))
	assert.Equal(t, int64(1234), res.ContentLength)
	assert.Empty(t, readAll(t, res))
}

// A client that asks "Expect: 100-continue" gets the 100 and its body is
// delivered.
func TestExpectContinue(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %q", b)
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprint(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	rd := bufio.NewReader(conn)
	status, err := rd.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 100 Continue\r\n", status, "the client is told to send its body before sending it")
	blank, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "\r\n", blank)
	fmt.Fprint(conn, "hello")
	// The backend's own 100 Continue may follow, forwarded as the interim
	// answer it is (a client must take any number of them); then the
	// answer.
	res, err := http.ReadResponse(rd, nil)
	for err == nil && res.StatusCode == http.StatusContinue {
		res, err = http.ReadResponse(rd, nil)
	}
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, `got "hello"`, readAll(t, res), "headers: %v", res.Header)
}

func TestTrailers(t *testing.T) {
	var gotTrailer http.Header
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		gotTrailer = r.Trailer.Clone()
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprint(w, "body")
		w.Header().Set("X-Checksum", "abc123")
	})
	f := newFixture(t, proxy.Config{}, be.URL)
	req, err := http.NewRequest(http.MethodPost, f.front.URL, io.MultiReader(strings.NewReader("payload")))
	require.NoError(t, err)
	req.Trailer = http.Header{"X-Client-Sum": {"xyz"}}
	req.Header.Set("Te", "trailers")
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "body", readAll(t, res))
	assert.Equal(t, "abc123", res.Trailer.Get("X-Checksum"), "response trailer")
	assert.Equal(t, "xyz", gotTrailer.Get("X-Client-Sum"), "request trailer")
}

// The client's connection is kept alive across requests, and the backend
// sees a small, bounded number of connections: roughly the concurrency, not
// one per request.
func TestConnectionsAreReusedBothSides(t *testing.T) {
	be := backend(t, echo("a"))
	f := newFixture(t, proxy.Config{}, be.URL)

	const clients, each = 8, 50
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				res, err := f.client.Get(f.front.URL)
				if !assert.NoError(t, err) {
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests, %d client connections, %d backend connections", clients*each, f.frontConns.Load(), be.conns.Load())
	assert.LessOrEqual(t, f.frontConns.Load(), int64(2*clients))
	assert.LessOrEqual(t, be.conns.Load(), int64(2*clients))
	f.assertIdle(t)
}

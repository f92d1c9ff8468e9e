package h1

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transport is what the tests need of both transports under test.
type transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// config is the one configuration both transports are built from.
type config struct {
	dialTimeout     time.Duration
	idleTimeout     time.Duration
	maxIdle         int
	maxHeaderBytes  int64
	continueTimeout time.Duration
}

func (c config) withDefaults() config {
	c.dialTimeout = orDefault(c.dialTimeout, DefaultDialTimeout)
	c.idleTimeout = orDefault(c.idleTimeout, DefaultIdleConnTimeout)
	c.maxIdle = orDefault(c.maxIdle, DefaultMaxIdleConnsPerHost)
	c.maxHeaderBytes = orDefault(c.maxHeaderBytes, DefaultMaxResponseHeaderBytes)
	c.continueTimeout = orDefault(c.continueTimeout, DefaultExpectContinueTimeout)
	return c
}

// variants are the transports every behaviour runs against: this package's,
// and the standard one configured as the proxy configures it, which is the
// reference the tests prove the first matches.
var variants = []struct {
	name string
	new  func(config) transport
}{
	{"h1", func(c config) transport {
		c = c.withDefaults()
		return &Transport{
			DialTimeout:            c.dialTimeout,
			IdleConnTimeout:        c.idleTimeout,
			MaxIdleConnsPerHost:    c.maxIdle,
			MaxResponseHeaderBytes: c.maxHeaderBytes,
			ExpectContinueTimeout:  c.continueTimeout,
		}
	}},
	{"std", func(c config) transport {
		c = c.withDefaults()
		return &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: c.dialTimeout, KeepAlive: DefaultKeepAlive}).DialContext,
			MaxIdleConnsPerHost:    c.maxIdle,
			IdleConnTimeout:        c.idleTimeout,
			MaxResponseHeaderBytes: c.maxHeaderBytes,
			ExpectContinueTimeout:  c.continueTimeout,
			DisableCompression:     true,
		}
	}},
}

// backend is an httptest server that counts the connections it accepts and
// those that have closed. (Its ConnState hook must never block: httptest
// calls it holding the lock that accepting a connection takes.)
type backend struct {
	*httptest.Server
	opened, closed atomic.Int64 // closed counts hijacked connections too
}

func newBackend(t testing.TB, h http.HandlerFunc) *backend {
	t.Helper()
	return newBackendWith(t, h, nil)
}

// newBackendWith lets setup change the server before it starts.
func newBackendWith(t testing.TB, h http.HandlerFunc, setup func(*http.Server)) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.closed.Add(1)
		}
	}
	b.Config.ErrorLog = quietLog()
	if setup != nil {
		setup(b.Config)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// waitClosed waits until n of b's connections have closed.
func (b *backend) waitClosed(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return b.closed.Load() >= n }, 5*time.Second, time.Millisecond,
		"the backend saw %d of %d connections close", b.closed.Load(), n)
}

// rawBackend serves each accepted connection with serve, on a goroutine of
// pooltest.ServeConns, which closes the connection when serve returns and
// whose cleanup closes the listener and the connections, then waits.
type rawBackend struct {
	url      string
	accepted atomic.Int64 // connections whose serving has started
}

func newRawBackend(t *testing.T, serve func(c net.Conn)) *rawBackend {
	t.Helper()
	rb := &rawBackend{}
	rb.url = "http://" + pooltest.ServeConns(t, func(c net.Conn) {
		rb.accepted.Add(1)
		serve(c)
	})
	return rb
}

func (rb *rawBackend) URL() string { return rb.url }

// readRequests reads requests from c as a server would, calling answer for
// each, until c fails or answer returns false.
func readRequests(c net.Conn, answer func(req *http.Request, w *bufio.Writer) bool) {
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if !answer(req, bw) || bw.Flush() != nil {
			return
		}
	}
}

func get(t *testing.T, tr transport, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	res, err := tr.RoundTrip(req)
	require.NoError(t, err)
	return res
}

// getConcurrently sends n GETs of u with tr at once, each reading its body
// to the end and closing it, and returns their errors when all are done, for
// the test goroutine to check.
func getConcurrently(t *testing.T, tr transport, u string, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		wg.Go(func() { // waited for below
			res, err := tr.RoundTrip(req)
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// readAll reads res's body to its end and closes it.
func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// patternReader yields n bytes of a repeating pattern without holding them:
// byte i of the stream is i mod 251.
type patternReader struct {
	left, off int64
}

// patternBlock holds the pattern long enough to serve a read of 64 KiB with
// one copy, which keeps large bodies quick under the race detector.
var patternBlock = func() []byte {
	b := make([]byte, 251*262)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

func newPattern(n int64) *patternReader { return &patternReader{left: n} }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	n := 0
	for n < len(b) {
		n += copy(b[n:], patternBlock[(p.off+int64(n))%251:])
	}
	p.left -= int64(n)
	p.off += int64(n)
	return n, nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newPattern(n))
	return [32]byte(h.Sum(nil))
}

// trackedBody is a request body that records how much of it was read and
// whether it was closed.
type trackedBody struct {
	io.Reader
	reads  atomic.Int64 // calls
	n      atomic.Int64 // bytes
	closed atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	n, err := b.Reader.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *trackedBody) Close() error {
	b.closed.Store(true)
	return nil
}

// front is an httputil.ReverseProxy, as the proxy builds it, over tr and
// the backend at target.
func front(t testing.TB, tr http.RoundTripper, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			if pr.In.Trailer != nil {
				pr.Out.Trailer = pr.In.Trailer // as the proxy does: trailers are forwarded
			}
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  tr,
		BufferPool: bufferPool{},
		ErrorLog:   quietLog(),
	}
	s := httptest.NewUnstartedServer(rp)
	s.Config.ErrorLog = quietLog()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// errTest is a cancellation cause the tests look for.
var errTest = errors.New("test: cancelled on purpose")

func assertDialError(t *testing.T, err error) {
	t.Helper()
	var op *net.OpError
	if assert.True(t, errors.As(err, &op), "a *net.OpError, got %T: %v", err, err) {
		assert.Equal(t, "dial", op.Op)
	}
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// bufferPool lends ReverseProxy its copy buffers, as the proxy's does, so
// that a benchmark measures the transport rather than 32 KiB per request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[32 << 10]byte)[:] }

func (bufferPool) Put(b []byte) { buffers.Put((*[32 << 10]byte)(b)) }

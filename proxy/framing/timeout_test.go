package framing

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// bulkHandler writes size bytes in writes of chunk bytes and reports the
// first write error (nil if all went out).
func bulkHandler(size, chunk int, result chan<- error) func(http.ResponseWriter, *http.Request, Verdict) {
	return func(w http.ResponseWriter, r *http.Request, v Verdict) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, chunk)
		var err error
		for sent := 0; sent < size && err == nil; sent += chunk {
			_, err = w.Write(buf)
		}
		result <- err
	}
}

func TestSendTimeoutCutsAStalledReader(t *testing.T) {
	const size = 64 << 20
	cases := []struct {
		name string
		copy bool // io.Copy into the response: net/http calls the conn's ReadFrom
		live bool // SendTimeout set by SetConfig once the connection is open
	}{
		{name: "writes"},
		{name: "io.Copy", copy: true},
		{name: "SendTimeout turned on live", live: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			result := make(chan error, 1)
			cfg := Config{SendTimeout: 300 * time.Millisecond}
			if tc.live {
				cfg = Config{}
			}
			fx := startServer(t, cfg, func(fx *fixture) {
				fx.serve = bulkHandler(size, 32<<10, result)
				if tc.copy {
					fx.serve = func(w http.ResponseWriter, r *http.Request, v Verdict) {
						w.Header().Set("Content-Length", strconv.Itoa(size))
						_, err := io.Copy(w, io.LimitReader(zeros{}, size))
						result <- err
					}
				}
			})
			c, err := net.Dial("tcp", fx.addr)
			require.NoError(t, err)
			defer c.Close()
			if tc.live {
				require.Eventually(t, func() bool { return fx.ln.Stats().Open == 1 }, 5*time.Second, time.Millisecond)
				require.NoError(t, fx.ln.SetConfig(Config{SendTimeout: 300 * time.Millisecond}))
			}
			_, err = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			// The client reads nothing: once the socket buffers are full,
			// the server's write makes no progress.
			select {
			case err := <-result:
				assert.True(t, isTimeout(err), "the write fails by SendTimeout: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("the stalled download was not cut")
			}
			// The server closed: the client gets a truncated response, then EOF.
			require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
			n, err := io.Copy(io.Discard, c)
			assert.NoError(t, err)
			assert.Less(t, n, int64(size))
			fx.srv.Close()
		})
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestSendTimeoutSparesASteadyReader(t *testing.T) {
	const size = 16 << 20
	result := make(chan error, 1)
	// Writes of 4 MiB, each slower than SendTimeout at this reader's pace:
	// they survive because each 64 KiB segment gets a deadline of its own.
	fx := startServer(t, Config{SendTimeout: 300 * time.Millisecond}, func(fx *fixture) {
		fx.serve = bulkHandler(size, 4<<20, result)
	})
	c, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	defer c.Close()
	// Progress is what the sender's kernel sees. Linux reopens a window
	// only once a good part of the receive buffer is read, and wakes a
	// blocked writer only once about half of its send buffer (autotuned
	// up to 4 MiB) is free: the reader must move a couple of megabytes
	// per SendTimeout to look steady, so it reads 256 KiB every 20 ms,
	// through a small receive buffer as slow clients have. The whole
	// takes about four times SendTimeout.
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(64<<10))
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var got int64
	for {
		n, err := io.CopyN(io.Discard, resp.Body, 256<<10)
		got += n
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.EqualValues(t, size, got)
	assert.NoError(t, <-result)
}

func TestBodyTimeoutCutsAStalledUpload(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	result := make(chan error, 1)
	fx := startServer(t, Config{BodyTimeout: 300 * time.Millisecond}, func(fx *fixture) {
		fx.serve = func(w http.ResponseWriter, r *http.Request, v Verdict) {
			_, err := io.ReadAll(r.Body)
			result <- err
		}
	})
	c, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	require.NoError(t, err)
	select {
	case err := <-result:
		assert.True(t, isTimeout(err), "the body read fails by BodyTimeout: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the stalled upload was not cut")
	}
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(c) // the server closes
	assert.NoError(t, err)
	fx.srv.Close()
}

// TestBodyTimeoutOnlyInsideABody keeps a connection idle, and a request
// head half sent, for longer than BodyTimeout: only the server's own
// timeouts apply there, and a chunked upload that keeps coming is not cut.
func TestBodyTimeoutOnlyInsideABody(t *testing.T) {
	fx := startServer(t, Config{BodyTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	br := bufio.NewReader(c)
	roundTrip := func(pieces ...string) string {
		t.Helper()
		for _, p := range pieces {
			_, err := io.WriteString(c, p)
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond)
		}
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, "ok /a", roundTrip("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"))
	time.Sleep(500 * time.Millisecond) // idle, the background read pending
	assert.Equal(t, "ok /b", roundTrip("GET /b HTTP/1.1\r\n", "Host: x\r\n", "\r\n"))
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, "ok /c", roundTrip("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"1\r\na\r\n", "1\r\nb\r\n", "1\r\nc\r\n", "0\r\n\r\n"))
	assert.Equal(t, []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}, {"POST", "/c", "HTTP/1.1", Pass}}, fx.requests())
}

// TestAbortOfAPendingBodyRead returns from a handler while another
// goroutine is blocked reading the body, with a BodyTimeout far away:
// net/http aborts that read by a deadline in the past, and the read must
// end at once rather than when BodyTimeout would.
func TestAbortOfAPendingBodyRead(t *testing.T) {
	readEnded := make(chan error, 1)
	fx := startServer(t, Config{BodyTimeout: time.Minute}, func(fx *fixture) {
		fx.serve = func(w http.ResponseWriter, r *http.Request, v Verdict) {
			assert.NoError(t, http.NewResponseController(w).EnableFullDuplex())
			first := make(chan struct{})
			go func() { // reports to readEnded, which the test waits for
				buf := make([]byte, 10)
				_, err := io.ReadFull(r.Body, buf)
				close(first)
				if err == nil {
					_, err = r.Body.Read(buf) // blocks: the client sends no more
				}
				readEnded <- err
			}()
			<-first
			time.Sleep(50 * time.Millisecond) // let the second read block
			_, _ = io.WriteString(w, "done")
		}
	})
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", fx.addr)
		require.NoError(t, err)
		_, err = io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
		require.NoError(t, err)
		select {
		case err := <-readEnded:
			assert.Error(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the aborted body read stayed blocked")
		}
		_ = c.Close()
	}
}

// TestDeadlineAbortRace races a Read inside a body (which sets
// BodyTimeout's deadline) against a deadline in the past set from another
// goroutine, the way net/http aborts a pending read: the Read must always
// end promptly.
func TestDeadlineAbortRace(t *testing.T) {
	l, err := NewListener(nil, Config{BodyTimeout: time.Minute})
	require.NoError(t, err)
	client, server := tcpPair(t)
	_ = client
	c := testConn(l, server)
	c.f.state, c.f.remain = frameBodyCL, 1<<40
	longAgo := time.Unix(1, 0)
	for i := 0; i < 300; i++ {
		done := make(chan error, 1)
		go func() { // reports to done, waited for below
			_, err := c.Read(make([]byte, 16))
			done <- err
		}()
		if d := rand.N(200 * time.Microsecond); d > 0 {
			time.Sleep(d)
		}
		require.NoError(t, c.SetReadDeadline(longAgo))
		select {
		case err := <-done:
			require.True(t, isTimeout(err), "round %d: %v", i, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the aborted Read did not end", i)
		}
		require.NoError(t, c.SetReadDeadline(time.Time{}))
	}
}

// TestBodyTimeoutSparesTheBackgroundRead pipelines a POST head behind a
// slow GET and sends the POST's body only after the GET's response. The
// framer is then inside the POST's body while the GET's handler runs, but
// the server is not waiting for body bytes: its one-byte background read
// must not get BodyTimeout (its failure would cancel the GET's context).
func TestBodyTimeoutSparesTheBackgroundRead(t *testing.T) {
	ctxErr := make(chan error, 1)
	fx := startServer(t, Config{BodyTimeout: 200 * time.Millisecond}, func(fx *fixture) {
		fx.serve = func(w http.ResponseWriter, r *http.Request, v Verdict) {
			if r.URL.Path == "/slow" {
				time.Sleep(600 * time.Millisecond)
				ctxErr <- r.Context().Err()
			}
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "ok "+r.RequestURI)
		}
	})
	c, err := net.Dial("tcp", fx.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	assert.NoError(t, <-ctxErr, "the slow request's context")
	_, err = io.WriteString(c, "hello")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "ok /up", string(b))
}

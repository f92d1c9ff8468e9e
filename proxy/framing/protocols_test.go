package framing

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
)

// TestHijackedConnPassesEverything upgrades a connection, as a WebSocket
// does, and then sends bytes that would be requests (a CL+TE one among
// them): they reach the hijacker untouched, no handler sees them, and no
// timeout of the framer cuts the hijacked connection.
func TestHijackedConnPassesEverything(t *testing.T) {
	const bulk = 8 << 20
	hijackerDone := make(chan struct{})
	fx := startServer(t, Config{SendTimeout: 200 * time.Millisecond, BodyTimeout: 200 * time.Millisecond}, func(fx *fixture) {
		fx.serve = func(w http.ResponseWriter, r *http.Request, v Verdict) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if !assert.NoError(t, err) {
				return
			}
			defer close(hijackerDone)
			defer c.Close()
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
			// A bulk write the client reads only after SendTimeout has
			// passed several times over.
			_, err = c.Write(make([]byte, bulk))
			assert.NoError(t, err, "SendTimeout must not apply after a hijack")
			_, err = io.Copy(c, brw) // echo until the client half-closes
			assert.NoError(t, err)
		}
	})
	c, br := pooltest.DialUpgrade(t, fx.addr, "test")
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))

	time.Sleep(600 * time.Millisecond) // > SendTimeout and BodyTimeout, with the server's write blocked
	n, err := io.CopyN(io.Discard, br, bulk)
	require.NoError(t, err)
	require.EqualValues(t, bulk, n)

	payload := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled + "\x00\xff\r\n\r\n"
	_, err = io.WriteString(c, payload)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	echo, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, payload, string(echo))
	<-hijackerDone

	assert.Equal(t, []seen{{"GET", "/ws", "HTTP/1.1", Pass}}, fx.requests())
	assert.Eventually(t, func() bool { return fx.ln.Stats().Open == 0 }, 5*time.Second, 10*time.Millisecond,
		"the hijacked connection's slot is freed when its owner closes it")
}

// TestH2CPriorKnowledge serves HTTP/2 without TLS on a Listener: the
// preface turns the connection to HTTP/2 and its requests Pass.
func TestH2CPriorKnowledge(t *testing.T) {
	fx := startServer(t, Config{SendTimeout: time.Second, BodyTimeout: time.Second}, func(fx *fixture) {
		fx.srv.Protocols = new(http.Protocols)
		fx.srv.Protocols.SetHTTP1(true)
		fx.srv.Protocols.SetUnencryptedHTTP2(true)
	})
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { // waited for by wg
			defer wg.Done()
			resp, err := client.Post("http://"+fx.addr+"/h2", "text/plain", strings.NewReader("body"))
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			assert.NoError(t, err)
			assert.Equal(t, "ok /h2", string(b))
			assert.Equal(t, 2, resp.ProtoMajor)
		}()
	}
	wg.Wait()
	got := fx.requests()
	require.Len(t, got, 8)
	for _, s := range got {
		assert.Equal(t, seen{"POST", "/h2", "HTTP/2.0", Pass}, s)
	}
}

// TestTLSConnState serves HTTP/1.1 over TLS from a Listener around a TLS
// listener: Request.TLS is set, and complete.
func TestTLSConnState(t *testing.T) {
	cert := certstest.NewCA(t).Issue(t, certstest.Leaf{Names: []string{"framing.test"}}).TLSCertificate()
	type state struct {
		present, complete bool
		serverName        string
	}
	states := make(chan state, 4)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	inner := tls.NewListener(tcp, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	ln, err := NewListener(inner, Config{})
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := Next(r)
		assert.Equal(t, Pass, v.Action)
		s := state{present: r.TLS != nil}
		if r.TLS != nil {
			s.complete, s.serverName = r.TLS.HandshakeComplete, r.TLS.ServerName
		}
		states <- s
		_, _ = io.WriteString(w, "ok")
	}), ErrorLog: discardLog}
	ConfigureServer(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // waited for below
	defer func() {
		_ = srv.Close()
		<-served
	}()

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "framing.test"}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + tcp.Addr().String() + "/")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, 1, resp.ProtoMajor)
	assert.Equal(t, state{present: true, complete: true, serverName: "framing.test"}, <-states)

	// A client that never shakes hands is cut by TLSHandshakeTimeout.
	require.NoError(t, ln.SetConfig(Config{TLSHandshakeTimeout: 100 * time.Millisecond}))
	silent, err := net.Dial("tcp", tcp.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	require.NoError(t, silent.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(silent)
	assert.NoError(t, err, "the server closes the silent connection")
}

// TestConnPassesBytesUnchanged reads through a conn in pieces of every
// size and checks that the bytes are exactly the socket's.
func TestConnPassesBytesUnchanged(t *testing.T) {
	stream := []byte(strings.Repeat("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 50))
	for _, size := range []int{1, 2, 7, 64, 4096} {
		client, server := tcpPair(t)
		l, err := NewListener(nil, Config{})
		require.NoError(t, err)
		c := testConn(l, server)
		go func() { // ends when the write is done; the client is closed by the test
			_, _ = client.Write(stream)
			_ = client.(*net.TCPConn).CloseWrite()
		}()
		var got bytes.Buffer
		buf := make([]byte, size)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		assert.Equal(t, stream, got.Bytes(), "reads of %d", size)
		assert.Len(t, c.led.heads, 100)
		_ = c.Close()
		_ = client.Close()
	}
}

// An Opaque Listener under a TLS listener only counts connections: the
// server gets *tls.Conn as tls.NewListener makes them, so HTTP/2 is
// negotiated by ALPN, and MaxConns still holds.
func TestOpaqueListenerUnderTLS(t *testing.T) {
	cert := certstest.NewCA(t).Issue(t, certstest.Leaf{Names: []string{"framing.test"}}).TLSCertificate()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := NewListener(tcp, Config{Opaque: true, MaxConns: 1})
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}), ErrorLog: discardLog}
	served := make(chan error, 1)
	go func() { // waited for below
		served <- srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}))
	}()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + tcp.Addr().String() + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", string(body))
	st := ln.Stats()
	assert.Equal(t, [2]int64{1, 1}, [2]int64{st.Open, int64(st.Limit)}, "open, limit")

	// The one slot is taken by the client's connection: a second client
	// waits in the backlog, unanswered.
	second := dialClient(t, tcp.Addr().String())
	_ = second.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = second.c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.EqualValues(t, 1, ln.Stats().LimitWaits, "the server's next Accept waits for the slot")
}

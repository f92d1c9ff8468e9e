package framing

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"sync"
	"testing"
	"time"
)

// tracingListener records, for every connection, the heads its framer
// judges, before the server reads from it.
type tracingListener struct {
	*Listener
	mu     sync.Mutex
	traces map[string]*headTrace // by the client's address
}

type headTrace struct {
	mu    sync.Mutex
	heads []tracedHead
}

type tracedHead struct {
	head []byte
	v    Verdict
}

func (l *tracingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tr := &headTrace{}
	asConn(c).f.trace = func(h []byte, v Verdict) {
		tr.mu.Lock()
		tr.heads = append(tr.heads, tracedHead{bytes.Clone(h), v})
		tr.mu.Unlock()
	}
	l.mu.Lock()
	l.traces[c.RemoteAddr().String()] = tr
	l.mu.Unlock()
	return c, nil
}

// handled is a request the handler got, by connection.
type handled struct {
	mu   sync.Mutex
	reqs map[string][]handledReq
}

type handledReq struct {
	line string
	v    Verdict
}

// FuzzFramingAgreesWithServer sends byte streams over a real socket to a
// real http.Server on a Listener. Its handler takes every verdict, reads
// every body and answers 200 whatever the verdict, so that net/http goes on
// parsing as far as it would. Checked: the requests the server handed to
// the handler are, in number and order, the heads the framer recorded
// (the framer may have recorded more: heads the server refused, or read
// after it stopped); no verdict says out of step, and none is Close (which
// the framer gives only to heads net/http refuses); and every handled
// request with Content-Length and Transfer-Encoding, or HTTP/1.0 with
// Transfer-Encoding, got Reject.
func FuzzFramingAgreesWithServer(f *testing.F) {
	for _, tc := range framingCases {
		f.Add([]byte(tc.stream), uint16(0))
	}
	tl := &tracingListener{traces: map[string]*headTrace{}}
	h := &handled{reqs: map[string][]handledReq{}}
	fx := startServer(f, Config{MaxHeaderBytes: 2048}, func(fx *fixture) {
		fx.wrap = func(l *Listener) net.Listener {
			tl.Listener = l
			return tl
		}
		fx.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := Next(r)
			h.mu.Lock()
			h.reqs[r.RemoteAddr] = append(h.reqs[r.RemoteAddr], handledReq{r.Method + " " + r.RequestURI + " " + r.Proto, v})
			h.mu.Unlock()
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "ok")
		})
	})

	f.Fuzz(func(t *testing.T, stream []byte, split uint16) {
		if len(stream) == 0 {
			return
		}
		c, err := net.Dial("tcp", fx.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		done := make(chan struct{})
		go func() { // waited for below
			_, _ = io.Copy(io.Discard, c)
			close(done)
		}()
		cut := int(split) % len(stream)
		if _, err := c.Write(stream[:cut]); err == nil {
			time.Sleep(time.Millisecond)
			_, _ = c.Write(stream[cut:])
		}
		_ = c.(*net.TCPConn).CloseWrite()
		<-done // the server closed: its handler calls are over

		key := c.LocalAddr().String()
		h.mu.Lock()
		got := h.reqs[key]
		delete(h.reqs, key)
		h.mu.Unlock()
		tl.mu.Lock()
		tr := tl.traces[key]
		delete(tl.traces, key)
		tl.mu.Unlock()
		if tr == nil {
			if len(got) > 0 {
				t.Fatalf("requests handled on a connection the listener never traced: %v", got)
			}
			return
		}
		tr.mu.Lock()
		heads := tr.heads
		tr.mu.Unlock()

		if len(got) > len(heads) {
			t.Fatalf("stream %q: the handler got %d requests, the framer recorded %d heads", stream, len(got), len(heads))
		}
		for i, r := range got {
			line, _, _ := bytes.Cut(heads[i].head, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			if string(line) != r.line {
				t.Fatalf("stream %q: request %d is %q, the framer's head %d is %q", stream, i, r.line, i, line)
			}
			if r.v.Reason == reasonOutOfStep || r.v.Action == Close {
				t.Fatalf("stream %q: request %d %q got %+v", stream, i, r.line, r.v)
			}
			if r.v != heads[i].v {
				t.Fatalf("stream %q: request %d got %+v, the framer judged %+v", stream, i, r.v, heads[i].v)
			}
			if mustReject(heads[i].head) && r.v.Action != Reject {
				t.Fatalf("stream %q: request %d %q has ambiguous framing but got %+v", stream, i, r.line, r.v)
			}
		}
	})
}

// mustReject judges a head on its own: Content-Length with
// Transfer-Encoding, or HTTP/1.0 with Transfer-Encoding.
func mustReject(head []byte) bool {
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	hdr, err := textproto.NewReader(bufioReader(rest)).ReadMIMEHeader()
	if err != nil {
		return false
	}
	_, te := hdr["Transfer-Encoding"]
	_, cl := hdr["Content-Length"]
	return te && (cl || bytes.HasSuffix(line, []byte(" HTTP/1.0")))
}

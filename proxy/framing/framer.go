package framing

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
)

type frameState uint8

const (
	frameHead    frameState = iota // reading a request head up to its empty line
	frameBodyCL                    // remain bytes of a Content-Length body left
	frameChunked                   // inside a chunked body
	frameStopped                   // no longer framing: the server will not read another request
)

// framer splits the byte stream of an HTTP/1.x client connection into
// requests exactly as net/http's server does, and records a verdict for
// each request head in its ledger. It is push-style: the conn feeds it each
// chunk of bytes read from the socket, once and in order, so it is always at
// least as far into the stream as the server is.
//
// A framer is used by one goroutine at a time (net/http never has two reads
// of a connection in flight); only its ledger is shared.
type framer struct {
	state frameState
	// skip is how many CR or LF bytes net/http still discards before the
	// next request line: after a POST it drops up to four (RFC 9112 §2.2
	// tolerance for old clients), and only then.
	skip int
	// post says the message being framed is a POST (net/http's lastMethod).
	post bool
	// cr says the last byte skipped was a CR, so the next must be an LF;
	// bareCR says one was not. net/http drops a bare CR there like any
	// other, but a front end that does not drop it reads a different
	// request line (RFC 9112 section 2.2 makes a bare CR invalid), so the
	// request that follows is rejected rather than served.
	cr, bareCR bool
	// hdr is the head so far when it spans reads; a head that arrives in one
	// read is scanned in place.
	hdr  []byte
	scan headScan
	// remain is the length of the rest of a Content-Length body.
	remain int64
	chunks chunkWalker

	led *ledger
	// judged: a head has been judged on this connection.
	judged bool
	// h2 is called when the connection may turn to HTTP/2: the preface is
	// its first head.
	h2 func()
	// trace, when set (by tests), sees every head the framer judges, the
	// HTTP/2 preface included.
	trace func(head []byte, v Verdict)
}

// inBody says whether the next byte of the stream belongs to a request
// body, which is when the server, if it reads, waits for body bytes.
func (f *framer) inBody() bool {
	return f.state == frameBodyCL || f.state == frameChunked
}

// feed frames p, the next bytes read from the connection. headLimit is the
// size beyond which net/http cannot have accepted a head.
func (f *framer) feed(p []byte, headLimit int) {
	for len(p) > 0 {
		switch f.state {
		case frameHead:
			p = p[f.feedHead(p, headLimit):]
		case frameBodyCL:
			n := int64(len(p))
			if n > f.remain {
				n = f.remain
			}
			f.remain -= n
			p = p[n:]
			if f.remain == 0 {
				f.endMessage()
			}
		case frameChunked:
			used, done, back, err := f.chunks.feed(p)
			if err != nil {
				// net/http's body reader fails here too, and then the
				// server closes the connection after its response: what
				// follows is never parsed as a request.
				f.state = frameStopped
				return
			}
			p = p[used:]
			if done {
				f.endMessage()
				if len(back) > 0 {
					// The trailer ended in bytes fed before p: frame them
					// first. They alias the walker's buffer, which the next
					// chunked body reuses, hence the copy (a rare path:
					// only a trailer ending in a bare LF gets here).
					f.feed(bytes.Clone(back), headLimit)
				}
			}
		case frameStopped:
			return
		}
	}
}

// endMessage moves on to the next request head.
func (f *framer) endMessage() {
	f.state = frameHead
	f.skip = 0
	if f.post {
		f.skip = 4
	}
	f.post = false
	f.cr, f.bareCR = false, false
	f.scan = headScan{}
}

// feedHead consumes the bytes of p that belong to the current head and
// returns how many that is. When the head ends within them it is judged.
func (f *framer) feedHead(p []byte, limit int) int {
	k := 0
	if len(f.hdr) == 0 {
		for f.skip > 0 && k < len(p) && (p[k] == '\r' || p[k] == '\n') {
			f.bareCR = f.bareCR || f.cr && p[k] == '\r'
			f.cr = p[k] == '\r'
			k++
			f.skip--
		}
		if k == len(p) {
			return k
		}
		f.skip = 0
		q := p[k:]
		f.bareCR = f.bareCR || f.cr && q[0] != '\n'
		f.cr = false
		if end := f.scan.find(q); end >= 0 && end <= limit {
			f.onHead(q[:end]) // the common case: the whole head in one read
			return k + end
		} else if end > limit || len(q) > limit {
			f.tooLarge(q)
			return len(p)
		}
		f.hdr = append(f.hdr, q...)
		return len(p)
	}
	end := f.scan.find(p)
	if end < 0 {
		if len(f.hdr)+len(p) > limit {
			f.tooLarge(f.hdr)
			return len(p)
		}
		f.hdr = append(f.hdr, p...)
		return len(p)
	}
	if len(f.hdr)+end > limit {
		f.tooLarge(f.hdr)
		return len(p)
	}
	f.hdr = append(f.hdr, p[:end]...)
	f.onHead(f.hdr)
	f.hdr = f.hdr[:0]
	if cap(f.hdr) > maxKeptHead {
		f.hdr = nil // do not keep a large head's buffer for the connection's life
	}
	return end
}

// maxKeptHead is the largest head buffer a connection keeps between heads.
const maxKeptHead = 16 << 10

// tooLarge gives up on a head longer than the server can have accepted
// (net/http answers 431 and closes).
func (f *framer) tooLarge(partial []byte) {
	line, _, _ := bytes.Cut(partial, []byte{'\n'})
	f.judge(partial, trimCR(line), Verdict{Action: Close, Reason: reasonHeadTooLarge})
	f.state = frameStopped
	f.hdr = nil
}

// headScan finds the end of a request head the way net/http's textproto
// reading does: lines end at '\n' (a CR before it is dropped), and the head
// ends at the first line after the request line that is empty. A line of
// blanks is not empty (textproto reads it as a continuation), and no empty
// line is ever a continuation, so this is all the structure the end needs.
type headScan struct {
	lines int  // complete lines so far; the first is the request line
	cur   int  // length of the current, incomplete line
	first byte // first byte of the current line, when cur > 0
}

// find continues the scan over q and returns the offset just past the head's
// last '\n' in q, or -1 if the head goes on past q.
func (s *headScan) find(q []byte) int {
	k := 0
	for {
		j := bytes.IndexByte(q[k:], '\n')
		if j < 0 {
			if s.cur == 0 && k < len(q) {
				s.first = q[k]
			}
			s.cur += len(q) - k
			return -1
		}
		n, first := s.cur+j, s.first
		if s.cur == 0 && j > 0 {
			first = q[k]
		}
		k += j + 1
		s.cur = 0
		s.lines++
		if s.lines > 1 && (n == 0 || n == 1 && first == '\r') {
			return k
		}
	}
}

// onHead judges a complete head h (request line to empty line, each with
// its '\n') and sets up the framing of its body.
func (f *framer) onHead(h []byte) {
	nl := bytes.IndexByte(h, '\n')
	line, fields := trimCR(h[:nl]), h[nl+1:]
	method, uri, proto, ok := splitRequestLine(line)
	if !ok {
		// net/http answers 400 and closes.
		f.judge(h, line, Verdict{Action: Close, Reason: reasonMalformedHead})
		f.state = frameStopped
		return
	}
	pri := string(method) == "PRI" && string(uri) == "*" && string(proto) == "HTTP/2.0"
	if pri && len(fields) <= 2 {
		// The HTTP/2 connection preface. net/http serves h2c from it (when
		// enabled) only at the start of a connection, and then no handler
		// sees this head; otherwise it hands PRI to the handler and closes
		// (Request.isH2Upgrade). No HTTP/1 request follows either way.
		first := !f.judged
		f.judge(h, line, Verdict{Action: Pass})
		f.state = frameStopped
		if first {
			f.h2()
		}
		return
	}
	f.post = string(method) == "POST"
	if !mayHaveBody(fields) {
		// Neither Content-Length nor Transfer-Encoding: no body, and no
		// need to parse (which keeps a GET free of allocation).
		f.judge(h, line, Verdict{Action: Pass})
		f.endMessage()
		return
	}
	v, st, n := decideBody(string(proto), pri, fields)
	f.judge(h, line, v)
	switch st {
	case frameBodyCL:
		f.state, f.remain = frameBodyCL, n
	case frameChunked:
		f.state = frameChunked
		f.chunks.reset()
	case frameHead:
		f.endMessage()
	default:
		f.state = frameStopped
	}
}

// judge records head's verdict.
func (f *framer) judge(h, line []byte, v Verdict) {
	f.judged = true
	if f.bareCR {
		v = Verdict{Action: Reject, Reason: reasonBareCR}
		f.bareCR = false
	}
	if f.trace != nil {
		f.trace(h, v)
	}
	f.led.add(line, v)
}

// decideBody mirrors net/http's readTransfer (parseTransferEncoding, then
// fixLength) on the header fields of a request head, and says how its body
// is framed: frameHead for none, frameBodyCL with its length, frameChunked,
// or frameStopped when net/http refuses the request (it then answers with
// an error and closes, so what follows never becomes a request).
func decideBody(proto string, pri bool, fields []byte) (Verdict, frameState, int64) {
	refused := func(reason string) (Verdict, frameState, int64) {
		return Verdict{Action: Close, Reason: reason}, frameStopped, 0
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 && !pri { // pri is exactly "HTTP/2.0"
		return refused(reasonMalformedHead) // 400 or 505
	}
	hdr, err := readFields(fields)
	if err != nil {
		return refused(reasonMalformedHead)
	}
	v := Verdict{Action: Pass}
	chunked := false
	if te, present := hdr["Transfer-Encoding"]; present {
		switch {
		case major == 1 && minor == 0:
			// net/http ignores it (golang.org/issue/12785) and frames by
			// Content-Length: a front end that honours it frames
			// differently. RFC 9112 §6.1: faulty framing.
			v = Verdict{Action: Reject, Reason: reasonHTTP10TE}
		case len(te) != 1 || !asciiEqualFold(te[0], "chunked"):
			return refused(reasonUnsupportedTE) // 501
		default:
			chunked = true
		}
	}
	var n int64
	if cl := hdr["Content-Length"]; len(cl) > 0 {
		first := textproto.TrimString(cl[0])
		for _, other := range cl[1:] {
			if textproto.TrimString(other) != first {
				return refused(reasonBadContentLength)
			}
		}
		u, err := strconv.ParseUint(first, 10, 63)
		if err != nil { // the empty string included
			return refused(reasonBadContentLength)
		}
		n = int64(u)
		if chunked {
			// net/http frames by chunked and deletes Content-Length; a
			// front end may have framed by Content-Length.
			v = Verdict{Action: Reject, Reason: reasonCLAndTE}
		}
	}
	switch {
	case chunked:
		return v, frameChunked, 0
	case n > 0:
		return v, frameBodyCL, n
	}
	return v, frameHead, 0
}

// mayHaveBody reports whether the header fields of a head might include a
// Content-Length or Transfer-Encoding field. A field name starts a line, so
// only line starts are looked at. A yes only means "parse it".
func mayHaveBody(fields []byte) bool {
	for len(fields) > 0 {
		switch fields[0] | 0x20 {
		case 'c':
			if hasPrefixFold(fields, "content-length") {
				return true
			}
		case 't':
			if hasPrefixFold(fields, "transfer-encoding") {
				return true
			}
		}
		nl := bytes.IndexByte(fields, '\n')
		if nl < 0 {
			return false
		}
		fields = fields[nl+1:]
	}
	return false
}

// hasPrefixFold reports whether b starts with lower, ignoring ASCII case.
// lower is lower-case.
func hasPrefixFold(b []byte, lower string) bool {
	if len(b) < len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// asciiEqualFold is net/http's internal/ascii.EqualFold: ASCII case only.
// strings.EqualFold would also fold "\u212a" (Kelvin) to "k" and call
// "chun\u212aed" chunked, which net/http does not.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// splitRequestLine cuts a request line as net/http's parseRequestLine
// does: at the first space and at the next one.
func splitRequestLine(line []byte) (method, uri, proto []byte, ok bool) {
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	uri, proto, ok2 := bytes.Cut(rest, []byte{' '})
	return method, uri, proto, ok1 && ok2
}

// trimCR drops the CR of a line's CRLF, as bufio.Reader.ReadLine does.
func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// fieldReaders recycles the bufio.Readers readFields parses through.
var fieldReaders sync.Pool

// readFields parses header fields with textproto, as net/http does.
func readFields(fields []byte) (textproto.MIMEHeader, error) {
	src := bytes.NewReader(fields)
	br, _ := fieldReaders.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReader(src)
	} else {
		br.Reset(src)
	}
	defer func() {
		br.Reset(nil)
		fieldReaders.Put(br)
	}()
	return textproto.NewReader(br).ReadMIMEHeader()
}

// ledger is the queue of verdicts from the framer (on the reading
// goroutine) to Next (on the handler's goroutine): one entry per recorded
// head, in stream order, with its request line so that Next can check it is
// answering for the request the server parsed.
//
// Its length is bounded by how far the server reads ahead of its handler:
// one bufio buffer (4 KiB) plus one byte.
type ledger struct {
	mu    sync.Mutex
	lines []byte // the request lines of the entries, back to back
	heads []entry
	next  int // the first entry Next has not taken
}

type entry struct {
	off, n int // the request line: lines[off:off+n]
	v      Verdict
}

func (l *ledger) add(line []byte, v Verdict) {
	l.mu.Lock()
	if l.next >= 64 && 2*l.next >= len(l.heads) {
		l.compact() // the ledger did not drain for a while: do not let it grow
	}
	l.heads = append(l.heads, entry{off: len(l.lines), n: len(line), v: v})
	l.lines = append(l.lines, line...)
	l.mu.Unlock()
}

// take returns the verdict of the next head, checked against the request
// the server handed to the handler.
func (l *ledger) take(method, uri, proto string) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == len(l.heads) {
		return Verdict{Action: Reject, Reason: reasonOutOfStep}
	}
	e := l.heads[l.next]
	same := sameRequestLine(l.lines[e.off:e.off+e.n], method, uri, proto)
	l.next++
	if l.next == len(l.heads) {
		l.heads, l.lines, l.next = l.heads[:0], l.lines[:0], 0
	}
	if !same {
		return Verdict{Action: Reject, Reason: reasonOutOfStep}
	}
	return e.v
}

// compact drops the entries Next has taken. l.mu must be held.
func (l *ledger) compact() {
	base := l.heads[l.next].off
	l.lines = l.lines[:copy(l.lines, l.lines[base:])]
	l.heads = l.heads[:copy(l.heads, l.heads[l.next:])]
	for i := range l.heads {
		l.heads[i].off -= base
	}
	l.next = 0
}

// sameRequestLine reports whether line is method SP uri SP proto, without
// building that string.
func sameRequestLine(line []byte, method, uri, proto string) bool {
	if len(line) != len(method)+len(uri)+len(proto)+2 {
		return false
	}
	m, u := len(method), len(method)+1+len(uri)
	return string(line[:m]) == method && line[m] == ' ' &&
		string(line[m+1:u]) == uri && line[u] == ' ' &&
		string(line[u+1:]) == proto
}

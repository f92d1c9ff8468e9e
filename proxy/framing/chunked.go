package framing

import (
	"bufio"
	"bytes"
	"errors"
	"net/textproto"
)

// The limits net/http's chunked reader applies. They are properties of its
// bufio.Reader (4096 bytes) and of net/http/internal/chunked.go; the walker
// must use the same numbers, or it would find a body's end where the server
// does not.
const (
	// serverBufSize is the size of the bufio.Reader net/http reads a client
	// connection through (bufio's default). A chunk-size line and a trailer
	// section must fit in it.
	serverBufSize = 4096
	// maxChunkLine is chunked.go's maxLineLength: a chunk-size line, without
	// its CRLF, must be shorter.
	maxChunkLine = 4096
	// maxExcess is how much chunk overhead beyond the allowance the reader
	// tolerates before it calls the body hostile.
	maxExcess = 16 * 1024
)

// The walker's errors. They only say that net/http's body reader fails at
// this point too; net/http then closes the connection after its response
// (it never parses what follows a broken body as a request), so the framer
// stops framing.
var (
	errChunkLineTooLong = errors.New("framing: chunk-size line too long")
	errChunkBareLF      = errors.New("framing: chunk-size line ends with a bare LF")
	errChunkCR          = errors.New("framing: CR inside a chunk-size line")
	errChunkSize        = errors.New("framing: invalid chunk size")
	errChunkNonData     = errors.New("framing: chunked encoding contains too much non-data")
	errChunkCRLF        = errors.New("framing: chunk data not followed by CRLF")
	errTrailerTooLong   = errors.New("framing: trailer section longer than the server's buffer")
	errTrailer          = errors.New("framing: malformed trailer section")
)

type chunkState uint8

const (
	chunkLine    chunkState = iota // reading a chunk-size line
	chunkData                      // n data bytes left in the chunk
	chunkDataEnd                   // the CRLF after the data
	chunkTrailer                   // after the last chunk: trailer fields up to the empty line
)

// chunkWalker follows a chunked request body byte by byte the way
// net/http/internal/chunked.go and net/http's body.readTrailer read it, so
// that it ends the body exactly where the server does, and fails exactly
// where the server's reader fails. It never sees a byte twice: feed it each
// byte of the stream once, in order.
//
// The zero value is a walker at the start of a body.
type chunkWalker struct {
	state chunkState
	// line holds a chunk-size line that spans feeds (in place otherwise).
	line []byte
	// n is the number of data bytes left in the current chunk.
	n uint64
	// excess is chunked.go's running count of overhead beyond the allowance.
	excess int64
	// crlf holds the bytes after a chunk's data until there are two of them:
	// net/http reads both before it judges them.
	crlf  [2]byte
	ncrlf int
	// tr holds the trailer section seen so far: net/http peeks ahead for its
	// end before it parses it, so the walker must keep it.
	tr []byte
}

// reset prepares w for a new body, keeping its buffers.
func (w *chunkWalker) reset() {
	*w = chunkWalker{line: w.line[:0], tr: w.tr[:0]}
}

// feed walks p, the next bytes of the stream. It returns how many bytes of p
// belong to the body; done when the body (trailer included) ended within
// them; err when net/http's reader fails on them (then used is meaningless).
//
// The trailer is special: net/http looks for a "\r\n\r\n" before it parses
// the trailer, so it can read ahead of where the trailer turns out to end.
// When the end lies in bytes fed earlier, used is 0 and back holds the bytes
// between the end and the start of p: they are the next message's, and come
// before p. back aliases the walker's buffer: copy it before the next feed or
// reset.
func (w *chunkWalker) feed(p []byte) (used int, done bool, back []byte, err error) {
	k := 0
	for k < len(p) {
		switch w.state {
		case chunkLine:
			j := bytes.IndexByte(p[k:], '\n')
			if j < 0 {
				// net/http gives up when its buffer holds a whole 4096
				// bytes without the line's end.
				if len(w.line)+len(p)-k >= serverBufSize {
					return 0, false, nil, errChunkLineTooLong
				}
				w.line = append(w.line, p[k:]...)
				return len(p), false, nil, nil
			}
			if len(w.line)+j+1 > serverBufSize {
				return 0, false, nil, errChunkLineTooLong
			}
			line := p[k : k+j]
			if len(w.line) > 0 {
				w.line = append(w.line, line...)
				line = w.line
			}
			k += j + 1
			err := w.beginChunk(line)
			w.line = w.line[:0]
			if err != nil {
				return 0, false, nil, err
			}
		case chunkData:
			m := uint64(len(p) - k)
			if m > w.n {
				m = w.n
			}
			w.n -= m
			k += int(m)
			if w.n == 0 {
				w.state, w.ncrlf = chunkDataEnd, 0
			}
		case chunkDataEnd:
			w.crlf[w.ncrlf] = p[k]
			w.ncrlf++
			k++
			if w.ncrlf == 2 {
				if w.crlf != [2]byte{'\r', '\n'} {
					return 0, false, nil, errChunkCRLF
				}
				w.state = chunkLine
			}
		case chunkTrailer:
			return w.feedTrailer(p, k)
		}
	}
	return k, false, nil, nil
}

// beginChunk judges a complete chunk-size line (without its '\n') with
// chunked.go's rules, in its order: CRLF only at the end, the overhead
// count, trailing whitespace, extensions cut at ';', at most 16 hex digits,
// the overhead limit, and size 0 for the last chunk.
func (w *chunkWalker) beginChunk(line []byte) error {
	cr := bytes.IndexByte(line, '\r')
	if cr < 0 {
		return errChunkBareLF
	}
	if cr != len(line)-1 {
		return errChunkCR
	}
	line = line[:cr]
	if len(line) >= maxChunkLine {
		return errChunkLineTooLong
	}
	w.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if semi := bytes.IndexByte(line, ';'); semi >= 0 {
		line = line[:semi]
	}
	n, ok := parseChunkSize(line)
	if !ok {
		return errChunkSize
	}
	// The same int64 arithmetic as chunked.go, overflow included: a size
	// of 2^63 or more wraps there, and must wrap here.
	w.excess -= 16 + (2 * int64(n))
	w.excess = max(w.excess, 0)
	if w.excess > maxExcess {
		return errChunkNonData
	}
	if n == 0 {
		w.state = chunkTrailer
		w.tr = w.tr[:0]
		return nil
	}
	w.state, w.n = chunkData, n
	return nil
}

// parseChunkSize reads a chunk size as chunked.go does: one to sixteen hex
// digits, nothing else.
func parseChunkSize(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			b = b - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(b)
	}
	return n, true
}

// feedTrailer follows net/http's body.readTrailer from p[k:] on. That
// function peeks two bytes: "\r\n" ends the body there. Otherwise it
// demands a "\r\n\r\n" within its 4096-byte buffer (a cap on trailer size)
// and then reads the trailer with textproto, which stops at the first empty
// line: possibly before that "\r\n\r\n", since a bare "\n" ends a line too.
func (w *chunkWalker) feedTrailer(p []byte, k int) (used int, done bool, back []byte, err error) {
	before := len(w.tr)
	q := p[k:]
	if room := serverBufSize - before; len(q) > room {
		q = q[:room]
	}
	w.tr = append(w.tr, q...)
	if len(w.tr) < 2 {
		return k + len(q), false, nil, nil
	}
	end := 0
	if w.tr[0] == '\r' && w.tr[1] == '\n' {
		end = 2
	} else {
		from := max(0, before-3) // "\r\n\r\n" may straddle the previous feed
		i := bytes.Index(w.tr[from:], doubleCRLF)
		if i < 0 {
			if len(w.tr) == serverBufSize {
				return 0, false, nil, errTrailerTooLong
			}
			return k + len(q), false, nil, nil
		}
		var ok bool
		end, ok = trailerEnd(w.tr[:from+i+len(doubleCRLF)])
		if !ok {
			return 0, false, nil, errTrailer
		}
	}
	if end >= before {
		return k + end - before, true, nil, nil
	}
	return k, true, w.tr[end:before], nil
}

var doubleCRLF = []byte("\r\n\r\n")

// trailerEnd reads the trailer section at the start of b with textproto, as
// net/http does, and returns where that reading stopped. b ends in
// "\r\n\r\n", which always holds an empty line, so the reading never needs
// more than b.
func trailerEnd(b []byte) (int, bool) {
	src := bytes.NewReader(b)
	br := bufio.NewReader(src)
	if _, err := textproto.NewReader(br).ReadMIMEHeader(); err != nil {
		return 0, false
	}
	return len(b) - src.Len() - br.Buffered(), true
}

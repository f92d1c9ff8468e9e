package framing

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// outcome is where a chunked body ends in a stream, as one reader sees it.
type outcome struct {
	end  int  // the offset just past the body, when done
	done bool // the body ended
	err  bool // the reader failed
	// neither done nor err: the reader needs more bytes (a live server
	// would wait for them).
}

// errStarved is what starvingReader returns once its data is used up: the
// point where a server would block.
var errStarved = errors.New("starved")

type starvingReader struct {
	data    []byte
	starved bool
}

func (r *starvingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.starved = true
		return 0, errStarved
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// netHTTPChunked reads a chunked body from stream the way net/http's server
// does: through a 4096-byte bufio.Reader, with net/http's own chunked
// reader (httputil.NewChunkedReader is net/http/internal's), and then the
// trailer as net/http's body.readTrailer reads it.
func netHTTPChunked(stream []byte) outcome {
	src := &starvingReader{data: stream}
	br := bufio.NewReaderSize(src, serverBufSize)
	_, err := io.Copy(io.Discard, httputil.NewChunkedReader(br))
	if err == nil {
		err = readTrailerAsNetHTTP(br)
	}
	switch {
	case src.starved:
		// Whatever it reported after running out, the server would have
		// waited for more.
		return outcome{}
	case err != nil:
		return outcome{err: true}
	}
	return outcome{end: len(stream) - len(src.data) - br.Buffered(), done: true}
}

// readTrailerAsNetHTTP follows net/http's body.readTrailer and
// seeUpcomingDoubleCRLF (unexported there).
func readTrailerAsNetHTTP(br *bufio.Reader) error {
	buf, err := br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		_, _ = br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errors.New("trailer EOF")
	}
	if err != nil {
		return err
	}
	see := false
	for peek := 4; ; peek++ {
		buf, err := br.Peek(peek)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			see = true
			break
		}
		if err != nil {
			break
		}
	}
	if !see {
		return errors.New("suspiciously long trailer")
	}
	_, err = textproto.NewReader(br).ReadMIMEHeader()
	return err
}

// walk feeds stream to a chunkWalker in pieces of the given sizes (the
// rest in one piece), as reads from a socket would come.
func walk(stream []byte, pieces []int) outcome {
	var w chunkWalker
	pos := 0
	for len(stream) > 0 {
		n := len(stream)
		if len(pieces) > 0 {
			n = min(max(pieces[0], 1), n)
			pieces = pieces[1:]
		}
		used, done, back, err := w.feed(stream[:n])
		switch {
		case err != nil:
			return outcome{err: true}
		case done && len(back) > 0:
			return outcome{end: pos - len(back), done: true}
		case done:
			return outcome{end: pos + used, done: true}
		}
		pos += used
		stream = stream[n:]
	}
	return outcome{}
}

func piecesFrom(b []byte) []int {
	p := make([]int, len(b))
	for i, v := range b {
		p[i] = int(v)%97 + 1
	}
	return p
}

var chunkedSeeds = []string{
	"0\r\n\r\n",
	"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	"5;ext=1;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n",
	"5 \t\r\nhello\r\n0\r\n\r\n",
	"5 ;ext\r\nhello\r\n0\r\n\r\n",
	" 5\r\nhello\r\n0\r\n\r\n",
	"5\nhello\r\n0\r\n\r\n",
	"5\r\r\nhello\r\n0\r\n\r\n",
	"5\r\nhelloXX0\r\n\r\n",
	"5\r\nhello\n0\r\n\r\n",
	"\r\n",
	"ffffffffffffffff\r\n",
	"10000000000000000\r\n",
	"8000000000000000\r\nx",
	"c000000000000000\r\nx",
	"0\r\nTrailer-Field: v\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	"0\r\nA: 1\r\nB: 2\r\n\r\n",
	"0\r\nA: 1\r\n folded\r\n\r\n",
	"0\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"0\r\nA: 1\n\nGET / HTTP/1.1\r\n\r\n",
	"0\r\nno colon\r\n\r\n",
	"0\r\n A: leading space\r\n\r\n",
	"0\r\nA: 1\r\n",
	"1\r\na\r\n1;" + strings.Repeat("e", 100) + "\r\nb\r\n0\r\n\r\n",
	strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\na\r\n", 100) + "0\r\n\r\n",
	"1;" + strings.Repeat("e", 4093) + "\r\na\r\n0\r\n\r\n",
	"1;" + strings.Repeat("e", 4092) + "\r\na\r\n0\r\n\r\n",
	"0\r\nX: " + strings.Repeat("v", 4092) + "\r\n\r\n",
	"0\r\nX: " + strings.Repeat("v", 4085) + "\r\n\r\n",
	"0\r\nX: " + strings.Repeat("v", 4086) + "\r\n\r\n",
	"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
	"0\r\n\r",
}

func TestChunkWalkerAgreesWithNetHTTP(t *testing.T) {
	for _, s := range chunkedSeeds {
		want := netHTTPChunked([]byte(s))
		for _, pieces := range [][]int{nil, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 7, 2}, {4096}, {4095, 2}} {
			assert.Equal(t, want, walk([]byte(s), pieces), "%q in pieces %v", s, pieces)
		}
	}
}

// FuzzChunkedFramingAgreesWithNetHTTP checks that the walker ends a chunked
// body where net/http's reader does, fails where it fails, and waits where
// it waits, however the bytes are split across reads.
func FuzzChunkedFramingAgreesWithNetHTTP(f *testing.F) {
	for _, s := range chunkedSeeds {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, stream, splits []byte) {
		want := netHTTPChunked(stream)
		got := walk(stream, piecesFrom(splits))
		if want != got {
			t.Fatalf("stream %q split by %v: net/http %+v, walker %+v", stream, piecesFrom(splits), want, got)
		}
		if got1 := walk(stream, nil); want != got1 {
			t.Fatalf("stream %q in one piece: net/http %+v, walker %+v", stream, want, got1)
		}
	})
}

package framing

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// judged is a recorded head: its request line and verdict.
type judged struct {
	Line   string
	Action Action
}

func newTestFramer() (*framer, *[]judged, *bool) {
	var heads []judged
	h2 := false
	f := &framer{led: &ledger{}}
	f.h2 = func() { h2 = true }
	f.trace = func(h []byte, v Verdict) {
		line, _, _ := strings.Cut(string(h), "\n")
		heads = append(heads, judged{strings.TrimSuffix(line, "\r"), v.Action})
	}
	return f, &heads, &h2
}

var framerCases = []struct {
	name    string
	stream  string
	want    []judged
	stopped bool
}{
	{"pipelined GETs", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"GET /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
	{"CL body", "POST /a HTTP/1.1\r\nContent-Length: 13\r\n\r\nGET /x HTTP\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
	{"CL+TE", "POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Reject}, {"GET /b HTTP/1.1", Pass}}, false},
	{"1.0+TE framed as no body", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		[]judged{{"POST /a HTTP/1.0", Reject}, {"GET /b HTTP/1.0", Pass}}, false},
	{"1.0+TE framed by CL", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		[]judged{{"POST /a HTTP/1.0", Reject}, {"GET /b HTTP/1.0", Pass}}, false},
	{"unsupported TE stops", "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Close}}, true},
	{"bad CL stops", "POST /a HTTP/1.1\r\nContent-Length: +5\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Close}}, true},
	{"empty CL stops", "POST /a HTTP/1.1\r\nContent-Length: \r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Close}}, true},
	{"malformed field stops", "POST /a HTTP/1.1\r\nContent-Length 5\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Close}}, true},
	{"trailer ending in bare LF", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
	{"POST skips up to four CR/LF", "POST /a HTTP/1.1\r\n\r\n\r\n\n\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
	{"a bare CR skipped after a POST rejects what follows", "POST /a HTTP/1.1\r\n\r\n\n\rGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Reject}, {"GET /c HTTP/1.1", Pass}}, false},
	{"two CRs skipped after a POST", "POST /a HTTP/1.1\r\n\r\n\r\rGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Reject}}, false},
	{"a CR as the last of four skipped", "POST /a HTTP/1.1\r\n\r\n\n\n\n\rGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Reject}}, false},
	{"a CR then LF past the four skipped", "POST /a HTTP/1.1\r\n\r\n\n\n\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"", Close}}, true},
	{"POST skips no more", "POST /a HTTP/1.1\r\n\r\n\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}, {"", Close}}, true},
	{"GET skips none", "GET /a HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"GET /a HTTP/1.1", Pass}, {"", Close}}, true},
	{"preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		[]judged{{"PRI * HTTP/2.0", Pass}}, true},
	{"PRI with fields is framed", "PRI * HTTP/2.0\r\nContent-Length: 2\r\n\r\nSMGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"PRI * HTTP/2.0", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
	{"broken chunk stops", "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"POST /a HTTP/1.1", Pass}}, true},
	{"content-length in a value is no field", "GET /a HTTP/1.1\r\nX: content-length: 5\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
		[]judged{{"GET /a HTTP/1.1", Pass}, {"GET /b HTTP/1.1", Pass}}, false},
}

// TestFramerAtEverySplit frames each stream in one piece, byte by byte,
// and cut in two at every point: the verdicts must not depend on how the
// reads fall.
func TestFramerAtEverySplit(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range framerCases {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, pieces ...string) {
				f, heads, _ := newTestFramer()
				for _, p := range pieces {
					f.feed([]byte(p), limit)
				}
				assert.Equal(t, tc.want, *heads, how)
				assert.Equal(t, tc.stopped, f.state == frameStopped, how)
			}
			check("whole", tc.stream)
			check("bytewise", bytewise(tc.stream)...)
			for i := 1; i < len(tc.stream); i++ {
				check("split at "+tc.stream[:i], tc.stream[:i], tc.stream[i:])
			}
		})
	}
}

func TestFramerHeadLimit(t *testing.T) {
	head := "GET /a HTTP/1.1\r\nX: " + strings.Repeat("v", 100) + "\r\n\r\n"
	for _, pieces := range [][]string{{head}, bytewise(head)} {
		f, heads, _ := newTestFramer()
		for _, p := range pieces {
			f.feed([]byte(p), 64)
		}
		assert.Equal(t, []judged{{"GET /a HTTP/1.1", Close}}, *heads)
		assert.Equal(t, frameStopped, f.state)
	}
	f, heads, _ := newTestFramer()
	f.feed([]byte(head), len(head))
	assert.Equal(t, []judged{{"GET /a HTTP/1.1", Pass}}, *heads, "a head of exactly the limit")
}

func TestLedgerChecksTheRequestLine(t *testing.T) {
	var l ledger
	l.add([]byte("GET /a HTTP/1.1"), Verdict{Action: Pass})
	l.add([]byte("POST /b HTTP/1.1"), Verdict{Action: Reject, Reason: reasonCLAndTE})
	l.add([]byte("GET /c HTTP/1.1"), Verdict{Action: Pass})
	assert.Equal(t, Verdict{Action: Pass}, l.take("GET", "/a", "HTTP/1.1"))
	assert.Equal(t, Verdict{Action: Reject, Reason: reasonCLAndTE}, l.take("POST", "/b", "HTTP/1.1"))
	assert.Equal(t, Verdict{Action: Reject, Reason: reasonOutOfStep}, l.take("GET", "/c", "HTTP/1.0"))
	assert.Equal(t, Verdict{Action: Reject, Reason: reasonOutOfStep}, l.take("GET", "/d", "HTTP/1.1"), "nothing recorded")
}

func TestLedgerCompactsWhenNotDrained(t *testing.T) {
	var l ledger
	l.add([]byte("GET /0 HTTP/1.1"), Verdict{})
	for i := 1; i <= 10000; i++ {
		// One head always waits: the ledger never empties.
		l.add([]byte("GET /"+strconv.Itoa(i)+" HTTP/1.1"), Verdict{})
		if v := l.take("GET", "/"+strconv.Itoa(i-1), "HTTP/1.1"); v.Action != Pass {
			t.Fatalf("head %d: %+v", i-1, v)
		}
	}
	assert.Less(t, len(l.heads), 200)
	assert.Less(t, len(l.lines), 200*20)
}

// TestGETIsFreeOfAllocation frames pipelined GETs and takes their verdicts,
// as a connection and its handler do, without allocating.
func TestGETIsFreeOfAllocation(t *testing.T) {
	stream := []byte(strings.Repeat("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n", 20))
	f := &framer{led: &ledger{}, h2: func() {}}
	r, err := http.NewRequest("GET", "/index.html?q=1", nil)
	assert.NoError(t, err)
	r.RequestURI = "/index.html?q=1"
	run := func() {
		f.feed(stream, 1<<20)
		for i := 0; i < 20; i++ {
			if v := f.led.take(r.Method, r.RequestURI, r.Proto); v.Action != Pass {
				t.Fatalf("verdict %+v", v)
			}
		}
	}
	run() // grow the ledger once
	assert.Zero(t, testing.AllocsPerRun(100, run))
}

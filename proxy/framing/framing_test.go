package framing

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

// framingCases are byte streams from a client, with the requests the
// handler must see (and their verdicts) and the status lines of the
// responses, in order. Nothing after a rejected request may reach the
// handler.
var framingCases = []struct {
	name   string
	stream string
	want   []seen
	status []string
}{
	{
		name:   "CL then TE",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "TE then CL",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "CL and TE in other cases",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\nTRANSFER-ENCODING: ChUnKeD\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "chunked with blanks around it",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: \t chunked \t\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "TE folded onto a continuation line",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "TE identity, chunked: net/http refuses it",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + smuggled,
		status: []string{"501"},
	},
	{
		name:   "two TE fields: net/http refuses them",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		status: []string{"501"},
	},
	{
		name:   "Kelvin sign is not k",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chun\u212aed\r\n\r\n0\r\n\r\n" + smuggled,
		status: []string{"501"},
	},
	{
		name:   "two equal CL",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length:  3 \r\n\r\nabc" + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}},
		status: []string{"200", "200"},
	},
	{
		name:   "two different CL: net/http refuses them",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc" + smuggled,
		status: []string{"400"},
	},
	{
		name:   "HTTP/1.0 with TE and keep-alive",
		stream: "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.0", Reject}},
		status: []string{"400"},
	},
	{
		name:   "HTTP/1.0 with TE",
		stream: "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.0", Reject}},
		status: []string{"400"},
	},
	{
		name:   "HTTP/1.0 with TE and CL",
		stream: "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.0", Reject}},
		status: []string{"400"},
	},
	{
		name: "pipelined after a chunked body",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer-Field: v\r\n\r\n" +
			"GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}, {"GET", "/c", "HTTP/1.1", Pass}},
		status: []string{"200", "200", "200"},
	},
	{
		name: "chunk data that looks like a request",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1f\r\nGET /fake HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n" + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}},
		status: []string{"200", "200"},
	},
	{
		name:   "POST followed by CRLFs",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}},
		status: []string{"200", "200"},
	},
	{
		name:   "POST followed by a bare CR: net/http drops it, a front end may not",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\rGET /b HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled,
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Reject}},
		status: []string{"200", "400"},
	},
	{
		name:   "GET followed by a CRLF: net/http refuses the empty request line",
		stream: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"GET", "/a", "HTTP/1.1", Pass}},
		status: []string{"200", "400"},
	},
	{
		name:   "bare LF line ends",
		stream: "POST /a HTTP/1.1\nHost: x\nContent-Length: 2\n\nhiGET /b HTTP/1.1\nHost: x\n\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}},
		status: []string{"200", "200"},
	},
	{
		name:   "HTTP/2 preface without h2c",
		stream: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		want:   []seen{{"PRI", "*", "HTTP/2.0", Pass}},
		status: []string{"200"},
	},
	{
		name:   "a preface pipelined behind CL+TE changes nothing",
		stream: "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		want:   []seen{{"POST", "/a", "HTTP/1.1", Reject}},
		status: []string{"400"},
	},
	{
		name:   "a preface after a request is HTTP/1",
		stream: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		want:   []seen{{"GET", "/a", "HTTP/1.1", Pass}, {"PRI", "*", "HTTP/2.0", Pass}},
		status: []string{"200", "200"},
	},
	{
		name:   "OPTIONS * reaches the handler",
		stream: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		want:   []seen{{"OPTIONS", "*", "HTTP/1.1", Pass}, {"GET", "/b", "HTTP/1.1", Pass}},
		status: []string{"200", "200"},
	},
}

func TestFramingCases(t *testing.T) {
	fx := startServer(t, Config{})
	for _, tc := range framingCases {
		for _, split := range []string{"whole", "bytewise"} {
			t.Run(tc.name+"/"+split, func(t *testing.T) {
				fx.mu.Lock()
				fx.seen = nil
				fx.mu.Unlock()
				pieces := []string{tc.stream}
				if split == "bytewise" {
					pieces = bytewise(tc.stream)
				}
				got := exchange(t, fx.addr, pieces...)
				assert.Equal(t, tc.want, fx.requests(), "requests handled")
				assert.Equal(t, tc.status, statusCodes(got), "responses: %q", got)
				assert.NotContains(t, got, "smuggled")
			})
		}
	}
}

// statusCodes returns the status codes of the responses in s.
func statusCodes(s string) []string {
	var codes []string
	for {
		i := strings.Index(s, "HTTP/1.")
		if i < 0 || len(s) < i+12 {
			return codes
		}
		if s[i+8] == ' ' {
			codes = append(codes, s[i+9:i+12])
		}
		s = s[i+9:]
	}
}

func TestHeadOverTheLimit(t *testing.T) {
	fx := startServer(t, Config{MaxHeaderBytes: 1024})
	big := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	got := exchange(t, fx.addr, big)
	assert.Equal(t, []seen{{"GET", "/a", "HTTP/1.1", Pass}}, fx.requests())
	assert.Equal(t, []string{"200", "431"}, statusCodes(got))
}

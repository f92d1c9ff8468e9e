package proxy

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// gRPC calls are HTTP/2 requests with a content-type of application/grpc,
// and the proxy passes them on as it passes any request. Three things
// differ, all decided here:
//
//   - The proxy's own errors are answered as gRPC errors (a trailers-only
//     response: status 200, grpc-status, grpc-message, no body), because a
//     gRPC client reads an HTML or text 503 as "missing content-type" or
//     "unexpected HTTP status" and loses what went wrong.
//   - request_timeout, a bound on the wait for response headers, does not
//     apply: a streaming call's server may send its headers with its first
//     message, a minute in. The call is bounded by its own deadline, the
//     client's grpc-timeout, which the proxy enforces from start to end and
//     passes on to the backend as what remains of it. A call without one
//     has no deadline at the proxy either, as it has none at the client and
//     the server (gRPC's rule: no deadline is an infinite one). This is
//     Envoy's max_stream_duration with grpc_timeout_header_max 0, not
//     nginx's grpc_read_timeout (an idle timer between two reads, which
//     would cut a quiet bidi stream).
//   - Nothing else: gRPC calls are POSTs, so a call a backend may have seen
//     is never sent again, and one it refused unprocessed (REFUSED_STREAM,
//     or above a GOAWAY's last stream) is, like any request (see
//     countingBody).
//
// The spec these follow is "gRPC over HTTP2" (PROTOCOL-HTTP2.md in the
// grpc repository).

// isGRPC reports whether r is a gRPC call: content-type application/grpc,
// or application/grpc+codec (+proto, +json, ...). gRPC-Web
// (application/grpc-web) is another protocol, whose status travels in the
// body, and is treated as plain HTTP.
func isGRPC(r *http.Request) bool {
	const base = "application/grpc"
	ct := r.Header.Get("Content-Type")
	if len(ct) < len(base) || !strings.EqualFold(ct[:len(base)], base) {
		return false
	}
	rest := ct[len(base):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// gRPC status codes the proxy answers with (google.golang.org/grpc/codes
// names them; the proxy does not link grpc-go for five numbers).
const (
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcInternal         = 13
	grpcUnavailable      = 14
)

// grpcAnswer is the gRPC status and message for an error class of the
// access log. Every failure to get an answer from a backend is UNAVAILABLE
// (the status grpc-go itself gives a call whose connection failed), with a
// message saying which; a timeout is DEADLINE_EXCEEDED.
func grpcAnswer(class string, err error) (int, string) {
	switch class {
	case classTimeout:
		return grpcDeadlineExceeded, "switchyard: no response from a backend within the call's deadline"
	case classNoBackend:
		return grpcUnavailable, "switchyard: no backend is up"
	case classConnect:
		return grpcUnavailable, "switchyard: no backend could be connected to, or every one refused the call unprocessed"
	case classQueue:
		if errors.Is(err, pool.ErrQueueTimeout) {
			return grpcUnavailable, "switchyard: every backend is full, and the wait for one ran out"
		}
		return grpcUnavailable, "switchyard: every backend is full, and so is the queue"
	}
	return grpcUnavailable, "switchyard: the backend failed before answering"
}

// writeGRPCError answers a gRPC call with a trailers-only response: status
// 200, content-type application/grpc, grpc-status and grpc-message in the
// one HEADERS frame, which ends the stream. retryAfter, when not zero, goes
// as grpc-retry-pushback-ms, gRPC's Retry-After: a client with a retry
// policy waits that long before trying again (gRFC A6). logged is the
// status the metrics and the access log record: the HTTP status the answer
// stands for, so that a 503 is counted as one whether the client spoke
// gRPC or not.
func writeGRPCError(rec *recorder, code int, msg string, retryAfter time.Duration, logged int) {
	h := rec.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", percentEncode(msg))
	if retryAfter > 0 {
		h.Set("Grpc-Retry-Pushback-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	}
	// No Content-Length: 0 (net/http adds one to an empty answer unless the
	// key is there with no value): nothing follows the headers.
	h["Content-Length"] = nil
	rec.writeHeaderAs(http.StatusOK, logged)
}

// percentEncode encodes a grpc-message as the spec says: its UTF-8 bytes,
// each outside printable ASCII (0x20 to 0x7E) and the percent sign itself
// as %XX.
func percentEncode(s string) string {
	clean := true
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// grpcUnits are grpc-timeout's units, finest first.
var grpcUnits = [...]struct {
	d    time.Duration
	unit byte
}{
	{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'},
	{time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'},
}

// parseGRPCTimeout parses a grpc-timeout: 1 to 8 digits and a unit (H, M,
// S, m, u or n). A value beyond what a time.Duration holds (8 digits of
// hours are 11,000 years) is clamped to the largest one.
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	var unit time.Duration
	for _, u := range grpcUnits {
		if s[len(s)-1] == u.unit {
			unit = u.d
		}
	}
	if unit == 0 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s[:len(s)-1]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// formatGRPCTimeout writes d (positive) as a grpc-timeout in the finest
// unit whose count fits in 8 digits, rounded up: the backend's deadline is
// then never before the proxy's, so that the proxy, not the backend, is the
// one to end a call at its deadline, with a DEADLINE_EXCEEDED. (grpc-go
// servers end a call at theirs with a bare RST_STREAM, which the proxy
// could not tell from a failure.)
func formatGRPCTimeout(d time.Duration) string {
	const most = 99_999_999
	for _, u := range grpcUnits {
		n := d / u.d
		if d%u.d != 0 {
			n++
		}
		if n <= most {
			return strconv.FormatInt(int64(n), 10) + string(u.unit)
		}
	}
	return "99999999H"
}

// pastDeadline reports whether the gRPC call st has a deadline and it has
// passed. A backend that ended the call then did so because of it, even if
// the proxy's timer has not fired yet.
func (st *requestState) pastDeadline() bool {
	return !st.deadline.IsZero() && !time.Now().Before(st.deadline)
}

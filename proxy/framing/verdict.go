package framing

import (
	"net/http"
	"strconv"
)

// Action is what the handler must do with a request.
type Action uint8

const (
	// Pass: the request is framed soundly; serve it.
	Pass Action = iota
	// Close: serve the request, then close the connection (send
	// "Connection: close" with the response). The framer could not follow
	// the stream past this request, so no further request on the connection
	// may be trusted.
	Close
	// Reject: do not forward the request. Answer 400 with
	// "Connection: close" (see Refuse): its framing is ambiguous, and what
	// follows it on the connection may be a request smuggled past a front
	// end.
	Reject
)

// String returns "pass", "close" or "reject".
func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Close:
		return "close"
	case Reject:
		return "reject"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Verdict is the framer's judgement of one request head.
type Verdict struct {
	Action Action
	// Reason says why, for logs, when Action is not Pass. It is one of a
	// few constant strings, never client input.
	Reason string
}

// The reasons of the verdicts.
const (
	reasonCLAndTE          = "framing: Content-Length with Transfer-Encoding: chunked (RFC 9112 section 6.1)"
	reasonHTTP10TE         = "framing: Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1)"
	reasonOutOfStep        = "framing: out of step with the server: the request is not the head the framer recorded"
	reasonUnsupportedTE    = "framing: unsupported Transfer-Encoding"
	reasonBadContentLength = "framing: invalid or conflicting Content-Length"
	reasonMalformedHead    = "framing: malformed request head"
	reasonHeadTooLarge     = "framing: request head too large"
	reasonBareCR           = "framing: a bare CR before the request line (RFC 9112 section 2.2)"
)

// Next returns the verdict for r. An HTTP handler serving from a Listener
// calls it exactly once per request, first thing, before anything reads the
// body or changes r: the verdicts of a connection are taken in order, one
// per call, and each is checked against r's Method, RequestURI and Proto.
// If they differ from the head the framer recorded at that position, or the
// framer recorded no further head, Next fails closed: Reject, with a reason
// saying that the framing is out of step.
//
// For this to hold, every HTTP/1 request the server reads must reach the
// handler that calls Next: set http.Server.DisableGeneralOptionsHandler
// (otherwise net/http answers "OPTIONS *" itself), and call Next in the
// outermost handler. ConfigureServer sets up the server's side.
//
// HTTP/2 requests get Pass (their framing is binary and not this package's
// concern), except "PRI *", which net/http also hands over from HTTP/1 and
// which is checked like any HTTP/1 request; so do requests from a server
// whose listener is not a Listener or that lacks ConnContext.
func Next(r *http.Request) Verdict {
	if r.ProtoMajor != 1 && !(r.Method == "PRI" && r.RequestURI == "*" && r.Proto == "HTTP/2.0") {
		return Verdict{Action: Pass} // HTTP/2: net/http never reads these as HTTP/1
	}
	c, _ := r.Context().Value(connKey{}).(*conn)
	if c == nil {
		return Verdict{Action: Pass}
	}
	// Always from the ledger, even once the connection has turned raw: the
	// framer reads ahead of the server, so requests before the turn may
	// still be waiting for their verdicts.
	return c.led.take(r.Method, r.RequestURI, r.Proto)
}

// Refuse answers a request whose verdict is Reject: 400 Bad Request with
// "Connection: close", after which net/http closes the connection without
// reading the body or anything after it.
func Refuse(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte("400 Bad Request: ambiguous request framing\n"))
}

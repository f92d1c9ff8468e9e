// Package framing watches the raw bytes of HTTP/1.x client connections so
// that a reverse proxy can keep two MUSTs of RFC 9112 section 6.1 that Go's
// net/http server does not keep, and whose evidence is gone by the time a
// handler runs:
//
//   - a request with both Content-Length and Transfer-Encoding: chunked.
//     net/http frames it by chunked, deletes Content-Length and keeps the
//     connection open; behind a front end that framed by Content-Length,
//     the bytes after the chunked body are a request smuggled past it. The
//     RFC says to close the connection after responding; this package's
//     verdict is Reject (answer 400 and close, never forward), as Envoy
//     does by default.
//   - an HTTP/1.0 request with any Transfer-Encoding. net/http deletes the
//     header before it looks at the version and frames by Content-Length
//     (or as no body); with keep-alive, a chunked body is then read as the
//     next request. The RFC says the framing is faulty and to close; the
//     verdict is Reject.
//
// And one of RFC 9112 section 2.2: after a POST, net/http drops up to four
// CR or LF bytes before the next request line, a bare CR among them too. A
// front end that does not drop it reads a different request line, so the
// request after a bare CR there gets Reject.
//
// A Listener wraps the server's listener. Each connection it accepts feeds
// the bytes the server reads, as they pass, to a framer that splits the
// stream into requests exactly as net/http does (heads up to the empty
// line, Content-Length bodies, chunked bodies with their extensions and
// trailers, the CRLFs net/http skips after a POST) and records a Verdict
// for each head, in order, before the server can have parsed it. The
// handler calls Next as the first thing for each request and acts on the
// Verdict. The framer checks that it is in step with the server: if the
// request Next is asked about is not the head it recorded at that position,
// Next fails closed with Reject.
//
// The same connections enforce, for HTTP/1 only, SendTimeout (a write that
// makes no progress for that long fails) and BodyTimeout (a read of a
// request body that gets nothing for that long fails), and the Listener
// bounds the open connections (MaxConns).
//
// Wiring:
//
//	ln, err := framing.NewListener(inner, framing.Config{MaxHeaderBytes: srv.MaxHeaderBytes})
//	framing.ConfigureServer(srv) // DisableGeneralOptionsHandler, ConnContext, ConnState
//	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		switch v := framing.Next(r); v.Action {
//		case framing.Reject:
//			framing.Refuse(w)
//			return
//		case framing.Close:
//			w.Header().Set("Connection", "close")
//		}
//		// serve r
//	})
//	err = srv.Serve(ln)
//
// Goroutines: the package starts none. Reads and writes run on the
// goroutines of net/http that call them; a Read waits only where the socket
// does. Accept waits, when MaxConns connections are open, until one closes,
// the limit rises or the Listener is closed.
package framing

// Package h1 is an http.RoundTripper for plain-text HTTP/1.1 backends
// ("http" URLs) that does each exchange on the goroutine that calls
// RoundTrip.
//
// http.Transport gives every backend connection two goroutines, one reading
// and one writing, and hands each request and response between them and the
// caller over channels. Under a keep-alive load that handoff (select,
// channel receive, scheduling) is a large part of a proxy's CPU. Here the
// caller writes the request into the connection's bufio.Writer with
// (*http.Request).Write, reads the answer from its bufio.Reader with
// http.ReadResponse, and the connection goes back to the pool when the
// response body reaches EOF. The standard library still does all the parsing
// and serialising. HTTPS, h2c and HTTP/2 backends are not served: use
// http.Transport for them.
//
// What http.Transport gives its users is kept: request bodies are written
// while the response is read, Expect: 100-continue, 1xx responses reported
// through httptrace.ClientTrace.Got1xxResponse (which is how
// httputil.ReverseProxy forwards them), trailers, protocol upgrades,
// connection reuse only when it is safe, a request that found a reused
// connection closed by its backend sent again on another one when that is
// safe, dial errors as the dialer's *net.OpError, and cancellation through
// the request's context at every stage.
//
// # Goroutines
//
// The package starts one goroutine of its own: for a request that has a
// body, RoundTrip starts writeRequest, which writes the request (headers,
// body, trailers) while RoundTrip reads the response, because a backend may
// answer before it has read the whole body and a large upload must stream
// both ways. Requests without a body are written by the caller and use no
// goroutine. writeRequest ends when the request is written or writing fails;
// it sends its result on a channel of capacity 1, so it never blocks on
// exit. Whoever ends the exchange receives that result to decide whether the
// connection may be reused, waiting at most 50 ms: the response body at EOF,
// or RoundTrip when the response has no body. When the connection is closed
// instead, nobody waits: the goroutine's next write fails on the closed
// socket, and one blocked reading the request body ends when that Read
// returns (the body's owner, such as an http.Server whose handler has
// returned, ends it), exactly as http.Transport's per-connection writer
// does.
//
// Otherwise only runtime goroutines run package code, briefly: an idle
// connection's timer (time.AfterFunc) closes it when IdleConnTimeout passes,
// a backend's pool of connections has one that forgets the pool when it has
// had no connection for as long, and context.AfterFunc closes a connection
// whose request's context ends. None exists until it fires.
package h1

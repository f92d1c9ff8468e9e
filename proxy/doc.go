// Package proxy is the data path: an http.Handler that sends each request to
// a backend chosen by the pool and streams the answer back.
//
// Forwarding is httputil.ReverseProxy, built once, with Rewrite for the
// forwarding headers and one shared *http.Transport. The backend is chosen not
// in Rewrite but in the Transport's place, by a RoundTripper that picks a
// backend from the pool for each attempt: that is where a request that found
// its backend dead can be sent again to another one before the client has seen
// anything. See retry.go for when a request may be tried again.
//
// Goroutines: the package starts none of its own. ServeHTTP runs on the
// http.Server's connection goroutine; http.Transport and ReverseProxy start
// theirs per connection and per upgraded connection and stop them when the
// request's context ends or the connection closes. Proxy.Wait lets the owner
// of the server wait for the handlers that Server.Shutdown does not wait for
// (upgraded connections).
package proxy

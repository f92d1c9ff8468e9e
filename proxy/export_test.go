package proxy

import (
	"testing"
	"time"
)

// SetPingTimeouts makes the HTTP/2 backend connections of proxies built
// from now on ping after send of silence and give up after ping without an
// answer, until the test ends. Tests that use it must not run in parallel.
func SetPingTimeouts(t testing.TB, send, ping time.Duration) {
	oldSend, oldPing := sendPingTimeout, pingTimeout
	sendPingTimeout, pingTimeout = send, ping
	t.Cleanup(func() { sendPingTimeout, pingTimeout = oldSend, oldPing })
}

// UseStdTransport makes proxies built from now on send to http:// backends
// through http.Transport rather than proxy/h1. TestMain calls it before any
// test runs.
func UseStdTransport() { stdTransport = true }

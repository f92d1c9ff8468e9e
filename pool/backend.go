package pool

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// A Backend is one upstream server as the request path sees it: an immutable
// URL and the atomics the request path updates without asking the owner.
// The pool's owner loop hands out *Backend records; everything else about a
// backend (up or down, why, since when, its weight) belongs to the loop and
// is read with Status.
//
// A Backend must not be copied: copies would count separately.
type Backend struct {
	url *url.URL
	key string
	// shared is the pool's: the limits the request path reads and the
	// doorbell it rings when a queued request may now be served.
	shared *shared

	// inflight counts requests in flight. The proxy acquires after a pick
	// and releases when the response is finished, so least-connections and
	// the admin API see the live count without a message to the owner.
	inflight atomic.Int64
	// removed is set by the owner when b leaves the pool, before it reads
	// inflight to decide whether b must drain. See Removed.
	removed atomic.Bool
	// stickyID is the value of the session-affinity cookie that names b;
	// the owner sets it (nil when sticky sessions are off).
	stickyID atomic.Pointer[string]

	// Passive health, counted on the request path (see Pool.ReportOutcome):
	// failures in a row, and whether b has just come back from an ejection
	// and not yet served a success.
	consecutiveFailures atomic.Int64
	probation           atomic.Bool

	// Counted by the request path, like inflight, so that the owner loop is
	// not asked on every request; read into Status snapshots.
	responses    [5]atomic.Uint64 // responses by status class, 1xx to 5xx
	retries      atomic.Uint64    // failed attempts that were tried again on another backend
	connFailures atomic.Uint64    // attempts that could not connect
	truncated    atomic.Uint64    // responses whose body ended early
}

// shared is what a pool's backend records hold in common with the owner.
type shared struct {
	// limit is the most requests a backend may have in flight; 0 is no
	// limit. The owner writes it; TryAcquire reads it.
	limit atomic.Int64
	// queued counts requests waiting in the owner's queue. While it is
	// above zero, Release rings bell.
	queued atomic.Int64
	// bell tells the owner that a slot has freed. Its capacity is 1 and a
	// ring never waits: rings that come while one is pending are the same
	// news, and the owner looks at every backend when it answers.
	bell chan struct{}
	// queueTimeout is how long Wait waits, in nanoseconds.
	queueTimeout atomic.Int64
	// passive is the outlier-ejection policy, nil when it is off.
	passive atomic.Pointer[passivePolicy]
}

func newShared() *shared { return &shared{bell: make(chan struct{}, 1)} }

func (s *shared) ring() {
	select {
	case s.bell <- struct{}{}:
	default:
	}
}

func newBackend(u *url.URL, s *shared) *Backend {
	return &Backend{url: u, key: u.String(), shared: s}
}

// URL returns the backend's normalised URL. It is shared: callers must not
// modify it.
func (b *Backend) URL() *url.URL { return b.url }

// String returns the normalised URL as text, the backend's identity.
func (b *Backend) String() string { return b.key }

// Acquire counts one more request in flight to b, whatever the limit. The
// proxy uses TryAcquire.
func (b *Backend) Acquire() { b.inflight.Add(1) }

// TryAcquire counts one more request in flight to b unless b already has as
// many as the pool's max_requests_per_backend allows; it reports whether it
// did. Without a limit it always does.
func (b *Backend) TryAcquire() bool {
	limit := b.shared.limit.Load()
	if limit <= 0 {
		b.inflight.Add(1)
		return true
	}
	for {
		n := b.inflight.Load()
		if n >= limit {
			return false
		}
		if b.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release counts one request to b as finished. Every Acquire must be paired
// with exactly one Release: a count below zero is a bug in the caller, and
// Release panics rather than let least-connections and draining run on a
// wrong count. When requests are queued for a slot, Release tells the owner
// that one has freed; it never waits for it.
func (b *Backend) Release() {
	if b.inflight.Add(-1) < 0 {
		panic("pool: Release of " + b.key + " without Acquire")
	}
	if b.shared.queued.Load() > 0 {
		b.shared.ring()
	}
}

// Removed reports whether b has been removed from the pool. A caller that
// picked b and then acquired it must check it, and if it is set release b and
// pick again: the owner may have removed b between the pick and the Acquire,
// seen nothing in flight, and dropped it. Checking after Acquire closes that
// gap: the owner sets the flag before it reads the count, the caller adds to
// the count before it reads the flag, so one of them sees the other.
func (b *Backend) Removed() bool { return b.removed.Load() }

// InFlight returns the number of requests in flight to b.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// StickyID returns the value of the session-affinity cookie that sends a
// client back to b, or "" when sticky sessions are off.
func (b *Backend) StickyID() string {
	if id := b.stickyID.Load(); id != nil {
		return *id
	}
	return ""
}

// CountResponse counts a response from b with the given status code.
func (b *Backend) CountResponse(code int) {
	if c := code/100 - 1; c >= 0 && c < len(b.responses) {
		b.responses[c].Add(1)
	}
}

// CountRetry counts a failed attempt on b that was tried again elsewhere.
func (b *Backend) CountRetry() { b.retries.Add(1) }

// CountConnectFailure counts an attempt that could not connect to b.
func (b *Backend) CountConnectFailure() { b.connFailures.Add(1) }

// CountTruncated counts a response from b whose body ended before it should
// have: short of its Content-Length, or cut mid-chunk.
func (b *Backend) CountTruncated() { b.truncated.Add(1) }

// ParseURL checks that raw names a backend the proxy can send requests to and
// returns it normalised, so that two spellings of one server compare equal:
// the scheme and host are lower-cased, a default port (80 for http and h2c,
// 443 for https) is dropped and so is a trailing slash. It accepts only
// absolute http, https and h2c URLs (h2c: HTTP/2 without TLS, for gRPC
// servers) with a host and no user info, query or fragment; a path is kept
// and becomes a prefix of every proxied path.
func ParseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input; the caller already knows it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w %q: %v", ErrInvalidURL, raw, err)
	}
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidURL, raw, why)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https" && scheme != "h2c":
		return bad("scheme must be http, https or h2c (write it as http://host:port)")
	case u.Opaque != "" || u.Host == "":
		return bad("no host")
	case u.User != nil:
		return bad("user info is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("a query is not allowed")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("a fragment is not allowed")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("no host")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return bad("port must be between 1 and 65535")
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) || (scheme == "h2c" && n == 80) {
			port = ""
		} else {
			port = strconv.Itoa(n) // drops leading zeros
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	host = strings.ToLower(host)
	out := &url.URL{Scheme: scheme, Host: host, Path: strings.TrimRight(u.Path, "/")}
	if port != "" {
		out.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		out.Host = "[" + host + "]" // IPv6 literal without a port
	}
	if u.RawPath != "" {
		out.RawPath = strings.TrimRight(u.RawPath, "/")
	}
	return out, nil
}

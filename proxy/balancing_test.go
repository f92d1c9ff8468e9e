package proxy_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// getWith sends a GET through the proxy with the given cookie (if any) and
// returns the status, body and response.
func (f *fixture) getWith(t *testing.T, cookie *http.Cookie, header http.Header) (string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.front.URL+"/", nil)
	require.NoError(t, err)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return readAll(t, res), res
}

// Sticky sessions end to end: the first response sets a cookie with the
// right attributes, naming the backend that answered; requests carrying it
// keep going there; a forged cookie is ignored and replaced; when its
// backend dies, the session fails over and gets a new cookie.
func TestStickySessionsThroughTheProxy(t *testing.T) {
	a, b, c := backend(t, echo("a")), backend(t, echo("b")), backend(t, echo("c"))
	f := newFixtureWith(t, pool.Config{StickySecret: []byte("k")}, proxy.Config{StickyCookie: "sy_route"}, a.URL, b.URL, c.URL)

	first, res := f.getWith(t, nil, nil)
	cookies := res.Cookies()
	require.Len(t, cookies, 1)
	ck := cookies[0]
	assert.Equal(t, "sy_route", ck.Name)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.Equal(t, "/", ck.Path)
	assert.False(t, ck.Secure, "plain HTTP from an untrusted peer")
	for range 6 {
		body, res := f.getWith(t, &http.Cookie{Name: "sy_route", Value: ck.Value}, nil)
		assert.Equal(t, first, body)
		assert.Empty(t, res.Cookies(), "no new cookie while it holds")
	}

	_, res = f.getWith(t, &http.Cookie{Name: "sy_route", Value: "forged"}, nil)
	require.Len(t, res.Cookies(), 1, "a forged cookie is replaced, never an error")
	assert.Equal(t, http.StatusOK, res.StatusCode)

	// Kill the session's backend: the request fails over, with a cookie for
	// the new one.
	map[string]*testBackend{"a": a, "b": b, "c": c}[first[:1]].kill()
	body, res := f.getWith(t, &http.Cookie{Name: "sy_route", Value: ck.Value}, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.NotEqual(t, first, body)
	require.Len(t, res.Cookies(), 1)
	assert.NotEqual(t, ck.Value, res.Cookies()[0].Value)
}

// The Secure flag follows the client's scheme as a trusted proxy reports it.
func TestStickyCookieSecureBehindATrustedProxy(t *testing.T) {
	a := backend(t, echo("a"))
	f := newFixtureWith(t, pool.Config{StickySecret: []byte("k")},
		proxy.Config{StickyCookie: "sy_route", TrustedProxies: trustLoopback()}, a.URL)
	_, res := f.getWith(t, nil, http.Header{"X-Forwarded-Proto": {"https"}})
	require.Len(t, res.Cookies(), 1)
	assert.True(t, res.Cookies()[0].Secure)
}

// Hash on a header: one key always reaches one backend; a request without
// the header is spread in turn.
func TestHashOnAHeader(t *testing.T) {
	var urls []string
	for i := range 4 {
		urls = append(urls, backend(t, echo(fmt.Sprint(i))).URL)
	}
	key, err := proxy.ParseHashKey("header:X-User")
	require.NoError(t, err)
	f := newFixtureWith(t, pool.Config{Strategy: pool.Hash}, proxy.Config{HashKey: key}, urls...)
	for _, user := range []string{"alice", "bob", "carol"} {
		first, _ := f.getWith(t, nil, http.Header{"X-User": {user}})
		for range 5 {
			body, _ := f.getWith(t, nil, http.Header{"X-User": {user}})
			assert.Equal(t, first, body, user)
		}
	}
	seen := map[string]bool{}
	for range 4 {
		body, _ := f.getWith(t, nil, nil)
		seen[body] = true
	}
	assert.Len(t, seen, 4, "no key: round-robin")
}

// Hash on the client's address: behind a trusted proxy it is the nearest
// address in X-Forwarded-For that is not a trusted proxy's, and one client
// always reaches one backend; from an untrusted peer X-Forwarded-For is
// ignored and the peer is the client.
func TestHashOnTheClientAddress(t *testing.T) {
	var urls []string
	for i := range 4 {
		urls = append(urls, backend(t, echo(fmt.Sprint(i))).URL)
	}
	key, err := proxy.ParseHashKey("client_ip")
	require.NoError(t, err)
	spread := func(f *fixture) map[string]bool {
		seen := map[string]bool{}
		for i := range 16 {
			client := fmt.Sprintf("192.0.2.%d", i+1)
			first, _ := f.getWith(t, nil, http.Header{"X-Forwarded-For": {client + ", 127.0.0.9"}})
			again, _ := f.getWith(t, nil, http.Header{"X-Forwarded-For": {client}})
			assert.Equal(t, first, again, client)
			seen[first] = true
		}
		return seen
	}
	trusting := newFixtureWith(t, pool.Config{Strategy: pool.Hash}, proxy.Config{HashKey: key, TrustedProxies: trustLoopback()}, urls...)
	assert.Greater(t, len(spread(trusting)), 1, "sixteen clients behind the trusted proxy")
	untrusting := newFixtureWith(t, pool.Config{Strategy: pool.Hash}, proxy.Config{HashKey: key}, urls...)
	assert.Len(t, spread(untrusting), 1, "one peer, whatever it claims")
}

// Random-two sends less to a slow backend than round-robin does, under the
// same concurrent load: it sees the requests piling up there.
func TestRandomTwoAvoidsASlowBackend(t *testing.T) {
	share := func(strategy pool.Strategy) float64 {
		var slowCount, total atomic.Int64
		slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
			slowCount.Add(1)
			total.Add(1)
			time.Sleep(20 * time.Millisecond)
		})
		var urls = []string{slow.URL}
		for range 2 {
			urls = append(urls, backend(t, func(w http.ResponseWriter, r *http.Request) { total.Add(1) }).URL)
		}
		f := newFixtureWith(t, pool.Config{Strategy: strategy, Seed: 7}, proxy.Config{}, urls...)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 40 {
					res, err := f.client.Get(f.front.URL + "/")
					if assert.NoError(t, err) {
						res.Body.Close()
					}
				}
			})
		}
		wg.Wait()
		return float64(slowCount.Load()) / float64(total.Load())
	}
	rr, r2 := share(pool.RoundRobin), share(pool.RandomTwo)
	t.Logf("share of requests to the slow backend: round-robin %.2f, random-two %.2f (ratio %.2f)", rr, r2, r2/rr)
	assert.InDelta(t, 1.0/3, rr, 0.02, "round-robin gives it its third")
	assert.Less(t, r2, rr*0.75, "random-two sends measurably less")
}

// Passive health through the proxy: a backend answering 503 to everything
// beside two good ones is ejected after five failures, and then gets no
// more requests.
func TestEjectionOfABackendAnswering503(t *testing.T) {
	var badHits atomic.Int64
	bad := backend(t, func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	good1, good2 := backend(t, echo("g1")), backend(t, echo("g2"))
	f := newFixtureWith(t, pool.Config{Passive: &pool.PassiveHealth{ConsecutiveFailures: 5,
		FailureStatuses: []int{502, 503, 504}, EjectionTime: time.Minute, MaxEjectedPercent: 50}},
		proxy.Config{}, bad.URL, good1.URL, good2.URL)
	for range 15 {
		f.get(t, "/")
	}
	assert.Equal(t, int64(5), badHits.Load(), "five failures, then out")
	assert.Eventually(t, func() bool { return f.status(t, bad.URL).State == pool.StateEjected },
		5*time.Second, 5*time.Millisecond)
	for range 10 {
		code, body := f.get(t, "/")
		assert.Equal(t, http.StatusOK, code)
		assert.True(t, strings.HasPrefix(body, "g"))
	}
	assert.Equal(t, int64(5), badHits.Load())
}

// max_requests_per_backend under a burst of ten times the capacity: no
// backend ever sees more than its limit at once, and every request gets its
// answer or a 503 with Retry-After.
func TestMaxRequestsPerBackendUnderABurst(t *testing.T) {
	const limit = 2
	var urls []string
	var most [2]atomic.Int64
	for i := range 2 {
		var now atomic.Int64
		urls = append(urls, backend(t, func(w http.ResponseWriter, r *http.Request) {
			n := now.Add(1)
			defer now.Add(-1)
			for m := most[i].Load(); n > m && !most[i].CompareAndSwap(m, n); m = most[i].Load() {
			}
			time.Sleep(10 * time.Millisecond)
		}).URL)
	}
	f := newFixtureWith(t, pool.Config{MaxRequestsPerBackend: limit, MaxQueue: 20, QueueTimeout: 5 * time.Second},
		proxy.Config{}, urls...)
	var ok, unavailable atomic.Int64
	var wg sync.WaitGroup
	for range 10 * limit * 2 {
		wg.Go(func() {
			res, err := f.client.Get(f.front.URL + "/")
			if !assert.NoError(t, err) {
				return
			}
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusServiceUnavailable:
				assert.NotEmpty(t, res.Header.Get("Retry-After"))
				unavailable.Add(1)
			default:
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	wg.Wait()
	for i := range most {
		assert.LessOrEqual(t, most[i].Load(), int64(limit), "backend %d", i)
	}
	assert.Equal(t, int64(40), ok.Load()+unavailable.Load())
	assert.GreaterOrEqual(t, ok.Load(), int64(20), "the queue let the burst through")
	f.assertIdle(t)
}

func trustLoopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }

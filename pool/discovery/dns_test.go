package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/pool/discovery/dnstest"
)

// The tests in this file ask a real DNS server on 127.0.0.1 through Go's
// resolver, over UDP and, for large answers, TCP. They refresh every
// refresh; each waits for what it expects with a bound far beyond it.
const refresh = 200 * time.Millisecond

func aSource(name string, port int) discovery.Source {
	return discovery.Source{Discover: discovery.KindA, Name: name, Port: port}
}

func srvSource(name string) discovery.Source {
	return discovery.Source{Discover: discovery.KindSRV, Name: name}
}

func cfg(srv *dnstest.Server, sources ...discovery.Source) discovery.Config {
	return discovery.Config{Sources: sources, Resolver: srv.Addr, Refresh: refresh}
}

func ips(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func httpURLs(port int, addrs ...string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = fmt.Sprintf("http://%s:%d", a, port)
	}
	return out
}

// A headless service scales up and down: each change reaches the sink as one
// call with the whole new set, sorted, and the first set is sent at once.
func TestARecordsScaleUpAndDown(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	const name = "api.default.svc.cluster.local"
	srv.SetHosts(name, ips("10.0.0.", 1, 3)...)
	sink := newSink()
	w := start(t, sink, cfg(srv, aSource(name, 8080)))

	first := sink.next(t)
	assert.Equal(t, "a+http://api.default.svc.cluster.local:8080", first.Source)
	assert.Equal(t, httpURLs(8080, ips("10.0.0.", 1, 3)...), urls(first.Targets))
	for _, tg := range first.Targets {
		assert.Equal(t, 1, tg.Weight)
	}

	srv.SetHosts(name, ips("10.0.0.", 1, 6)...)
	up := sink.next(t)
	assert.Equal(t, httpURLs(8080, ips("10.0.0.", 1, 6)...), urls(up.Targets), "scale up: the whole set in one call")

	srv.SetHosts(name, "10.0.0.2", "10.0.0.5")
	down := sink.next(t)
	assert.Equal(t, httpURLs(8080, "10.0.0.2", "10.0.0.5"), urls(down.Targets), "scale down: the whole set in one call")

	// Refreshes that change nothing call nothing.
	n := w.Status()[0].Lookups
	waitStatus(t, w, 0, "three more refreshes", func(st discovery.SourceStatus) bool { return st.Lookups >= n+3 })
	assert.Empty(t, sink.pending())

	st := w.Status()[0]
	assert.Equal(t, name, st.Name)
	assert.Equal(t, discovery.KindA, st.Discover)
	assert.False(t, st.Failing)
	assert.Empty(t, st.LastError)
	assert.Equal(t, httpURLs(8080, "10.0.0.2", "10.0.0.5"), st.Backends)
	assert.Zero(t, st.FailedLookups)
	assert.False(t, st.LastRefresh.IsZero())
	assert.Equal(t, st.LastRefresh, st.LastSuccess)
}

func TestAddressChange(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("web.test", "10.1.0.1", "10.1.0.2")
	sink := newSink()
	start(t, sink, cfg(srv, aSource("web.test", 9000)))
	assert.Equal(t, httpURLs(9000, "10.1.0.1", "10.1.0.2"), urls(sink.next(t).Targets))

	srv.SetHosts("web.test", "10.1.0.1", "10.1.0.3") // a pod rescheduled
	assert.Equal(t, httpURLs(9000, "10.1.0.1", "10.1.0.3"), urls(sink.next(t).Targets))
}

// AAAA records are backends too, in brackets; an IPv4-mapped one is the A
// record it maps; the default port of the scheme is left out as the pool
// leaves it out.
func TestIPv6AndPoolNormalForm(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("dual.test", "10.2.0.1", "2001:db8::1", "2001:DB8:0:0::2", "::ffff:10.2.0.1")
	srv.SetHosts("v6only.test", "2001:db8::a")
	sink := newSink()
	start(t, sink, discovery.Config{Resolver: srv.Addr, Refresh: refresh, Sources: []discovery.Source{
		aSource("dual.test", 8443),
		{Discover: discovery.KindA, Name: "v6only.test", Port: 443, Scheme: "https"},
		{Discover: discovery.KindA, Name: "dual.test", Port: 80},
		{Discover: discovery.KindA, Name: "dual.test", Port: 80, Scheme: "h2c"},
	}})
	got := map[string][]string{}
	for range 4 {
		c := sink.next(t)
		got[c.Source] = urls(c.Targets)
	}
	assert.Equal(t, map[string][]string{
		"a+http://dual.test:8443":   {"http://10.2.0.1:8443", "http://[2001:db8::1]:8443", "http://[2001:db8::2]:8443"},
		"a+https://v6only.test:443": {"https://[2001:db8::a]"},
		"a+http://dual.test:80":     {"http://10.2.0.1", "http://[2001:db8::1]", "http://[2001:db8::2]"},
		"a+h2c://dual.test:80":      {"h2c://10.2.0.1:80", "h2c://[2001:db8::1]:80", "h2c://[2001:db8::2]:80"},
	}, got)
	for src, list := range got {
		for _, u := range list {
			if src == "a+h2c://dual.test:80" {
				continue // the pool has no h2c yet
			}
			n, err := pool.ParseURL(u)
			if assert.NoError(t, err) {
				assert.Equal(t, u, n.String(), "already in the pool's normal form")
			}
		}
	}
}

// Only the lowest priority's records are backends; weight 0 counts as 1 and
// large weights are clamped; each target is resolved through the same
// server, once however many records name it.
func TestSRVPriorityWeightsAndTargets(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	const name = "_http._tcp.api.service.consul"
	srv.SetSRV(name,
		dnstest.SRV{Priority: 10, Weight: 0, Port: 21000, Target: "node1.node.dc1.consul"},
		dnstest.SRV{Priority: 10, Weight: 5, Port: 21001, Target: "node1.node.dc1.consul"},
		dnstest.SRV{Priority: 10, Weight: 60000, Port: 21000, Target: "node2.node.dc1.consul"},
		dnstest.SRV{Priority: 20, Weight: 1, Port: 21000, Target: "backup.node.dc1.consul"},
	)
	srv.SetHosts("node1.node.dc1.consul", "10.3.0.1")
	srv.SetHosts("node2.node.dc1.consul", "10.3.0.2", "2001:db8::3:2")
	srv.SetHosts("backup.node.dc1.consul", "10.3.0.9")
	sink := newSink()
	w := start(t, sink, cfg(srv, srvSource(name)))

	c := sink.next(t)
	assert.Equal(t, "srv+http://_http._tcp.api.service.consul", c.Source)
	assert.Equal(t, []discovery.Target{
		{URL: "http://10.3.0.1:21000", Weight: 1},
		{URL: "http://10.3.0.1:21001", Weight: 5},
		{URL: "http://10.3.0.2:21000", Weight: 1000},
		{URL: "http://[2001:db8::3:2]:21000", Weight: 1000},
	}, c.Targets)
	assert.Zero(t, srv.Queries("A", "backup.node.dc1.consul"), "a higher priority is not even resolved")
	assert.Equal(t, 1, srv.Queries("A", "node1.node.dc1.consul"), "a target named twice is looked up once")
	st := w.Status()[0]
	assert.Equal(t, discovery.KindSRV, st.Discover)
	assert.EqualValues(t, 3, st.Lookups, "one SRV lookup and one per distinct target")

	// The lowest priority's records go: the next priority takes over.
	srv.SetSRV(name, dnstest.SRV{Priority: 20, Weight: 1, Port: 21000, Target: "backup.node.dc1.consul"})
	c = sink.next(t)
	assert.Equal(t, []discovery.Target{{URL: "http://10.3.0.9:21000", Weight: 1}}, c.Targets)

	// A weight change alone is a change.
	srv.SetSRV(name, dnstest.SRV{Priority: 20, Weight: 7, Port: 21000, Target: "backup.node.dc1.consul"})
	c = sink.next(t)
	assert.Equal(t, []discovery.Target{{URL: "http://10.3.0.9:21000", Weight: 7}}, c.Targets)
}

// Two records for one address and port are one backend with both shares.
func TestSRVDuplicateEndpointsMerge(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetSRV("_api._tcp.test",
		dnstest.SRV{Priority: 1, Weight: 3, Port: 80, Target: "a.test"},
		dnstest.SRV{Priority: 1, Weight: 4, Port: 80, Target: "b.test"}, // same address as a.test
	)
	srv.SetHosts("a.test", "10.4.0.1")
	srv.SetHosts("b.test", "10.4.0.1")
	sink := newSink()
	start(t, sink, cfg(srv, srvSource("_api._tcp.test")))
	assert.Equal(t, []discovery.Target{{URL: "http://10.4.0.1", Weight: 7}}, sink.next(t).Targets)
}

// A thousand SRV records do not fit in a datagram: the server truncates and
// Go's resolver asks again over TCP.
func TestLargeAnswersOverTCP(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	var recs []dnstest.SRV
	for i := range 1000 {
		target := fmt.Sprintf("n%d.nodes.test", i)
		recs = append(recs, dnstest.SRV{Priority: 1, Weight: 1, Port: 8080, Target: target})
		srv.SetHosts(target, fmt.Sprintf("10.5.%d.%d", i/250, i%250+1))
	}
	srv.SetSRV("_big._tcp.test", recs...)
	srv.SetHosts("many.test", ips("10.6.0.", 1, 250)...)
	sink := newSink()
	c := cfg(srv, srvSource("_big._tcp.test"), aSource("many.test", 80))
	// 1,001 lookups under the race detector, beside the other tests, need
	// more than the 200ms that refresh allows.
	c.Refresh = 5 * time.Second
	w := start(t, sink, c)
	sizes := map[string]int{}
	for range 2 {
		c := sink.next(t)
		sizes[c.Source] = len(c.Targets)
	}
	assert.Equal(t, map[string]int{"srv+http://_big._tcp.test": 1000, "a+http://many.test:80": 250}, sizes)
	assert.EqualValues(t, 1001, w.Status()[0].Lookups)
}

// A failing server (SERVFAIL, REFUSED, no answer, or not running) changes
// nothing: the last set is kept, the source is failing and says why, and it
// recovers at the next good answer, sending only what changed meanwhile.
func TestOutageKeepsLastSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		outage  func(*dnstest.Server)
		recover func(*dnstest.Server)
		want    string
	}{
		{"servfail", func(s *dnstest.Server) { s.SetMode(dnstest.ServFail) }, func(s *dnstest.Server) { s.SetMode(dnstest.Serve) }, "server misbehaving"},
		{"refused", func(s *dnstest.Server) { s.SetMode(dnstest.Refused) }, func(s *dnstest.Server) { s.SetMode(dnstest.Serve) }, "server misbehaving"},
		{"no answer", func(s *dnstest.Server) { s.SetMode(dnstest.Silent) }, func(s *dnstest.Server) { s.SetMode(dnstest.Serve) }, "timed out after 200ms"},
		{"server stopped", (*dnstest.Server).Stop, (*dnstest.Server).Restart, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := dnstest.Start(t)
			srv.SetHosts("api.test", "10.7.0.1", "10.7.0.2")
			srv.SetSRV("_api._tcp.test", dnstest.SRV{Priority: 1, Port: 8080, Target: "api.test"})
			sink := newSink()
			w := start(t, sink, cfg(srv, aSource("api.test", 8080), srvSource("_api._tcp.test")))
			sink.next(t)
			sink.next(t)
			want := [][]string{httpURLs(8080, "10.7.0.1", "10.7.0.2"), httpURLs(8080, "10.7.0.1", "10.7.0.2")}

			tc.outage(srv)
			for i := range 2 {
				st := waitStatus(t, w, i, "failing", failing)
				assert.Contains(t, st.LastError, tc.want)
				assert.Contains(t, st.LastError, "lookup ")
				assert.Equal(t, want[i], st.Backends, "the last set is kept")
				assert.NotZero(t, st.FailedLookups)
			}
			// While it lasts, refreshes go on failing and nothing is sent.
			n := w.Status()[0].Lookups
			waitStatus(t, w, 0, "two more refreshes", func(st discovery.SourceStatus) bool { return st.Lookups >= n+2 })
			assert.True(t, w.Status()[0].Failing)
			assert.Empty(t, sink.pending())

			srv.SetHosts("api.test", "10.7.0.1", "10.7.0.3")
			tc.recover(srv)
			got := map[string][]string{}
			for range 2 {
				c := sink.next(t)
				got[c.Source] = urls(c.Targets)
			}
			assert.Equal(t, httpURLs(8080, "10.7.0.1", "10.7.0.3"), got["a+http://api.test:8080"])
			assert.Equal(t, httpURLs(8080, "10.7.0.1", "10.7.0.3"), got["srv+http://_api._tcp.test"])
			for i := range 2 {
				st := waitStatus(t, w, i, "recovered", healthy)
				assert.Empty(t, st.LastError)
			}
		})
	}
}

// NXDOMAIN for less than three refresh periods, as from a DNS server that
// restarts with its zone not yet loaded, never empties the set.
func TestBriefNXDOMAINNeverEmpties(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("api.test", "10.8.0.1", "10.8.0.2")
	srv.SetSRV("_api._tcp.test", dnstest.SRV{Priority: 1, Port: 8080, Target: "api.test"})
	sink := newSink()
	w := start(t, sink, cfg(srv, aSource("api.test", 8080), srvSource("_api._tcp.test")))
	sink.next(t)
	sink.next(t)

	for range 3 {
		// Two refreshes in a row answered NXDOMAIN: one period, then back.
		srv.NXDomain("api.test", 2)
		srv.NXDomain("_api._tcp.test", 2)
		for i := range 2 {
			st := waitStatus(t, w, i, "failing on NXDOMAIN", failing)
			assert.Contains(t, st.LastError, "no such host or no records")
			assert.Equal(t, httpURLs(8080, "10.8.0.1", "10.8.0.2"), st.Backends)
		}
		for i := range 2 {
			waitStatus(t, w, i, "back", healthy)
		}
	}
	assert.Empty(t, sink.pending(), "the set never changed, so nothing was sent")
	assert.NotZero(t, w.Status()[0].NotFoundLookups)
}

// NXDOMAIN, or a name without records, that lasts three refresh periods is
// believed: the set is emptied, once.
func TestLastingNXDOMAINEmptiesOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		source discovery.Source
		gone   func(*dnstest.Server)
	}{
		{"a NXDOMAIN", aSource("api.test", 8080), func(s *dnstest.Server) { s.NXDomain("api.test", -1) }},
		{"a no records", aSource("api.test", 8080), func(s *dnstest.Server) { s.SetHosts("api.test") }},
		{"srv NXDOMAIN", srvSource("_api._tcp.test"), func(s *dnstest.Server) { s.NXDomain("_api._tcp.test", -1) }},
		{"srv target NXDOMAIN", srvSource("_api._tcp.test"), func(s *dnstest.Server) { s.NXDomain("api.test", -1) }},
		{"srv no records", srvSource("_api._tcp.test"), func(s *dnstest.Server) { s.SetSRV("_api._tcp.test") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := dnstest.Start(t)
			srv.SetHosts("api.test", "10.9.0.1")
			srv.SetSRV("_api._tcp.test", dnstest.SRV{Priority: 1, Port: 8080, Target: "api.test"})
			sink := newSink()
			w := start(t, sink, cfg(srv, tc.source))
			assert.Equal(t, []string{"http://10.9.0.1:8080"}, urls(sink.next(t).Targets))

			gone := time.Now()
			tc.gone(srv)
			st := waitStatus(t, w, 0, "failing", failing)
			assert.Contains(t, st.LastError, "no such host or no records")
			assert.Contains(t, st.LastError, "the last set is kept until that has lasted 600ms")

			c := sink.next(t)
			assert.Empty(t, c.Targets)
			assert.NotNil(t, c.Targets, "an empty list, not nil")
			// Believed only after three periods of it, never sooner.
			assert.GreaterOrEqual(t, c.At.Sub(gone), 3*refresh)

			st = waitStatus(t, w, 0, "not failing", healthy)
			assert.Empty(t, st.LastError)
			assert.Empty(t, st.Backends)
			n := st.Lookups
			waitStatus(t, w, 0, "two more refreshes", func(st discovery.SourceStatus) bool { return st.Lookups >= n+2 })
			assert.Empty(t, sink.pending(), "emptied once")
		})
	}
}

// Status is read while the sources refresh, without a lock; the race
// detector checks it.
func TestStatusWhileRefreshing(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("api.test", "10.10.0.1")
	sink := newSink()
	w := start(t, sink, cfg(srv, aSource("api.test", 8080), aSource("api.test", 8081)))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	// Waited for by wg.Wait below.
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, st := range w.Status() {
				if len(st.Backends) > 0 {
					st.Backends[0] = "mine" // the caller's copy
				}
			}
		}
	}()
	for i := 2; i < 6; i++ {
		srv.SetHosts("api.test", ips("10.10.0.", 1, i)...)
		sink.next(t)
		sink.next(t)
	}
	close(stop)
	wg.Wait()
	assert.Equal(t, httpURLs(8080, ips("10.10.0.", 1, 5)...), w.Status()[0].Backends)
}

// When the sink fails while Run's context is live (the pool has stopped),
// Run returns the error and every source's goroutine stops.
func TestSinkFailureEndsRun(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("api.test", "10.11.0.1")
	srv.SetHosts("other.test", "10.11.0.2")
	sink := newSink()
	w, err := discovery.New(sink, cfg(srv, aSource("api.test", 80), aSource("other.test", 80)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // waited for below
	sink.next(t)
	sink.next(t)

	sink.fail(actor.ErrStopped)
	srv.SetHosts("api.test", "10.11.0.3")
	select {
	case err := <-done:
		assert.ErrorIs(t, err, discovery.ErrSink)
		assert.ErrorIs(t, err, actor.ErrStopped)
		assert.ErrorContains(t, err, "a+http://api.test:80")
	case <-time.After(waitFor):
		require.FailNow(t, "Run did not return")
	}
	assert.ErrorIs(t, w.Run(ctx), discovery.ErrRunning)
}

// A context that ends returns nil, even with a sink that fails from then on.
func TestCancelReturnsNil(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.SetHosts("api.test", "10.12.0.1")
	sink := newSink()
	w, err := discovery.New(sink, cfg(srv, aSource("api.test", 80)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // waited for below
	sink.next(t)
	cancel()
	sink.fail(errors.New("the pool is stopping too"))
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(waitFor):
		require.FailNow(t, "Run did not return")
	}
}

// A lookup given up on (the refresh timed out, or Run stopped) ends with it:
// Go's resolver would otherwise go on waiting on its socket, in a goroutine
// of its own, until resolv.conf's timeout, seconds later. Not parallel, so
// that no other test's goroutines are about when it checks.
func TestGivenUpLookupsEnd(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetMode(dnstest.Silent)
	sink := newSink()
	w, err := discovery.New(sink, discovery.Config{Resolver: srv.Addr, Refresh: 100 * time.Millisecond, Sources: []discovery.Source{
		aSource("api.test", 80), srvSource("_api._tcp.test"),
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // waited for below
	waitStatus(t, w, 0, "three timeouts", func(st discovery.SourceStatus) bool { return st.FailedLookups >= 3 })
	cancel()
	require.NoError(t, <-done)
	srv.Stop()
	goleak.VerifyNone(t)
}

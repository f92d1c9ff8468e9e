package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool/discovery/dnstest"
)

// srvBackends starts n backends that count their requests, and returns them
// with their SRV records (each target a name of its own that resolves to
// 127.0.0.1).
func srvBackends(t *testing.T, dns *dnstest.Server, n int) ([]*httptest.Server, []dnstest.SRV, []*atomic.Int64) {
	t.Helper()
	var srvs []*httptest.Server
	var recs []dnstest.SRV
	var counts []*atomic.Int64
	for i := range n {
		s, hits := countingBackend(t)
		target := fmt.Sprintf("be%d.api.test", i)
		dns.SetHosts(target, "127.0.0.1")
		srvs = append(srvs, s)
		recs = append(recs, dnstest.SRV{Priority: 10, Weight: 1, Port: uint16(testPort(s.URL)), Target: target})
		counts = append(counts, hits)
	}
	return srvs, recs, counts
}

// sourceOf returns the status of the source named name.
func sourceOf(st admin.StatusResponse, name string) (admin.SourceStatus, bool) {
	for _, s := range st.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return admin.SourceStatus{}, false
}

// Backends from DNS SRV records, scaled from 3 to 6 to 2 while 16 clients
// send requests: zero errors; every change arrives as one set, new backends
// take traffic within a refresh or so, vanished ones drain; the status
// shows the source and which backends it found; a discovered backend
// cannot be deleted through the API.
func TestDiscoveryScalesUnderLoad(t *testing.T) {
	const name = "_http._tcp.api.test"
	dns := dnstest.Start(t)
	srvs, recs, counts := srvBackends(t, dns, 6)
	dns.SetSRV(name, recs[:3]...)
	cfg := testConfig(t)
	cfg["backends"] = []any{map[string]any{"discover": "srv", "name": name}}
	cfg["dns_resolver"] = dns.Addr
	cfg["dns_refresh"] = "1s"
	r := start(t, cfg)
	c := newClient(t)
	waitMembers := func(n int) {
		t.Helper()
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			st, err := fetchStatus(c, r)
			require.NoError(ct, err)
			assert.Equal(ct, n, st.ActiveBackends)
			assert.Equal(ct, n, st.TotalBackends)
		}, 10*time.Second, 20*time.Millisecond)
	}
	waitMembers(3)

	load := startSteadyLoad(r.proxyURL+"/", 16) // stopped below

	// Up to 6: the new ones take traffic.
	changed := time.Now()
	dns.SetSRV(name, recs...)
	require.Eventually(t, func() bool { return counts[5].Load() > 0 }, 10*time.Second, time.Millisecond)
	t.Logf("from the DNS change to the first request on a new backend: %v (dns_refresh 1s)", time.Since(changed).Round(time.Millisecond))
	waitMembers(6)

	// Down to 2.
	dns.SetSRV(name, recs[4], recs[5])
	waitMembers(2)
	before := counts[0].Load()
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, before, counts[0].Load(), "a vanished backend gets no more requests")

	load.stop()
	t.Logf("scaling 3 to 6 to 2: %d requests from 16 clients, %d errors %s", load.requests.Load(), load.failures.Load(), load.errs.String())
	assert.Zero(t, load.failures.Load())

	st := poolStatus(t, c, r)
	src, ok := sourceOf(st, name)
	require.True(t, ok, "%+v", st.Sources)
	assert.Equal(t, "srv", src.Discover)
	assert.False(t, src.Failing)
	assert.Empty(t, src.LastError)
	assert.NotEmpty(t, src.LastRefresh)
	assert.ElementsMatch(t, []string{srvs[4].URL, srvs[5].URL}, src.Backends)
	for _, b := range st.Backends {
		assert.Equal(t, name, b.Source, b.URL)
	}
	code, body := adminCall(t, c, r, http.MethodDelete, fmt.Sprintf(`{"url": %q}`, srvs[4].URL))
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "comes from discovery")
	assert.Contains(t, body, "maintenance")
	assert.Equal(t, exitOK, r.stop(t))
}

// Two sources may look up one name, on two ports: each is a source of its
// own in /status, and the metrics label them by id, so that their series do
// not collide (a collision would make /metrics answer 500).
func TestTwoSourcesOfOneName(t *testing.T) {
	const name = "api.test"
	dns := dnstest.Start(t)
	dns.SetHosts(name, "127.0.0.1")
	var entries []any
	for _, id := range []string{"a", "b"} {
		entries = append(entries, map[string]any{"discover": "a", "name": name, "port": testPort(namedBackend(t, id).URL)})
	}
	cfg := testConfig(t)
	cfg["backends"] = entries
	cfg["dns_resolver"] = dns.Addr
	r := start(t, cfg)
	c := newClient(t)
	var st admin.StatusResponse
	require.Eventually(t, func() bool {
		var err error
		st, err = fetchStatus(c, r)
		return err == nil && st.ActiveBackends == 2
	}, 10*time.Second, 20*time.Millisecond)
	require.Len(t, st.Sources, 2)
	assert.NotEqual(t, st.Sources[0].ID, st.Sources[1].ID)
	for _, b := range st.Backends {
		assert.Equal(t, name, b.Source)
	}
	for _, src := range st.Sources {
		v, ok := scrape(t, c, r.adminURL, `switchyard_discovery_source_backends{source="`+src.ID+`"}`)
		assert.True(t, ok, src.ID)
		assert.Equal(t, 1.0, v, src.ID)
	}
	assert.Equal(t, exitOK, r.stop(t))
}

// A DNS outage keeps the last good set, marked failing in /status and in
// the metrics; the source recovers by itself.
func TestDiscoveryOutageKeepsTheBackends(t *testing.T) {
	const name = "api.test"
	dns := dnstest.Start(t)
	be := namedBackend(t, "a")
	dns.SetHosts(name, "127.0.0.1")
	cfg := testConfig(t)
	cfg["backends"] = []any{map[string]any{"discover": "a", "name": name, "port": testPort(be.URL)}}
	cfg["dns_resolver"] = dns.Addr
	cfg["dns_refresh"] = "1s"
	r := start(t, cfg)
	c := newClient(t)
	require.Eventually(t, func() bool { st, err := fetchStatus(c, r); return err == nil && st.ActiveBackends == 1 },
		10*time.Second, 20*time.Millisecond)

	dns.SetMode(dnstest.ServFail)
	var id string
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := fetchStatus(c, r)
		require.NoError(ct, err)
		src, _ := sourceOf(st, name)
		assert.True(ct, src.Failing)
		assert.NotEmpty(ct, src.LastError)
		id = src.ID
	}, 10*time.Second, 20*time.Millisecond)
	code, _ := get(t, c, r.proxyURL+"/")
	assert.Equal(t, http.StatusOK, code, "the last good set still serves")
	v, _ := scrape(t, c, r.adminURL, `switchyard_discovery_source_failing{source="`+id+`"}`)
	assert.Equal(t, 1.0, v)

	dns.SetMode(dnstest.Serve)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st, err := fetchStatus(c, r)
		require.NoError(ct, err)
		src, _ := sourceOf(st, name)
		assert.False(ct, src.Failing)
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, exitOK, r.stop(t))
}

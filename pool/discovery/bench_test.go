package discovery_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/pool/discovery/dnstest"
)

// The benchmarks time one refresh of one source of 1,000 backends that
// changes nothing, as every refresh but the first does in a steady cluster:
//
//   - against the real DNS server of the tests, through Go's resolver: what
//     a refresh costs end to end, and so how many lookups a second the
//     package can make. The server runs in the same process and takes its
//     share of the CPU; a real one would not.
//   - against a resolver that answers from memory: the package's own CPU
//     cost, without the DNS traffic.
//
// SRV needs 1 + N lookups per refresh (the SRV name, then each target), A one.
// An A or SRV-target lookup is one call, which asks A and AAAA together.

const benchBackends = 1000

func benchZone(b *testing.B) *dnstest.Server {
	srv := dnstest.Start(b)
	var recs []dnstest.SRV
	var many []string
	for i := range benchBackends {
		target := fmt.Sprintf("n%d.nodes.test", i)
		addr := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
		recs = append(recs, dnstest.SRV{Priority: 1, Weight: uint16(i % 10), Port: 8080, Target: target})
		srv.SetHosts(target, addr)
		many = append(many, addr)
	}
	srv.SetSRV("_http._tcp.api.service.test", recs...)
	srv.SetHosts("api.default.svc.cluster.local", many...)
	return srv
}

// countSink counts calls and keeps nothing.
type countSink struct{ calls int }

func (c *countSink) SetSource(context.Context, string, []discovery.Target) error {
	c.calls++
	return nil
}

func benchRefresh(b *testing.B, w *discovery.Watcher, sink *countSink) {
	b.Helper()
	r := discovery.NewRefresher(w, 0)
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil || sink.calls != 1 {
		b.Fatalf("first refresh: %v, %d calls", err, sink.calls)
	}
	before := w.Status()[0].Lookups
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	st := w.Status()[0]
	if st.Failing || sink.calls != 1 || len(st.Backends) != benchBackends {
		b.Fatalf("a refresh failed or changed something: %+v, %d calls", st.LastError, sink.calls)
	}
	b.ReportMetric(float64(st.Lookups-before)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkRefreshUnchanged(b *testing.B) {
	srv := benchZone(b)
	for _, tc := range []struct {
		name   string
		source discovery.Source
	}{
		{"srv-1000", srvSource("_http._tcp.api.service.test")},
		{"a-1000", aSource("api.default.svc.cluster.local", 8080)},
	} {
		b.Run("dns/"+tc.name, func(b *testing.B) {
			sink := &countSink{}
			w, err := discovery.New(sink, discovery.Config{Sources: []discovery.Source{tc.source}, Resolver: srv.Addr, Refresh: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			benchRefresh(b, w, sink)
		})
		b.Run("memory/"+tc.name, func(b *testing.B) {
			sink := &countSink{}
			w, err := discovery.New(sink, discovery.Config{Sources: []discovery.Source{tc.source}, Refresh: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			discovery.SetResolver(w, newMemoryResolver())
			benchRefresh(b, w, sink)
		})
	}
}

// memoryResolver answers like benchZone, from slices built once.
type memoryResolver struct {
	srvs  []*net.SRV
	hosts map[string][]netip.Addr
	many  []netip.Addr
}

func newMemoryResolver() *memoryResolver {
	m := &memoryResolver{hosts: map[string][]netip.Addr{}}
	for i := range benchBackends {
		target := fmt.Sprintf("n%d.nodes.test.", i)
		addr := netip.AddrFrom4([4]byte{10, byte(i / 65536), byte(i / 256 % 256), byte(i % 256)})
		m.srvs = append(m.srvs, &net.SRV{Target: target, Port: 8080, Priority: 1, Weight: uint16(i % 10)})
		m.hosts[target] = []netip.Addr{addr}
		m.many = append(m.many, addr)
	}
	return m
}

func (m *memoryResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == "api.default.svc.cluster.local." {
		return m.many, nil
	}
	return m.hosts[host], nil
}

func (m *memoryResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", m.srvs, nil
}

// Package dnstest is a real DNS server for tests, on 127.0.0.1 over UDP and
// TCP, answering A, AAAA and SRV questions from a zone the test changes
// while the code under test looks names up.
//
// Goroutines: Start runs the server's two loops (UDP and TCP); Stop, which
// the test's Cleanup calls, shuts them down and waits for them.
package dnstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// Server is a real DNS server on 127.0.0.1, over UDP and TCP on one port,
// answering from a zone the test changes while the watcher runs.
type Server struct {
	t    testing.TB
	Addr string

	mu       sync.Mutex
	hosts    map[string][]netip.Addr // an entry with no addresses exists, with no records
	srvs     map[string][]SRV
	mode     Mode
	nxdomain map[string]int // NXDOMAIN answers still to give to A and SRV questions; -1: until cleared
	firstNX  map[string]time.Time
	queries  map[string]int // by "TYPE name"
	udp, tcp *dns.Server
}

type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Mode is how the server answers every question.
type Mode int

const (
	Serve    Mode = iota
	ServFail      // RCODE 2
	Refused       // RCODE 5
	Silent        // no answer at all: the client times out
)

// Start starts a server that runs until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		hosts:    map[string][]netip.Addr{},
		srvs:     map[string][]SRV{},
		nxdomain: map[string]int{},
		firstNX:  map[string]time.Time{},
		queries:  map[string]int{},
	}
	// UDP and TCP must share a port, as Go's resolver retries a truncated
	// answer over TCP to the same address. The port is drawn from below
	// the kernel's ephemeral range (32768 and up on Linux), so that after
	// Stop no client socket of this or another test can take it before
	// Restart binds it again.
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		pc, l, err := listen(addr)
		if err != nil {
			continue
		}
		s.Addr = addr
		s.serveOn(pc, l)
		t.Cleanup(s.Stop)
		return s
	}
	require.FailNow(t, "no port free for both UDP and TCP")
	return nil
}

func listen(addr string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	return pc, l, nil
}

func (s *Server) serveOn(pc net.PacketConn, l net.Listener) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		// Waited for by Stop: Shutdown returns once the server's loop has.
		go func() { _ = srv.ActivateAndServe() }()
		<-started
	}
}

// Stop shuts the server down: questions are then refused by the kernel
// (ICMP port unreachable for UDP, RST for TCP).
func (s *Server) Stop() {
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp = nil, nil
	s.mu.Unlock()
	if udp != nil {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	}
}

// Restart serves again on the same address after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	pc, l, err := listen(s.Addr)
	require.NoError(s.t, err)
	s.serveOn(pc, l)
}

// SetHosts makes name's A and AAAA records addrs; with none, name exists
// but has no address records.
func (s *Server) SetHosts(name string, addrs ...string) {
	s.t.Helper()
	list := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		list = append(list, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts[fqdn(name)] = list
}

// DeleteHost makes name unknown: NXDOMAIN.
func (s *Server) DeleteHost(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hosts, fqdn(name))
}

// SetSRV makes name's SRV records recs.
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srvs[fqdn(name)] = recs
}

// SetMode changes how every question is answered.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// NXDomain answers NXDOMAIN for name to its next n A or SRV questions (and
// the AAAA questions asked meanwhile); n < 0 means until NXDomain(name, 0).
func (s *Server) NXDomain(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = fqdn(name)
	s.nxdomain[name] = n
	delete(s.firstNX, name)
}

// FirstNX returns when name was first answered NXDOMAIN by NXDomain.
func (s *Server) FirstNX(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstNX[fqdn(name)]
}

// Queries returns how many questions of type qtype ("A", "AAAA", "SRV") for
// name the server has had.
func (s *Server) Queries(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[qtype+" "+fqdn(name)]
}

// fqdn is the zone's key for name: fully qualified and in lower case, as
// ServeDNS looks a question's name up, since DNS names match whatever
// their case.
func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// ServeDNS answers from the zone, authoritatively: Go's resolver takes an
// empty answer that is neither authoritative nor recursive for a lame
// referral, a failure, where "no records" is meant.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Compress = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	s.queries[dns.TypeToString[q.Qtype]+" "+name]++
	switch s.mode {
	case Silent:
		s.mu.Unlock()
		return
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
	case Refused:
		m.Rcode = dns.RcodeRefused
	default:
		s.answer(m, q, name)
	}
	s.mu.Unlock()

	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		// Sets TC when the answer does not fit, and the client asks again
		// over TCP: 1,000 records do not fit in a datagram.
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// answer fills m from the zone; s.mu is held.
func (s *Server) answer(m *dns.Msg, q dns.Question, name string) {
	if n := s.nxdomain[name]; n != 0 {
		if _, ok := s.firstNX[name]; !ok {
			s.firstNX[name] = time.Now()
		}
		if n > 0 && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeSRV) {
			s.nxdomain[name] = n - 1
		}
		m.Rcode = dns.RcodeNameError
		return
	}
	addrs, isHost := s.hosts[name]
	recs, isSRV := s.srvs[name]
	if !isHost && !isSRV {
		m.Rcode = dns.RcodeNameError
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
	}
	switch q.Qtype {
	case dns.TypeA:
		for _, a := range addrs {
			if a.Is4() {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			}
		}
	case dns.TypeAAAA:
		for _, a := range addrs {
			if a.Is6() {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	case dns.TypeSRV:
		for _, r := range recs {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV),
				Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dns.Fqdn(r.Target)})
		}
	}
}

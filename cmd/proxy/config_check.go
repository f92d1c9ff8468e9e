package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/cmd/internal/strictjson"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// check parses and validates every field, one concern at a time, and
// reports every problem at once. Each package parses its own input
// (pool.ParseURL, health.ParsePath, proxy.ParseTrustedProxy, ...); this file
// only gathers the answers and names the fields.
func (f configFile) check(getenv func(string) string) (Config, error) {
	var c Config
	var ps problems
	f.checkListeners(&c, &ps) // first: the port is needed below
	f.checkPool(&c, &ps)
	f.checkBalancing(&c, &ps, getenv)
	f.checkDiscovery(&c, &ps)
	f.checkHealth(&c, &ps)
	f.checkProxy(&c, &ps)
	f.checkLimits(&c, &ps)
	f.checkOutput(&c, &ps)
	f.checkProtocols(&c, &ps)
	if err := errors.Join(ps...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// problems collects what is wrong with a file, one error per problem, each
// starting with the name of its field.
type problems []error

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// positive parses a duration that must be greater than zero.
func (ps *problems) positive(field, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		ps.add(field, "must be a positive duration such as %q, got %q", "10s", s)
		return 0
	}
	return d
}

// duration parses a duration that may be zero but not negative.
func (ps *problems) duration(field, s, example string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		ps.add(field, "must be a duration of zero or more such as %q, got %q", example, s)
		return 0
	}
	return d
}

// object decodes an optional nested object of the file strictly onto v,
// naming its fields under field.
func (ps *problems) object(field string, raw json.RawMessage, v any) bool {
	if err := strictjson.Decode(raw, v); err != nil {
		ps.add(field, "%s", strings.TrimPrefix(err.Error(), "the file must hold one JSON object, got "))
		return false
	}
	return true
}

// atLeast checks a number against its least allowed value.
func (ps *problems) atLeast(field string, n, least int) int {
	if n < least {
		ps.add(field, "must be at least %d, got %d", least, n)
	}
	return n
}

// checkListeners: where the proxy and its admin API listen, and who may
// use the admin API.
func (f configFile) checkListeners(c *Config, ps *problems) {
	switch {
	case f.Port == nil:
		ps.add("port", "missing; set the port the proxy listens on, 1 to 65535")
	case *f.Port < 1 || *f.Port > 65535:
		ps.add("port", "must be between 1 and 65535, got %d", *f.Port)
	default:
		c.Port = *f.Port
	}

	c.AdminToken = f.AdminToken
	if strings.ContainsFunc(f.AdminToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		// HTTP trims header values, so such a token could never match.
		ps.add("admin_token", "must not contain spaces or control characters")
	}
	host, port, err := net.SplitHostPort(f.AdminAddr)
	if err != nil {
		ps.add("admin_addr", "must be host:port such as %q, got %q", "127.0.0.1:8081", f.AdminAddr)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		ps.add("admin_addr", "port must be between 1 and 65535, got %q", port)
		return
	}
	c.AdminAddr = f.AdminAddr
	if n == c.Port {
		// The proxy listens on every interface, this one included.
		ps.add("admin_addr", "port %d is also the proxy's port", n)
	}
	if !isLoopback(host) && c.AdminToken == "" {
		// Issue 6, "Safe by default": the admin API can remove every
		// backend, so it is open without a token only to this machine.
		ps.add("admin_addr", "%q is reachable from other machines, so an admin token is required: set admin_token or %s, or use 127.0.0.1", f.AdminAddr, tokenEnv)
	}
}

// checkPool: the backends and how the pool chooses among them.
func (f configFile) checkPool(c *Config, ps *problems) {
	if s, err := pool.ParseStrategy(f.Strategy); err != nil {
		ps.add("strategy", "must be %q, %q, %q or %q, got %q", pool.RoundRobin, pool.LeastConnections, pool.RandomTwo, pool.Hash, f.Strategy)
	} else {
		c.Strategy = s
	}
	seen := make(map[string]int)
	sources := make(map[string]int)
	for i, entry := range f.Backends {
		field := fmt.Sprintf("backends[%d]", i)
		if isSource(entry) {
			src, err := discovery.DecodeSource(entry)
			if err != nil {
				ps.add(field, "%s", strings.TrimPrefix(err.Error(), "discovery: "))
				continue
			}
			if j, dup := sources[src.String()]; dup {
				ps.add(field, "the same discovery source as backends[%d]", j)
				continue
			}
			sources[src.String()] = i
			c.Sources = append(c.Sources, src)
			continue
		}
		raw, weight, ok := parseBackendEntry(field, entry, ps)
		if !ok {
			continue
		}
		u, err := pool.ParseURL(raw)
		if err != nil {
			ps.add(field, "%s", strings.TrimPrefix(err.Error(), "pool: "))
			continue
		}
		key := u.String()
		if j, dup := seen[key]; dup {
			ps.add(field, "%q is the same backend as backends[%d] (%s)", raw, j, key)
			continue
		}
		if c.Port != 0 && isSelf(u, c.Port) {
			// Each request would come back to the proxy and go round until
			// it timed out, holding a connection per turn.
			ps.add(field, "%q is this proxy itself (port %d)", raw, c.Port)
			continue
		}
		seen[key] = i
		c.Backends = append(c.Backends, pool.Spec{URL: key, Weight: weight})
	}
	c.HealthyThreshold = ps.atLeast("healthy_threshold", f.HealthyThreshold, 1)
	c.UnhealthyThreshold = ps.atLeast("unhealthy_threshold", f.UnhealthyThreshold, 1)
}

// isSource reports whether a backend entry is a discovery source: an object
// with a "discover" field.
func isSource(entry json.RawMessage) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(entry, &probe) != nil {
		return false
	}
	_, ok := probe["discover"]
	return ok
}

// checkDiscovery: where discovery sources are looked up, and how often.
func (f configFile) checkDiscovery(c *Config, ps *problems) {
	if r, err := discovery.ParseResolver(f.DNSResolver); err != nil {
		ps.add("dns_resolver", "must be host:port such as %q, or left out for the system's resolver, got %q", "127.0.0.1:8600", f.DNSResolver)
	} else {
		c.DNSResolver = r
	}
	if d, err := discovery.ParseRefresh(f.DNSRefresh); err != nil {
		ps.add("dns_refresh", "must be a duration of at least %s such as %q, got %q", discovery.MinRefresh, "10s", f.DNSRefresh)
	} else {
		c.DNSRefresh = d
	}
}

// parseBackendEntry reads one entry of "backends": a URL string, as in the
// original program's files, or an object with a url and a weight.
func parseBackendEntry(field string, entry json.RawMessage, ps *problems) (string, int, bool) {
	var raw string
	if err := json.Unmarshal(entry, &raw); err == nil {
		return raw, 1, true
	}
	var b backendFile
	if len(entry) == 0 || entry[0] != '{' {
		ps.add(field, "must be a URL string or an object such as %s, got %s", `{"url": "http://10.0.0.5:8080", "weight": 3}`, entry)
		return "", 0, false
	}
	if !ps.object(field, entry, &b) {
		return "", 0, false
	}
	weight := 1
	if b.Weight != nil {
		weight = *b.Weight
		if weight < 1 || weight > pool.MaxWeight {
			ps.add(field, "weight must be a whole number from 1 to %d, got %d", pool.MaxWeight, weight)
			return "", 0, false
		}
	}
	if b.URL == "" {
		ps.add(field, "url: missing")
		return "", 0, false
	}
	return b.URL, weight, true
}

// checkBalancing: hashing, sticky sessions, slow start, passive health and
// what happens when every backend is down.
func (f configFile) checkBalancing(c *Config, ps *problems, getenv func(string) string) {
	if k, err := proxy.ParseHashKey(f.HashKey); err != nil {
		ps.add("hash_key", "must be %q, %q, %q or %q, got %q", "client_ip", "uri", "header:NAME", "cookie:NAME", f.HashKey)
	} else if c.Strategy == pool.Hash {
		c.HashKey = k
	}
	if f.Sticky != nil && string(f.Sticky) != "null" {
		st := stickyFile{Cookie: "sy_route"}
		if ps.object("sticky", f.Sticky, &st) {
			if env := getenv(stickySecretEnv); env != "" {
				st.Secret = env
			}
			if st.Secret == "" {
				ps.add("sticky.secret", "missing; sticky sessions need a secret to sign their cookie: set sticky.secret or %s", stickySecretEnv)
			}
			if !validCookieName(st.Cookie) {
				ps.add("sticky.cookie", "must be a cookie name such as %q, got %q", "sy_route", st.Cookie)
			}
			c.StickyCookie, c.StickySecret = st.Cookie, st.Secret
		}
	}
	c.SlowStart = ps.duration("slow_start", f.SlowStart, "30s")
	if f.PassiveHealth != nil && string(f.PassiveHealth) != "null" {
		pf := defaultPassive()
		if ps.object("passive_health", f.PassiveHealth, &pf) {
			ph := &pool.PassiveHealth{ConsecutiveFailures: pf.ConsecutiveFailures, FailureStatuses: pf.FailureStatuses,
				MaxEjectedPercent: pf.MaxEjectedPercent}
			ph.EjectionTime = ps.positive("passive_health.ejection_time", pf.EjectionTime)
			for _, p := range ph.Problems() {
				if p.Field != "ejection_time" { // the file's text is checked above, as it is parsed
					ps.add("passive_health."+p.Field, "%s", p.Problem)
				}
			}
			c.PassiveHealth = ph
		}
	}
	if w, err := pool.ParseWhenAllDown(f.WhenAllDown); err != nil {
		ps.add("when_all_down", "must be %q or %q, got %q", pool.Fail, pool.TryAll, f.WhenAllDown)
	} else {
		c.WhenAllDown = w
	}
}

// validCookieName reports whether name is a cookie name (an RFC 6265
// token), as http.Cookie would write it.
func validCookieName(name string) bool {
	return name != "" && (&http.Cookie{Name: name, Value: "x"}).Valid() == nil
}

// checkLimits: what protects the proxy's clients and backends from each
// other.
func (f configFile) checkLimits(c *Config, ps *problems) {
	c.SendTimeout = ps.positive("send_timeout", f.SendTimeout)
	c.ClientBodyTimeout = ps.positive("client_body_timeout", f.ClientBodyTimeout)
	c.MaxConnections = ps.atLeast("max_connections", f.MaxConnections, 0)
	c.MaxRequestsPerBackend = ps.atLeast("max_requests_per_backend", f.MaxRequestsPerBackend, 0)
	c.MaxQueue = ps.atLeast("max_queue", f.MaxQueue, 1)
	c.QueueTimeout = ps.positive("queue_timeout", f.QueueTimeout)
}

// checkHealth: the active health checks.
func (f configFile) checkHealth(c *Config, ps *problems) {
	c.HealthCheckFrequency = ps.positive("health_check_frequency", f.HealthCheckFrequency)
	if c.HealthCheckFrequency > 0 && c.HealthCheckFrequency < 10*time.Millisecond {
		ps.add("health_check_frequency", "must be at least 10ms, got %q", f.HealthCheckFrequency)
	}
	if f.HealthCheckTimeout == "" {
		// Not set: 2s, unless the file asks for checks more often than that,
		// as the original program's files may ("health_check_frequency":
		// "1s"); such a file must still load.
		c.HealthCheckTimeout = min(2*time.Second, c.HealthCheckFrequency/2)
	} else {
		c.HealthCheckTimeout = ps.positive("health_check_timeout", f.HealthCheckTimeout)
	}
	if c.HealthCheckTimeout > 0 && c.HealthCheckFrequency > 0 && c.HealthCheckTimeout >= c.HealthCheckFrequency {
		// Otherwise one round of probes could still run when the next is due.
		ps.add("health_check_timeout", "must be less than health_check_frequency (%s), got %s", c.HealthCheckFrequency, c.HealthCheckTimeout)
	}
	if f.HealthCheckDownFrequency == "" {
		c.HealthCheckDownFrequency = min(health.DefaultDownInterval, c.HealthCheckFrequency)
	} else {
		c.HealthCheckDownFrequency = ps.positive("health_check_down_frequency", f.HealthCheckDownFrequency)
		if c.HealthCheckFrequency > 0 && c.HealthCheckDownFrequency > c.HealthCheckFrequency {
			ps.add("health_check_down_frequency", "must be at most health_check_frequency (%s), got %s", c.HealthCheckFrequency, c.HealthCheckDownFrequency)
		}
	}
	if _, err := health.ParsePath(f.HealthCheckPath); err != nil {
		ps.add("health_check_path", "must be a path starting with \"/\", got %q", f.HealthCheckPath)
	} else {
		c.HealthCheckPath = f.HealthCheckPath
	}
	switch f.HealthCheckMode {
	case "http":
	case "grpc":
		c.HealthCheckGRPC = true
	default:
		ps.add("health_check_mode", "must be %q or %q, got %q", "http", "grpc", f.HealthCheckMode)
	}
	c.HealthCheckService = f.HealthCheckService
	if f.HealthCheckService != "" && !c.HealthCheckGRPC {
		ps.add("health_check_grpc_service", "is for health_check_mode \"grpc\"; the mode is %q", f.HealthCheckMode)
	}
}

// checkProxy: the data path's limits and timeouts, on both sides, and the
// shutdown.
func (f configFile) checkProxy(c *Config, ps *problems) {
	c.RequestTimeout = ps.positive("request_timeout", f.RequestTimeout)
	c.ShutdownTimeout = ps.positive("shutdown_timeout", f.ShutdownTimeout)
	c.ShutdownDelay = ps.duration("shutdown_delay", f.ShutdownDelay, "5s")
	for i, s := range f.TrustedProxies {
		p, err := proxy.ParseTrustedProxy(s)
		if err != nil {
			ps.add(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP address or a CIDR prefix such as %q, got %q", "10.0.0.0/8", s)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	c.ReadHeaderTimeout = ps.positive("read_header_timeout", f.ReadHeaderTimeout)
	c.IdleTimeout = ps.positive("idle_timeout", f.IdleTimeout)
	// Below a few KiB, ordinary browsers' cookies and headers would be refused.
	c.MaxHeaderBytes = ps.atLeast("max_header_bytes", f.MaxHeaderBytes, 4096)
	c.DialTimeout = ps.positive("dial_timeout", f.DialTimeout)
	c.BackendIdleTimeout = ps.positive("backend_idle_timeout", f.BackendIdleTimeout)
	c.MaxIdleConnsPerBackend = ps.atLeast("max_idle_conns_per_backend", f.MaxIdleConnsPerBackend, 1)
}

// checkOutput: what the proxy tells about itself.
func (f configFile) checkOutput(c *Config, ps *problems) {
	c.Metrics, c.Pprof = f.Metrics, f.Pprof
	if f.StateFile != "" && strings.TrimSpace(f.StateFile) == "" {
		ps.add("state_file", "must be a file path, or left out, got %q", f.StateFile)
	}
	c.StateFile = f.StateFile
	if strings.TrimSpace(f.AccessLog) == "" {
		ps.add("access_log", "must be %q, %q or a file path, got %q", "off", "stdout", f.AccessLog)
	} else {
		c.AccessLog = f.AccessLog
	}
}

// checkProtocols: the TLS port and its certificates, HTTP/2 without TLS,
// and the roots that https backends are verified against. Certificate and
// CA files are read here, so that a bad one is a config error at start-up,
// -check and reload alike, and applying the config cannot fail.
func (f configFile) checkProtocols(c *Config, ps *problems) {
	c.H2C = f.H2C
	if f.BackendCAFile != "" {
		c.BackendCAFile = f.BackendCAFile
		c.BackendCAs = loadCAFile("backend_ca_file", f.BackendCAFile, ps)
	}
	if f.TLS == nil || string(f.TLS) == "null" {
		return
	}
	tf := tlsFile{MinVersion: "1.2"}
	if !ps.object("tls", f.TLS, &tf) {
		return
	}
	t := &TLSConfig{Certificates: tf.Certificates, RedirectHTTP: tf.RedirectHTTP}
	switch {
	case tf.Port == nil:
		ps.add("tls.port", "missing; set the port HTTPS is served on, such as 443 or 8443")
	case *tf.Port < 1 || *tf.Port > 65535:
		ps.add("tls.port", "must be between 1 and 65535, got %d", *tf.Port)
	case *tf.Port == c.Port:
		ps.add("tls.port", "port %d is also the proxy's plain port", *tf.Port)
	case addrPort(c.AdminAddr) == *tf.Port:
		ps.add("tls.port", "port %d is also admin_addr's", *tf.Port)
	default:
		t.Port = *tf.Port
	}
	v, err := certs.ParseMinVersion(tf.MinVersion)
	if err != nil {
		ps.add("tls.min_version", "must be %q or %q, got %q", "1.2", "1.3", tf.MinVersion)
	}
	t.MinVersion = v
	if len(tf.Certificates) == 0 {
		ps.add("tls.certificates", "missing; list at least one {\"cert_file\": ..., \"key_file\": ...}")
	} else if t.Set, err = certs.Load(tf.Certificates, time.Now()); err != nil {
		bad := certs.EntryErrors(err)
		for _, e := range bad {
			ps.add(fmt.Sprintf("tls.certificates[%d]", e.Index), "%v", e.Err)
		}
		if len(bad) == 0 {
			ps.add("tls.certificates", "%v", err)
		}
	}
	c.TLS = t
}

// addrPort is the port of a checked host:port, or 0.
func addrPort(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// loadCAFile reads a PEM file of CA certificates into a pool.
func loadCAFile(field, path string, ps *problems) *x509.CertPool {
	data, err := os.ReadFile(path)
	if err != nil {
		ps.add(field, "%v", err)
		return nil
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		ps.add(field, "%q holds no PEM certificate", path)
		return nil
	}
	return roots
}

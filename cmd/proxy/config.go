package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
)

// Config is the proxy's configuration, checked and parsed. The first four
// fields mean what they meant to the program this one replaces, so that a
// config.json written for it works unchanged.
type Config struct {
	Port                 int           // the proxy listens on ":Port"
	Strategy             pool.Strategy // how a backend is chosen
	HealthCheckFrequency time.Duration // time between health-check rounds
	Backends             []string      // initial backends, normalised by pool.ParseURL; nil if none

	AdminAddr  string // host:port of the admin API
	AdminToken string // required on admin calls when not empty

	RequestTimeout  time.Duration // limit on one proxied request
	ShutdownTimeout time.Duration // how long in-flight requests get to finish on shutdown
	ShutdownDelay   time.Duration // time /healthz answers 503 before the listeners close

	HealthCheckTimeout time.Duration // limit on one probe; less than HealthCheckFrequency
	HealthCheckPath    string        // path probed on every backend
	HealthyThreshold   int           // passing probes in a row that bring a backend up
	UnhealthyThreshold int           // failing probes in a row that take it down

	TrustedProxies []netip.Prefix // peers whose X-Forwarded-For is believed; nil if none

	ReadHeaderTimeout time.Duration // a client's request headers must arrive within this
	IdleTimeout       time.Duration // an idle client keep-alive connection is closed after this
	MaxHeaderBytes    int           // larger request headers are answered with 431

	DialTimeout            time.Duration // limit on connecting to a backend
	BackendIdleTimeout     time.Duration // an idle backend keep-alive connection is closed after this
	MaxIdleConnsPerBackend int           // idle keep-alive connections kept per backend

	Metrics   bool   // serve Prometheus metrics on the admin API's /metrics
	AccessLog string // "off", "stdout" or a file path
}

// configFile is config.json as written. Durations and addresses stay text
// here and are parsed in check, so that a bad value is reported with its
// field's name, next to every other problem in the file, rather than as the
// decoder's first complaint.
type configFile struct {
	// Port is a pointer so that a missing port can be told from "port": 0:
	// the program this one replaces started on a random port when it was
	// missing, and that mistake deserves its own message.
	Port                 *int     `json:"port"`
	Strategy             string   `json:"strategy"`
	HealthCheckFrequency string   `json:"health_check_frequency"`
	Backends             []string `json:"backends"`

	AdminAddr  string `json:"admin_addr"`
	AdminToken string `json:"admin_token"`

	RequestTimeout  string `json:"request_timeout"`
	ShutdownTimeout string `json:"shutdown_timeout"`
	ShutdownDelay   string `json:"shutdown_delay"`

	HealthCheckTimeout string `json:"health_check_timeout"`
	HealthCheckPath    string `json:"health_check_path"`
	HealthyThreshold   int    `json:"healthy_threshold"`
	UnhealthyThreshold int    `json:"unhealthy_threshold"`

	TrustedProxies []string `json:"trusted_proxies"`

	ReadHeaderTimeout string `json:"read_header_timeout"`
	IdleTimeout       string `json:"idle_timeout"`
	MaxHeaderBytes    int    `json:"max_header_bytes"`

	DialTimeout            string `json:"dial_timeout"`
	BackendIdleTimeout     string `json:"backend_idle_timeout"`
	MaxIdleConnsPerBackend int    `json:"max_idle_conns_per_backend"`

	Metrics   bool   `json:"metrics"`
	AccessLog string `json:"access_log"`
}

// defaultConfig returns the values of every field the file leaves out. The
// README's table of fields must agree with it.
func defaultConfig() configFile {
	return configFile{
		Strategy:               string(pool.RoundRobin),
		HealthCheckFrequency:   "10s",
		AdminAddr:              "127.0.0.1:8081",
		RequestTimeout:         "30s",
		ShutdownTimeout:        "15s",
		ShutdownDelay:          "0s",
		HealthCheckTimeout:     "", // 2s, or half the frequency if that is less: see check
		HealthCheckPath:        "/",
		HealthyThreshold:       1,
		UnhealthyThreshold:     1,
		ReadHeaderTimeout:      "10s",
		IdleTimeout:            "120s",
		MaxHeaderBytes:         64 << 10,
		DialTimeout:            "3s",
		BackendIdleTimeout:     "30s",
		MaxIdleConnsPerBackend: 256,
		Metrics:                true,
		AccessLog:              "off",
	}
}

// tokenEnv, when set and not empty, replaces admin_token, so that the secret
// need not be written in a file.
const tokenEnv = "PROXY_ADMIN_TOKEN"

// loadConfig decodes data onto the defaults, lets the environment (read with
// getenv) override the admin token, and checks every field. Its error lists
// every problem found, one per line, each starting with the field's name.
func loadConfig(data []byte, getenv func(string) string) (Config, error) {
	f := defaultConfig()
	if err := decodeStrict(data, &f); err != nil {
		// The rest of the file cannot be trusted once the JSON is bad, so this
		// is the one error reported alone.
		return Config{}, err
	}
	if tok := getenv(tokenEnv); tok != "" {
		f.AdminToken = tok
	}
	return f.check()
}

// decodeStrict decodes one JSON object into v, rejecting unknown fields and
// anything after the object, and rewords the decoder's errors to start with
// the field they are about.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(data, err)
	}
	// Decode stops after the first value; a second one is most likely a
	// botched edit, and ignoring it would ignore settings the user meant.
	end := dec.InputOffset()
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		extra := len(data[end:]) - len(bytes.TrimLeft(data[end:], " \t\r\n"))
		return fmt.Errorf("unexpected data after the JSON object at %s", position(data, end+int64(extra)))
	}
	return nil
}

func describeJSONError(data []byte, err error) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New(`the file is empty; it needs at least {"port": 8080}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON ends too early (a missing } or \"?)")
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("invalid JSON at %s: %s", position(data, syntaxErr.Offset), strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Errorf("the file must hold one JSON object, got %s", typeErr.Value)
		}
		return fmt.Errorf("%s: must be %s, got %s", typeErr.Field, describeType(typeErr.Type.String()), typeErr.Value)
	}
	// DisallowUnknownFields reports `json: unknown field "name"`, with no
	// typed error to match.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown field (is it misspelt?)", strings.Trim(name, `"`))
	}
	return err
}

func describeType(goType string) string {
	switch goType {
	case "int":
		return "a whole number"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	}
	return goType
}

// position turns a byte offset into "line L, column C" for people.
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// check parses and validates every field, collecting one error per problem.
func (f configFile) check() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	// positive parses a duration that must be greater than zero.
	positive := func(field, s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad(field, "must be a positive duration such as %q, got %q", "10s", s)
			return 0
		}
		return d
	}
	atLeast := func(field string, n, least int) int {
		if n < least {
			bad(field, "must be at least %d, got %d", least, n)
		}
		return n
	}

	var c Config
	switch {
	case f.Port == nil:
		bad("port", "missing; set the port the proxy listens on, 1 to 65535")
	case *f.Port < 1 || *f.Port > 65535:
		bad("port", "must be between 1 and 65535, got %d", *f.Port)
	default:
		c.Port = *f.Port
	}

	if s, err := pool.ParseStrategy(f.Strategy); err != nil {
		bad("strategy", "must be %q or %q, got %q", pool.RoundRobin, pool.LeastConnections, f.Strategy)
	} else {
		c.Strategy = s
	}

	c.HealthCheckFrequency = positive("health_check_frequency", f.HealthCheckFrequency)

	seen := make(map[string]int)
	for i, raw := range f.Backends {
		u, err := pool.ParseURL(raw)
		if err != nil {
			bad(fmt.Sprintf("backends[%d]", i), "%s", strings.TrimPrefix(err.Error(), "pool: "))
			continue
		}
		key := u.String()
		if j, dup := seen[key]; dup {
			bad(fmt.Sprintf("backends[%d]", i), "%q is the same backend as backends[%d] (%s)", raw, j, key)
			continue
		}
		if c.Port != 0 && isSelf(u, c.Port) {
			// Each request would come back to the proxy and go round until
			// it timed out, holding a connection per turn.
			bad(fmt.Sprintf("backends[%d]", i), "%q is this proxy itself (port %d)", raw, c.Port)
			continue
		}
		seen[key] = i
		c.Backends = append(c.Backends, key)
	}

	c.AdminToken = f.AdminToken
	if strings.ContainsFunc(f.AdminToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		// HTTP trims header values, so such a token could never match.
		bad("admin_token", "must not contain spaces or control characters")
	}
	if host, port, err := net.SplitHostPort(f.AdminAddr); err != nil {
		bad("admin_addr", "must be host:port such as %q, got %q", "127.0.0.1:8081", f.AdminAddr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("admin_addr", "port must be between 1 and 65535, got %q", port)
	} else {
		c.AdminAddr = f.AdminAddr
		if n == c.Port {
			// The proxy listens on every interface, this one included.
			bad("admin_addr", "port %d is also the proxy's port", n)
		}
		if !isLoopback(host) && c.AdminToken == "" {
			// Issue 6, "Safe by default": the admin API can remove every
			// backend, so it is open without a token only to this machine.
			bad("admin_addr", "%q is reachable from other machines, so an admin token is required: set admin_token or %s, or use 127.0.0.1", f.AdminAddr, tokenEnv)
		}
	}

	c.RequestTimeout = positive("request_timeout", f.RequestTimeout)
	c.ShutdownTimeout = positive("shutdown_timeout", f.ShutdownTimeout)
	if d, err := time.ParseDuration(f.ShutdownDelay); err != nil || d < 0 {
		bad("shutdown_delay", "must be a duration of zero or more such as %q, got %q", "5s", f.ShutdownDelay)
	} else {
		c.ShutdownDelay = d
	}

	if c.HealthCheckFrequency > 0 && c.HealthCheckFrequency < 10*time.Millisecond {
		bad("health_check_frequency", "must be at least 10ms, got %q", f.HealthCheckFrequency)
	}
	if f.HealthCheckTimeout == "" {
		// Not set: 2s, unless the file asks for checks more often than that,
		// as the original program's files may ("health_check_frequency":
		// "1s"); such a file must still load.
		c.HealthCheckTimeout = min(2*time.Second, c.HealthCheckFrequency/2)
	} else {
		c.HealthCheckTimeout = positive("health_check_timeout", f.HealthCheckTimeout)
	}
	if c.HealthCheckTimeout > 0 && c.HealthCheckFrequency > 0 && c.HealthCheckTimeout >= c.HealthCheckFrequency {
		// Otherwise one round of probes could still run when the next is due.
		bad("health_check_timeout", "must be less than health_check_frequency (%s), got %s", c.HealthCheckFrequency, c.HealthCheckTimeout)
	}
	if _, err := health.ParsePath(f.HealthCheckPath); err != nil {
		bad("health_check_path", "must be a path starting with \"/\", got %q", f.HealthCheckPath)
	} else {
		c.HealthCheckPath = f.HealthCheckPath
	}
	c.HealthyThreshold = atLeast("healthy_threshold", f.HealthyThreshold, 1)
	c.UnhealthyThreshold = atLeast("unhealthy_threshold", f.UnhealthyThreshold, 1)

	for i, s := range f.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP address or a CIDR prefix such as %q, got %q", "10.0.0.0/8", s)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}

	c.ReadHeaderTimeout = positive("read_header_timeout", f.ReadHeaderTimeout)
	c.IdleTimeout = positive("idle_timeout", f.IdleTimeout)
	// Below a few KiB, ordinary browsers' cookies and headers would be refused.
	c.MaxHeaderBytes = atLeast("max_header_bytes", f.MaxHeaderBytes, 4096)
	c.DialTimeout = positive("dial_timeout", f.DialTimeout)
	c.BackendIdleTimeout = positive("backend_idle_timeout", f.BackendIdleTimeout)
	c.MaxIdleConnsPerBackend = atLeast("max_idle_conns_per_backend", f.MaxIdleConnsPerBackend, 1)

	c.Metrics = f.Metrics
	if strings.TrimSpace(f.AccessLog) == "" {
		bad("access_log", "must be %q, %q or a file path, got %q", "off", "stdout", f.AccessLog)
	} else {
		c.AccessLog = f.AccessLog
	}

	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// isSelf reports whether u points at the proxy's own port on this machine.
func isSelf(u *url.URL, port int) bool {
	p := u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p != strconv.Itoa(port) {
		return false
	}
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	return isLoopback(host) || (err == nil && a.IsUnspecified())
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// parsePrefix accepts a CIDR prefix or a bare address, which stands for
// itself alone. A prefix with host bits set ("10.1.2.3/8") is taken as the
// network it names.
//
// The proxy sees an IPv4 peer as an IPv4 address, even on a dual-stack
// listener, so an IPv4-mapped IPv6 entry (::ffff:10.0.0.1, ::ffff:0:0/96 and
// longer) is turned into the IPv4 entry it means; one that spans more than
// the mapped range could never match as written and is refused.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errors.New("an IPv4-mapped prefix must be /96 or longer")
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		// A zone names an interface on this machine; it cannot match a peer
		// address as the proxy sees it.
		return netip.Prefix{}, errors.New("zone not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// file returns c as config.json would write it: loading that file gives c
// back.
func (c Config) file() configFile {
	port := c.Port
	f := configFile{
		Port:                   &port,
		Strategy:               string(c.Strategy),
		HealthCheckFrequency:   c.HealthCheckFrequency.String(),
		Backends:               c.Backends,
		AdminAddr:              c.AdminAddr,
		AdminToken:             c.AdminToken,
		RequestTimeout:         c.RequestTimeout.String(),
		ShutdownTimeout:        c.ShutdownTimeout.String(),
		ShutdownDelay:          c.ShutdownDelay.String(),
		HealthCheckTimeout:     c.HealthCheckTimeout.String(),
		HealthCheckPath:        c.HealthCheckPath,
		HealthyThreshold:       c.HealthyThreshold,
		UnhealthyThreshold:     c.UnhealthyThreshold,
		ReadHeaderTimeout:      c.ReadHeaderTimeout.String(),
		IdleTimeout:            c.IdleTimeout.String(),
		MaxHeaderBytes:         c.MaxHeaderBytes,
		DialTimeout:            c.DialTimeout.String(),
		BackendIdleTimeout:     c.BackendIdleTimeout.String(),
		MaxIdleConnsPerBackend: c.MaxIdleConnsPerBackend,
		Metrics:                c.Metrics,
		AccessLog:              c.AccessLog,
	}
	for _, p := range c.TrustedProxies {
		f.TrustedProxies = append(f.TrustedProxies, p.String())
	}
	return f
}

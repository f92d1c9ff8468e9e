package main

import (
	"crypto/x509"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
	"github.com/switchyard-proxy/switchyard/cmd/internal/strictjson"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Config is the proxy's configuration, checked and parsed. The first four
// fields mean what they meant to the program this one replaces, so that a
// config.json written for it works unchanged.
type Config struct {
	Port                 int           // the proxy listens on ":Port"
	Strategy             pool.Strategy // how a backend is chosen
	HealthCheckFrequency time.Duration // time between health-check rounds
	Backends             []pool.Spec   // initial backends, normalised by pool.ParseURL; nil if none

	// Sources are the backend entries that are discovery sources (DNS);
	// their backends come from lookups, through DNSResolver every DNSRefresh.
	Sources     []discovery.Source
	DNSResolver string // host:port; empty: the system's resolver
	DNSRefresh  time.Duration

	AdminAddr  string // host:port of the admin API
	AdminToken string // required on admin calls when not empty

	RequestTimeout  time.Duration // limit on one proxied request
	ShutdownTimeout time.Duration // how long in-flight requests get to finish on shutdown
	ShutdownDelay   time.Duration // time /healthz answers 503 before the listeners close

	HealthCheckTimeout time.Duration // limit on one probe; less than HealthCheckFrequency
	HealthCheckPath    string        // path probed on every backend
	HealthCheckGRPC    bool          // health_check_mode "grpc": the gRPC health protocol instead of a GET
	HealthCheckService string        // the gRPC service checked; empty: the server as a whole
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
	Pprof     bool   // serve Go's profiler on the admin API's /debug/pprof/
	AccessLog string // "off", "stdout" or a file path
	StateFile string // where the running backend set is kept across restarts; empty: nowhere

	// Balancing and passive health.
	HashKey                  proxy.HashKey       // with the hash strategy; zero otherwise
	StickyCookie             string              // the sticky cookie's name; empty when sticky is off
	StickySecret             string              // its HMAC key
	SlowStart                time.Duration       // 0: off
	PassiveHealth            *pool.PassiveHealth // nil: off
	HealthCheckDownFrequency time.Duration       // time between checks of down backends
	WhenAllDown              pool.WhenAllDown

	// Protecting clients' and backends' resources.
	SendTimeout           time.Duration // a client that reads nothing for this long is cut off
	ClientBodyTimeout     time.Duration // a client that sends nothing of its body for this long is cut off
	MaxConnections        int           // client connections at once; 0: no limit
	MaxRequestsPerBackend int           // requests in flight per backend; 0: no limit
	MaxQueue              int           // requests waiting for a backend slot
	QueueTimeout          time.Duration // how long one may wait

	// Protocols.
	TLS           *TLSConfig     // nil: no TLS port
	H2C           bool           // the plain port accepts HTTP/2 with prior knowledge too
	BackendCAFile string         // where BackendCAs came from; empty: nowhere
	BackendCAs    *x509.CertPool // verify https backends; nil: the system's roots
}

// TLSConfig is "tls", checked: the certificates are loaded, so that
// applying a checked config cannot fail half-way.
type TLSConfig struct {
	Port         int
	Certificates []certs.Entry
	Set          *certs.Set // Certificates, loaded
	MinVersion   uint16     // tls.VersionTLS12 or tls.VersionTLS13
	RedirectHTTP bool       // the plain port answers 308 to https
}

// configFile is config.json as written. Durations and addresses stay text
// here and are parsed in check, so that a bad value is reported with its
// field's name, next to every other problem in the file, rather than as the
// decoder's first complaint.
type configFile struct {
	// Port is a pointer so that a missing port can be told from "port": 0:
	// the program this one replaces started on a random port when it was
	// missing, and that mistake deserves its own message.
	Port                 *int   `json:"port"`
	Strategy             string `json:"strategy"`
	HealthCheckFrequency string `json:"health_check_frequency"`
	// Backends are URL strings, or objects with a url and a weight: each is
	// parsed in check, so that a bad one is named by its index.
	Backends []json.RawMessage `json:"backends"`

	AdminAddr  string `json:"admin_addr"`
	AdminToken string `json:"admin_token"`

	RequestTimeout  string `json:"request_timeout"`
	ShutdownTimeout string `json:"shutdown_timeout"`
	ShutdownDelay   string `json:"shutdown_delay"`

	HealthCheckTimeout string `json:"health_check_timeout"`
	HealthCheckPath    string `json:"health_check_path"`
	HealthCheckMode    string `json:"health_check_mode"`
	HealthCheckService string `json:"health_check_grpc_service"`
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
	Pprof     bool   `json:"pprof"`
	AccessLog string `json:"access_log"`
	StateFile string `json:"state_file"`

	HashKey                  string          `json:"hash_key"`
	Sticky                   json.RawMessage `json:"sticky"`         // see stickyFile
	SlowStart                string          `json:"slow_start"`     //
	PassiveHealth            json.RawMessage `json:"passive_health"` // see passiveFile
	HealthCheckDownFrequency string          `json:"health_check_down_frequency"`
	WhenAllDown              string          `json:"when_all_down"`

	DNSResolver string `json:"dns_resolver"`
	DNSRefresh  string `json:"dns_refresh"`

	SendTimeout           string `json:"send_timeout"`
	ClientBodyTimeout     string `json:"client_body_timeout"`
	MaxConnections        int    `json:"max_connections"`
	MaxRequestsPerBackend int    `json:"max_requests_per_backend"`
	MaxQueue              int    `json:"max_queue"`
	QueueTimeout          string `json:"queue_timeout"`

	TLS           json.RawMessage `json:"tls"` // see tlsFile
	H2C           bool            `json:"h2c"`
	BackendCAFile string          `json:"backend_ca_file"`
}

// tlsFile is "tls".
type tlsFile struct {
	Port         *int          `json:"port"` // a pointer, to tell a missing port from 0
	Certificates []certs.Entry `json:"certificates"`
	MinVersion   string        `json:"min_version"`
	RedirectHTTP bool          `json:"redirect_http"`
}

// backendFile is a backend entry written as an object.
type backendFile struct {
	URL    string `json:"url"`
	Weight *int   `json:"weight"` // a pointer, to tell a missing weight (1) from 0 (an error)
}

// stickyFile is "sticky". Its secret may come from the environment instead.
type stickyFile struct {
	Cookie string `json:"cookie"`
	Secret string `json:"secret"`
}

// passiveFile is "passive_health"; the fields left out take the values
// below.
type passiveFile struct {
	ConsecutiveFailures int    `json:"consecutive_failures"`
	FailureStatuses     []int  `json:"failure_statuses"`
	EjectionTime        string `json:"ejection_time"`
	MaxEjectedPercent   int    `json:"max_ejected_percent"`
}

func defaultPassive() passiveFile {
	return passiveFile{ConsecutiveFailures: 5, FailureStatuses: []int{502, 503, 504}, EjectionTime: "30s", MaxEjectedPercent: 50}
}

// defaultConfig returns the values of every field the file leaves out. The
// README's table of fields must agree with it.
func defaultConfig() configFile {
	return configFile{
		Strategy:                 string(pool.RoundRobin),
		HealthCheckFrequency:     "10s",
		AdminAddr:                "127.0.0.1:8081",
		RequestTimeout:           "30s",
		ShutdownTimeout:          "15s",
		ShutdownDelay:            "0s",
		HealthCheckTimeout:       "", // 2s, or half the frequency if that is less: see check
		HealthCheckPath:          "/",
		HealthCheckMode:          "http",
		HealthyThreshold:         1,
		UnhealthyThreshold:       1,
		ReadHeaderTimeout:        "10s",
		IdleTimeout:              "120s",
		MaxHeaderBytes:           64 << 10,
		DialTimeout:              "3s",
		BackendIdleTimeout:       "30s",
		MaxIdleConnsPerBackend:   256,
		Metrics:                  true,
		Pprof:                    true,
		AccessLog:                "off",
		SlowStart:                "0s",
		HealthCheckDownFrequency: "", // 2s, or health_check_frequency if that is less: see check
		WhenAllDown:              string(pool.Fail),
		SendTimeout:              "60s",
		ClientBodyTimeout:        "60s",
		MaxQueue:                 pool.DefaultMaxQueue,
		QueueTimeout:             "5s",
	}
}

// tokenEnv, when set and not empty, replaces admin_token, so that the secret
// need not be written in a file; stickySecretEnv does the same for
// sticky.secret.
const (
	tokenEnv        = "PROXY_ADMIN_TOKEN"
	stickySecretEnv = "PROXY_STICKY_SECRET"
)

// loadConfig decodes data onto the defaults, lets the environment (read with
// getenv) override the admin token, and checks every field. Its error lists
// every problem found, one per line, each starting with the field's name.
func loadConfig(data []byte, getenv func(string) string) (Config, error) {
	f := defaultConfig()
	if err := strictjson.Decode(data, &f); err != nil {
		// The rest of the file cannot be trusted once the JSON is bad, so this
		// is the one error reported alone.
		return Config{}, err
	}
	if tok := getenv(tokenEnv); tok != "" {
		f.AdminToken = tok
	}
	return f.check(getenv)
}

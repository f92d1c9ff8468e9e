package main

import (
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/discovery"
	"github.com/switchyard-proxy/switchyard/proxy"
)

func noEnv(string) string { return "" }

// The file shipped at the root is the original program's, unchanged: it must
// load, with every new field at its default.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile("../../config.json")
	require.NoError(t, err)
	cfg, err := loadConfig(data, noEnv)
	require.NoError(t, err)
	assert.Equal(t, Config{
		Port:                     8080,
		Strategy:                 pool.RoundRobin,
		HealthCheckFrequency:     15 * time.Second,
		Backends:                 pool.URLs("http://localhost:8082", "http://localhost:8083", "http://localhost:8084"),
		AdminAddr:                "127.0.0.1:8081",
		RequestTimeout:           30 * time.Second,
		ShutdownTimeout:          15 * time.Second,
		ShutdownDelay:            0,
		HealthCheckTimeout:       2 * time.Second,
		HealthCheckPath:          "/",
		HealthyThreshold:         1,
		UnhealthyThreshold:       1,
		ReadHeaderTimeout:        10 * time.Second,
		IdleTimeout:              120 * time.Second,
		MaxHeaderBytes:           65536,
		DialTimeout:              3 * time.Second,
		BackendIdleTimeout:       30 * time.Second,
		MaxIdleConnsPerBackend:   256,
		Metrics:                  true,
		Pprof:                    true,
		AccessLog:                "off",
		DNSRefresh:               30 * time.Second,
		SlowStart:                0,
		HealthCheckDownFrequency: 2 * time.Second,
		WhenAllDown:              pool.Fail,
		SendTimeout:              60 * time.Second,
		ClientBodyTimeout:        60 * time.Second,
		MaxQueue:                 1024,
		QueueTimeout:             5 * time.Second,
	}, withWeights(cfg))
}

// withWeights gives every backend of cfg without a weight the weight 1
// that the pool would give it, so that a literal can use pool.URLs.
func withWeights(cfg Config) Config {
	for i := range cfg.Backends {
		if cfg.Backends[i].Weight == 1 {
			cfg.Backends[i].Weight = 0
		}
	}
	return cfg
}

func TestEveryFieldIsRead(t *testing.T) {
	cfg, err := loadConfig([]byte(`{
		"port": 9000,
		"strategy": "hash",
		"health_check_frequency": "1m",
		"backends": ["HTTP://Example.COM:80/", {"url": "https://10.0.0.1:8443/app", "weight": 3},
			{"discover": "a", "name": "api.default.svc.cluster.local", "port": 8080},
			{"discover": "srv", "name": "_http._tcp.api.service.consul", "scheme": "https"}],
		"dns_resolver": "127.0.0.1:8600",
		"dns_refresh": "10s",
		"admin_addr": "0.0.0.0:9001",
		"admin_token": "s3cret",
		"request_timeout": "5s",
		"shutdown_timeout": "20s",
		"shutdown_delay": "3s",
		"health_check_timeout": "500ms",
		"health_check_path": "/healthz?full=1",
		"health_check_mode": "grpc",
		"health_check_grpc_service": "billing.v1.Billing",
		"healthy_threshold": 2,
		"unhealthy_threshold": 3,
		"trusted_proxies": ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "10.1.2.3/16"],
		"read_header_timeout": "2s",
		"idle_timeout": "90s",
		"max_header_bytes": 8192,
		"dial_timeout": "1s",
		"backend_idle_timeout": "15s",
		"max_idle_conns_per_backend": 32,
		"metrics": false,
		"pprof": false,
		"access_log": "/var/log/switchyard/access.log",
		"state_file": "/var/lib/switchyard/state.json",
		"hash_key": "header:x-user",
		"sticky": {"cookie": "route", "secret": "k"},
		"slow_start": "30s",
		"passive_health": {"consecutive_failures": 3, "ejection_time": "10s"},
		"health_check_down_frequency": "5s",
		"when_all_down": "try_all",
		"send_timeout": "30s",
		"client_body_timeout": "20s",
		"max_connections": 10000,
		"max_requests_per_backend": 100,
		"max_queue": 500,
		"queue_timeout": "2s"
	}`), noEnv)
	require.NoError(t, err)
	assert.Equal(t, Config{
		Port:                 9000,
		Strategy:             pool.Hash,
		HealthCheckFrequency: time.Minute,
		// Normalised, as the pool will hold them.
		Backends: []pool.Spec{{URL: "http://example.com", Weight: 1}, {URL: "https://10.0.0.1:8443/app", Weight: 3}},
		Sources: []discovery.Source{
			{Discover: discovery.KindA, Name: "api.default.svc.cluster.local", Port: 8080, Scheme: "http"},
			{Discover: discovery.KindSRV, Name: "_http._tcp.api.service.consul", Scheme: "https"},
		},
		DNSResolver:        "127.0.0.1:8600",
		DNSRefresh:         10 * time.Second,
		AdminAddr:          "0.0.0.0:9001",
		AdminToken:         "s3cret",
		RequestTimeout:     5 * time.Second,
		ShutdownTimeout:    20 * time.Second,
		ShutdownDelay:      3 * time.Second,
		HealthCheckTimeout: 500 * time.Millisecond,
		HealthCheckPath:    "/healthz?full=1",
		HealthCheckGRPC:    true,
		HealthCheckService: "billing.v1.Billing",
		HealthyThreshold:   2,
		UnhealthyThreshold: 3,
		TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("fd00::/8"),
			netip.MustParsePrefix("10.1.0.0/16"),
		},
		ReadHeaderTimeout:      2 * time.Second,
		IdleTimeout:            90 * time.Second,
		MaxHeaderBytes:         8192,
		DialTimeout:            time.Second,
		BackendIdleTimeout:     15 * time.Second,
		MaxIdleConnsPerBackend: 32,
		Metrics:                false,
		Pprof:                  false,
		AccessLog:              "/var/log/switchyard/access.log",
		StateFile:              "/var/lib/switchyard/state.json",
		HashKey:                proxy.HashKey{Kind: "header", Name: "X-User"},
		StickyCookie:           "route",
		StickySecret:           "k",
		SlowStart:              30 * time.Second,
		PassiveHealth: &pool.PassiveHealth{ConsecutiveFailures: 3, FailureStatuses: []int{502, 503, 504},
			EjectionTime: 10 * time.Second, MaxEjectedPercent: 50},
		HealthCheckDownFrequency: 5 * time.Second,
		WhenAllDown:              pool.TryAll,
		SendTimeout:              30 * time.Second,
		ClientBodyTimeout:        20 * time.Second,
		MaxConnections:           10000,
		MaxRequestsPerBackend:    100,
		MaxQueue:                 500,
		QueueTimeout:             2 * time.Second,
	}, cfg)
	assertRoundTrips(t, cfg)
}

func TestEmptyBackendListIsValid(t *testing.T) {
	for _, in := range []string{`{"port": 8080}`, `{"port": 8080, "backends": []}`, `{"port": 8080, "backends": null}`} {
		cfg, err := loadConfig([]byte(in), noEnv)
		require.NoError(t, err, in)
		assert.Empty(t, cfg.Backends, in)
	}
}

// PROXY_STICKY_SECRET gives sticky sessions their secret, so that it need
// not be written in the file, and wins over one that is.
func TestStickySecretFromEnvironment(t *testing.T) {
	env := func(k string) string {
		if k == "PROXY_STICKY_SECRET" {
			return "from-env"
		}
		return ""
	}
	cfg, err := loadConfig([]byte(`{"port": 8080, "sticky": {}}`), env)
	require.NoError(t, err)
	assert.Equal(t, "sy_route", cfg.StickyCookie, "the default cookie name")
	assert.Equal(t, "from-env", cfg.StickySecret)
	cfg, err = loadConfig([]byte(`{"port": 8080, "sticky": {"secret": "file"}}`), env)
	require.NoError(t, err)
	assert.Equal(t, "from-env", cfg.StickySecret)
}

func TestTokenFromEnvironment(t *testing.T) {
	in := []byte(`{"port": 8080, "admin_addr": ":8081", "admin_token": "from-file"}`)
	env := func(k string) string {
		if k == "PROXY_ADMIN_TOKEN" {
			return "from-env"
		}
		return ""
	}
	cfg, err := loadConfig(in, env)
	require.NoError(t, err)
	assert.Equal(t, "from-env", cfg.AdminToken, "the environment wins")

	cfg, err = loadConfig(in, noEnv)
	require.NoError(t, err)
	assert.Equal(t, "from-file", cfg.AdminToken)

	// The environment alone is enough to open the admin API to the network.
	_, err = loadConfig([]byte(`{"port": 8080, "admin_addr": "0.0.0.0:8081"}`), env)
	assert.NoError(t, err)
	// And loopback needs no token at all.
	for _, addr := range []string{"127.0.0.1:8081", "localhost:8081", "[::1]:8081", "127.0.0.2:8081"} {
		_, err = loadConfig([]byte(`{"port": 8080, "admin_addr": "`+addr+`"}`), noEnv)
		assert.NoError(t, err, addr)
	}
}

// badConfig is a config file that must be refused, with the lines its error
// must contain, one per problem. TestRunRejectsBadConfig runs the same table
// through run.
type badConfig struct {
	name  string
	file  string
	wants []string
}

var badConfigs = []badConfig{
	// The original program's mistakes, each one line naming its field.
	{"zero frequency", `{"port": 8080, "health_check_frequency": "0s"}`,
		[]string{`health_check_frequency: must be a positive duration such as "10s", got "0s"`}},
	{"unknown strategy", `{"port": 8080, "strategy": "fastest"}`,
		[]string{`strategy: must be "round-robin", "least-connections", "random-two" or "hash", got "fastest"`}},
	{"missing port", `{"strategy": "round-robin"}`,
		[]string{`port: missing`}},
	{"backend without scheme", `{"port": 8080, "backends": ["http://localhost:8083", "localhost:8082"]}`,
		[]string{`backends[1]: invalid backend URL "localhost:8082": scheme must be http, https or h2c`}},

	{"port zero", `{"port": 0}`, []string{`port: must be between 1 and 65535, got 0`}},
	{"health check mode", `{"port": 8080, "health_check_mode": "tcp"}`, []string{`health_check_mode: must be "http" or "grpc", got "tcp"`}},
	{"gRPC service without gRPC", `{"port": 8080, "health_check_grpc_service": "a.B"}`,
		[]string{`health_check_grpc_service: is for health_check_mode "grpc"; the mode is "http"`}},
	{"port too big", `{"port": 65536}`, []string{`port: must be between 1 and 65535, got 65536`}},
	{"port as string", `{"port": "8080"}`, []string{`port: must be a whole number, got string`}},
	{"port as fraction", `{"port": 80.5}`, []string{`port: must be a whole number, got number 80.5`}},
	{"unknown field", `{"port": 8080, "helth_check_frequency": "5s"}`,
		[]string{`helth_check_frequency: unknown field`}},
	{"trailing data", "{\"port\": 8080}\n{\"port\": 8081}", []string{`unexpected data after the JSON object at line 2, column 1`}},
	{"trailing brace", `{"port": 8080}}`, []string{`unexpected data after the JSON object`}},
	{"syntax error", "{\n  \"port\": 8080,\n}", []string{`invalid JSON at line 3`}},
	{"truncated", `{"port": 8080`, []string{`the JSON ends too early`}},
	{"empty file", ``, []string{`the file is empty`}},
	{"not an object", `["port", 8080]`, []string{`the file must hold one JSON object, got array`}},
	{"bad duration", `{"port": 8080, "request_timeout": "30"}`,
		[]string{`request_timeout: must be a positive duration such as "10s", got "30"`}},
	{"duration as number", `{"port": 8080, "request_timeout": 30}`,
		[]string{`request_timeout: must be a string, got number`}},
	{"negative delay", `{"port": 8080, "shutdown_delay": "-1s"}`,
		[]string{`shutdown_delay: must be a duration of zero or more`}},
	{"bad CIDR", `{"port": 8080, "trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33", "proxy.example.com"]}`,
		[]string{`trusted_proxies[1]: must be an IP address or a CIDR prefix such as "10.0.0.0/8", got "10.0.0.0/33"`,
			`trusted_proxies[2]: must be an IP address or a CIDR prefix`}},
	{"admin on the network without token", `{"port": 8080, "admin_addr": "0.0.0.0:8081"}`,
		[]string{`admin_addr: "0.0.0.0:8081" is reachable from other machines, so an admin token is required`}},
	{"admin on every interface without token", `{"port": 8080, "admin_addr": ":8081"}`,
		[]string{`admin_addr: ":8081" is reachable from other machines`}},
	{"admin without port", `{"port": 8080, "admin_addr": "127.0.0.1"}`,
		[]string{`admin_addr: must be host:port such as "127.0.0.1:8081", got "127.0.0.1"`}},
	{"admin bad port", `{"port": 8080, "admin_addr": "127.0.0.1:http"}`,
		[]string{`admin_addr: port must be between 1 and 65535, got "http"`}},
	{"admin on the proxy's port", `{"port": 8080, "admin_addr": "127.0.0.1:8080"}`,
		[]string{`admin_addr: port 8080 is also the proxy's port`}},
	{"token with a space", `{"port": 8080, "admin_token": "a b"}`,
		[]string{`admin_token: must not contain spaces or control characters`}},
	{"duplicate backends", `{"port": 8080, "backends": ["http://localhost:8082", "http://LOCALHOST:8082/"]}`,
		[]string{`backends[1]: "http://LOCALHOST:8082/" is the same backend as backends[0] (http://localhost:8082)`}},
	{"probe timeout not below frequency", `{"port": 8080, "health_check_frequency": "2s", "health_check_timeout": "2s"}`,
		[]string{`health_check_timeout: must be less than health_check_frequency (2s), got 2s`}},
	{"relative health path", `{"port": 8080, "health_check_path": "health"}`,
		[]string{`health_check_path: must be a path starting with "/", got "health"`}},
	{"the proxy as its own backend", `{"port": 8080, "backends": ["http://localhost:8080", "http://127.0.0.1:8080/x", "http://localhost:8082"]}`,
		[]string{`backends[0]: "http://localhost:8080" is this proxy itself (port 8080)`,
			`backends[1]: "http://127.0.0.1:8080/x" is this proxy itself (port 8080)`}},
	{"mapped prefix too wide", `{"port": 8080, "trusted_proxies": ["::ffff:0:0/64"]}`,
		[]string{`trusted_proxies[0]: must be an IP address or a CIDR prefix`}},
	{"health path with a fragment", `{"port": 8080, "health_check_path": "/healthz#x"}`,
		[]string{`health_check_path: must be a path starting with "/", got "/healthz#x"`}},
	{"health path naming a host", `{"port": 8080, "health_check_path": "//elsewhere/x"}`,
		[]string{`health_check_path: must be a path starting with "/", got "//elsewhere/x"`}},
	{"absurdly frequent checks", `{"port": 8080, "health_check_frequency": "1ms"}`,
		[]string{`health_check_frequency: must be at least 10ms, got "1ms"`}},
	{"access log nowhere", `{"port": 8080, "access_log": " "}`,
		[]string{`access_log: must be "off", "stdout" or a file path, got " "`}},
	{"thresholds", `{"port": 8080, "healthy_threshold": 0, "unhealthy_threshold": -1}`,
		[]string{`healthy_threshold: must be at least 1, got 0`, `unhealthy_threshold: must be at least 1, got -1`}},
	{"tiny header limit", `{"port": 8080, "max_header_bytes": 1024}`,
		[]string{`max_header_bytes: must be at least 4096, got 1024`}},
	{"no idle connections", `{"port": 8080, "max_idle_conns_per_backend": 0}`,
		[]string{`max_idle_conns_per_backend: must be at least 1, got 0`}},
	{"zero timeouts", `{"port": 8080, "read_header_timeout": "0s", "idle_timeout": "0s", "dial_timeout": "0s",
		"backend_idle_timeout": "0s", "shutdown_timeout": "0s"}`,
		[]string{`read_header_timeout: must be a positive duration`, `idle_timeout: must be a positive duration`,
			`dial_timeout: must be a positive duration`, `backend_idle_timeout: must be a positive duration`,
			`shutdown_timeout: must be a positive duration`}},

	// Balancing, passive health and limits.
	{"weight zero", `{"port": 8080, "backends": [{"url": "http://a:1", "weight": 0}]}`,
		[]string{`backends[0]: weight must be a whole number from 1 to 1000, got 0`}},
	{"weight too big", `{"port": 8080, "backends": ["http://b:1", {"url": "http://a:1", "weight": 1001}]}`,
		[]string{`backends[1]: weight must be a whole number from 1 to 1000, got 1001`}},
	{"backend object unknown field", `{"port": 8080, "backends": [{"url": "http://a:1", "wieght": 2}]}`,
		[]string{`backends[0]: wieght: unknown field`}},
	{"backend object without url", `{"port": 8080, "backends": [{"weight": 2}]}`,
		[]string{`backends[0]: url: missing`}},
	{"backend as a number", `{"port": 8080, "backends": [8082]}`,
		[]string{`backends[0]: must be a URL string or an object`}},
	{"bad hash key", `{"port": 8080, "strategy": "hash", "hash_key": "header:"}`,
		[]string{`hash_key: must be "client_ip", "uri", "header:NAME" or "cookie:NAME", got "header:"`}},
	{"sticky without a secret", `{"port": 8080, "sticky": {"cookie": "route"}}`,
		[]string{`sticky.secret: missing`}},
	{"sticky with a bad cookie name", `{"port": 8080, "sticky": {"cookie": "a b", "secret": "k"}}`,
		[]string{`sticky.cookie: must be a cookie name`}},
	{"sticky unknown field", `{"port": 8080, "sticky": {"name": "x", "secret": "k"}}`,
		[]string{`sticky: name: unknown field`}},
	{"negative slow start", `{"port": 8080, "slow_start": "-1s"}`,
		[]string{`slow_start: must be a duration of zero or more`}},
	{"passive health out of range", `{"port": 8080, "passive_health": {"consecutive_failures": 0, "failure_statuses": [99], "ejection_time": "0s", "max_ejected_percent": 101}}`,
		[]string{`passive_health.consecutive_failures: must be at least 1, got 0`,
			`passive_health.failure_statuses[0]: must be an HTTP status from 100 to 599, got 99`,
			`passive_health.ejection_time: must be a positive duration`,
			`passive_health.max_ejected_percent: must be from 0 to 100, got 101`}},
	{"when all down", `{"port": 8080, "when_all_down": "panic"}`,
		[]string{`when_all_down: must be "fail" or "try_all", got "panic"`}},
	{"down checks rarer than checks", `{"port": 8080, "health_check_frequency": "5s", "health_check_down_frequency": "10s"}`,
		[]string{`health_check_down_frequency: must be at most health_check_frequency (5s), got 10s`}},
	{"limits", `{"port": 8080, "max_connections": -1, "max_requests_per_backend": -2, "max_queue": 0, "queue_timeout": "0s", "send_timeout": "0s", "client_body_timeout": "x"}`,
		[]string{`max_connections: must be at least 0, got -1`, `max_requests_per_backend: must be at least 0, got -2`,
			`max_queue: must be at least 1, got 0`, `queue_timeout: must be a positive duration`,
			`send_timeout: must be a positive duration`, `client_body_timeout: must be a positive duration`}},

	{"bad discovery source", `{"port": 8080, "backends": [{"discover": "mdns", "name": "x"}, {"discover": "a", "name": "api", "port": 70000}]}`,
		[]string{`backends[0]: `, `backends[1]: `}},
	{"dns settings", `{"port": 8080, "dns_resolver": "nowhere", "dns_refresh": "500ms"}`,
		[]string{`dns_resolver: must be host:port`, `dns_refresh: must be a duration of at least 1s`}},

	// Several problems are reported together, one line each.
	{"several at once", `{"strategy": "random", "health_check_frequency": "0s", "backends": ["localhost:8082"]}`,
		[]string{`port: missing`, `strategy: must be`, `health_check_frequency: must be a positive duration`, `backends[0]: invalid backend URL`}},
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig([]byte(tc.file), noEnv)
			require.Error(t, err)
			lines := strings.Split(err.Error(), "\n")
			assert.Len(t, lines, len(tc.wants), "one line per problem:\n%v", err)
			for _, want := range tc.wants {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// assertRoundTrips checks that cfg written back as config.json loads as cfg.
func assertRoundTrips(t *testing.T, cfg Config) {
	t.Helper()
	data, err := json.Marshal(cfg.file())
	require.NoError(t, err)
	again, err := loadConfig(data, noEnv)
	require.NoError(t, err, "%s", data)
	// What was loaded from files is compared by what it holds.
	assert.True(t, cfg.BackendCAs.Equal(again.BackendCAs), "backend CAs")
	cfg.BackendCAs, again.BackendCAs = nil, nil
	if cfg.TLS != nil && again.TLS != nil {
		assert.Equal(t, cfg.TLS.Set.Certificates(), again.TLS.Set.Certificates())
		want, got := *cfg.TLS, *again.TLS
		want.Set, got.Set = nil, nil
		cfg.TLS, again.TLS = &want, &got
	}
	assert.Equal(t, cfg, again, "%s", data)
}

// FuzzLoadConfig checks that no input makes loadConfig panic, and that what
// it accepts is valid and survives being written back.
func FuzzLoadConfig(f *testing.F) {
	data, err := os.ReadFile("../../config.json")
	require.NoError(f, err)
	f.Add(data)
	f.Add([]byte(`{"port": 1, "backends": ["http://[::1]:80/a%2Fb"], "trusted_proxies": ["::ffff:10.0.0.1"]}`))
	f.Add([]byte(`{"port": 65535, "admin_addr": "[::1]:1", "health_check_frequency": "1h2m3.5s", "shutdown_delay": "0"}`))
	for _, tc := range badConfigs {
		f.Add([]byte(tc.file))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := loadConfig(data, noEnv)
		if err != nil {
			assert.Equal(t, Config{}, cfg)
			for line := range strings.SplitSeq(err.Error(), "\n") {
				assert.NotEmpty(t, line)
			}
			return
		}
		assert.True(t, cfg.Port >= 1 && cfg.Port <= 65535)
		assert.Positive(t, cfg.HealthCheckFrequency)
		assert.Less(t, cfg.HealthCheckTimeout, cfg.HealthCheckFrequency)
		assert.True(t, strings.HasPrefix(cfg.HealthCheckPath, "/"))
		_, err = pool.New(poolConfig(cfg, slog.New(slog.DiscardHandler)), cfg.Backends...)
		assert.NoError(t, err, "the pool accepts what the config accepted")
		assertRoundTrips(t, cfg)
	})
}

// A file of the original program's that checks health often must load as it
// is: without health_check_timeout of its own, the timeout shrinks to fit.
func TestFrequentChecksWithoutATimeout(t *testing.T) {
	cfg, err := loadConfig([]byte(`{"port": 8080, "health_check_frequency": "1s"}`), noEnv)
	require.NoError(t, err)
	assert.Equal(t, 500*time.Millisecond, cfg.HealthCheckTimeout)
	cfg, err = loadConfig([]byte(`{"port": 8080, "health_check_frequency": "1m"}`), noEnv)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, cfg.HealthCheckTimeout)
	assertRoundTrips(t, cfg)
}

// A peer on IPv4 is seen as an IPv4 address, so IPv4-mapped entries are
// taken as the IPv4 entries they mean.
func TestMappedTrustedProxies(t *testing.T) {
	cfg, err := loadConfig([]byte(`{"port": 8080, "trusted_proxies": ["::ffff:10.0.0.0/104", "::ffff:127.0.0.1"]}`), noEnv)
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}, cfg.TrustedProxies)
}

// file returns c as config.json would write it: loading that file gives c
// back.
func (c Config) file() configFile {
	port := c.Port
	f := configFile{
		Port:                     &port,
		Strategy:                 string(c.Strategy),
		HealthCheckFrequency:     c.HealthCheckFrequency.String(),
		AdminAddr:                c.AdminAddr,
		AdminToken:               c.AdminToken,
		RequestTimeout:           c.RequestTimeout.String(),
		ShutdownTimeout:          c.ShutdownTimeout.String(),
		ShutdownDelay:            c.ShutdownDelay.String(),
		HealthCheckTimeout:       c.HealthCheckTimeout.String(),
		HealthCheckPath:          c.HealthCheckPath,
		HealthCheckMode:          map[bool]string{false: "http", true: "grpc"}[c.HealthCheckGRPC],
		HealthCheckService:       c.HealthCheckService,
		HealthyThreshold:         c.HealthyThreshold,
		UnhealthyThreshold:       c.UnhealthyThreshold,
		ReadHeaderTimeout:        c.ReadHeaderTimeout.String(),
		IdleTimeout:              c.IdleTimeout.String(),
		MaxHeaderBytes:           c.MaxHeaderBytes,
		DialTimeout:              c.DialTimeout.String(),
		BackendIdleTimeout:       c.BackendIdleTimeout.String(),
		MaxIdleConnsPerBackend:   c.MaxIdleConnsPerBackend,
		Metrics:                  c.Metrics,
		Pprof:                    c.Pprof,
		AccessLog:                c.AccessLog,
		StateFile:                c.StateFile,
		SlowStart:                c.SlowStart.String(),
		HealthCheckDownFrequency: c.HealthCheckDownFrequency.String(),
		WhenAllDown:              string(c.WhenAllDown),
		SendTimeout:              c.SendTimeout.String(),
		ClientBodyTimeout:        c.ClientBodyTimeout.String(),
		MaxConnections:           c.MaxConnections,
		MaxRequestsPerBackend:    c.MaxRequestsPerBackend,
		MaxQueue:                 c.MaxQueue,
		QueueTimeout:             c.QueueTimeout.String(),
	}
	for _, b := range c.Backends {
		entry, _ := json.Marshal(backendFile{URL: b.URL, Weight: &b.Weight})
		f.Backends = append(f.Backends, entry)
	}
	for _, src := range c.Sources {
		e := discovery.Entry{Discover: string(src.Discover), Name: src.Name, Scheme: src.Scheme}
		if src.Discover == discovery.KindA {
			e.Port = &src.Port
		}
		entry, _ := json.Marshal(e)
		f.Backends = append(f.Backends, entry)
	}
	f.DNSResolver, f.DNSRefresh = c.DNSResolver, c.DNSRefresh.String()
	if c.HashKey.Kind != "" {
		f.HashKey = c.HashKey.String()
	}
	if c.StickyCookie != "" {
		f.Sticky, _ = json.Marshal(stickyFile{Cookie: c.StickyCookie, Secret: c.StickySecret})
	}
	if ph := c.PassiveHealth; ph != nil {
		f.PassiveHealth, _ = json.Marshal(passiveFile{ConsecutiveFailures: ph.ConsecutiveFailures,
			FailureStatuses: ph.FailureStatuses, EjectionTime: ph.EjectionTime.String(), MaxEjectedPercent: ph.MaxEjectedPercent})
	}
	for _, p := range c.TrustedProxies {
		f.TrustedProxies = append(f.TrustedProxies, p.String())
	}
	f.H2C, f.BackendCAFile = c.H2C, c.BackendCAFile
	if t := c.TLS; t != nil {
		version := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[t.MinVersion]
		f.TLS, _ = json.Marshal(tlsFile{Port: &t.Port, Certificates: t.Certificates, MinVersion: version, RedirectHTTP: t.RedirectHTTP})
	}
	return f
}

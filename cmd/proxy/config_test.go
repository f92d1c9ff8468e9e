package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
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
		Port:                   8080,
		Strategy:               pool.RoundRobin,
		HealthCheckFrequency:   15 * time.Second,
		Backends:               []string{"http://localhost:8082", "http://localhost:8083", "http://localhost:8084"},
		AdminAddr:              "127.0.0.1:8081",
		RequestTimeout:         30 * time.Second,
		ShutdownTimeout:        15 * time.Second,
		ShutdownDelay:          0,
		HealthCheckTimeout:     2 * time.Second,
		HealthCheckPath:        "/",
		HealthyThreshold:       1,
		UnhealthyThreshold:     1,
		ReadHeaderTimeout:      10 * time.Second,
		IdleTimeout:            120 * time.Second,
		MaxHeaderBytes:         65536,
		DialTimeout:            3 * time.Second,
		BackendIdleTimeout:     30 * time.Second,
		MaxIdleConnsPerBackend: 256,
		Metrics:                true,
		AccessLog:              "off",
	}, cfg)
}

func TestEveryFieldIsRead(t *testing.T) {
	cfg, err := loadConfig([]byte(`{
		"port": 9000,
		"strategy": "least-connections",
		"health_check_frequency": "1m",
		"backends": ["HTTP://Example.COM:80/", "https://10.0.0.1:8443/app"],
		"admin_addr": "0.0.0.0:9001",
		"admin_token": "s3cret",
		"request_timeout": "5s",
		"shutdown_timeout": "20s",
		"shutdown_delay": "3s",
		"health_check_timeout": "500ms",
		"health_check_path": "/healthz?full=1",
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
		"access_log": "/var/log/switchyard/access.log"
	}`), noEnv)
	require.NoError(t, err)
	assert.Equal(t, Config{
		Port:                 9000,
		Strategy:             pool.LeastConnections,
		HealthCheckFrequency: time.Minute,
		// Normalised, as the pool will hold them.
		Backends:           []string{"http://example.com", "https://10.0.0.1:8443/app"},
		AdminAddr:          "0.0.0.0:9001",
		AdminToken:         "s3cret",
		RequestTimeout:     5 * time.Second,
		ShutdownTimeout:    20 * time.Second,
		ShutdownDelay:      3 * time.Second,
		HealthCheckTimeout: 500 * time.Millisecond,
		HealthCheckPath:    "/healthz?full=1",
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
		AccessLog:              "/var/log/switchyard/access.log",
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
		[]string{`strategy: must be "round-robin" or "least-connections", got "fastest"`}},
	{"missing port", `{"strategy": "round-robin"}`,
		[]string{`port: missing`}},
	{"backend without scheme", `{"port": 8080, "backends": ["http://localhost:8083", "localhost:8082"]}`,
		[]string{`backends[1]: invalid backend URL "localhost:8082": scheme must be http or https`}},

	{"port zero", `{"port": 0}`, []string{`port: must be between 1 and 65535, got 0`}},
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
		_, err = pool.New(pool.Config{Strategy: cfg.Strategy}, cfg.Backends...)
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

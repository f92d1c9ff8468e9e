package discovery_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/discovery"
)

func TestDecodeSource(t *testing.T) {
	for _, tc := range []struct {
		json string
		want discovery.Source
	}{
		{`{"discover": "a", "name": "api.default.svc.cluster.local", "port": 8080, "scheme": "http"}`,
			discovery.Source{Discover: discovery.KindA, Name: "api.default.svc.cluster.local", Port: 8080, Scheme: "http"}},
		{`{"discover": "a", "name": "API.Test.", "port": 443, "scheme": "https"}`,
			discovery.Source{Discover: discovery.KindA, Name: "api.test", Port: 443, Scheme: "https"}},
		{`{"discover": "srv", "name": "_http._tcp.api.service.consul"}`,
			discovery.Source{Discover: discovery.KindSRV, Name: "_http._tcp.api.service.consul", Scheme: "http"}},
		{`{"discover": "srv", "name": "_grpc._tcp.api.service.consul", "scheme": "h2c"}`,
			discovery.Source{Discover: discovery.KindSRV, Name: "_grpc._tcp.api.service.consul", Scheme: "h2c"}},
	} {
		got, err := discovery.DecodeSource([]byte(tc.json))
		if assert.NoError(t, err, tc.json) {
			assert.Equal(t, tc.want, got, tc.json)
		}
	}
}

// Every problem of an entry is reported at once, on one line, each naming
// its field, so that the config loader only prefixes "backends[i]: ".
func TestDecodeSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string
	}{
		{`{"discover": "aaaa", "name": "api.test", "port": 80}`,
			`discovery: invalid source "api.test": discover: must be "a" or "srv", got "aaaa"`},
		{`{"name": "api.test", "port": 80}`,
			`discovery: invalid source "api.test": discover: missing; must be "a" or "srv"`},
		{`{"discover": "a", "port": 80}`,
			`discovery: invalid source (no name): name: missing; the DNS name to look up`},
		{`{"discover": "a", "name": "api.test"}`,
			`discovery: invalid source "api.test": port: missing; "a" needs the port the backends listen on, 1 to 65535`},
		{`{"discover": "a", "name": "api.test", "port": 0}`,
			`discovery: invalid source "api.test": port: must be between 1 and 65535, got 0`},
		{`{"discover": "a", "name": "api.test", "port": 65536}`,
			`discovery: invalid source "api.test": port: must be between 1 and 65535, got 65536`},
		{`{"discover": "srv", "name": "_http._tcp.x.test", "port": 80}`,
			`discovery: invalid source "_http._tcp.x.test": port: not allowed with "srv": each SRV record gives its own port`},
		{`{"discover": "a", "name": "api.test", "port": 80, "scheme": "ftp"}`,
			`discovery: invalid source "api.test": scheme: must be "http", "https" or "h2c", got "ftp"`},
		{`{"discover": "srv", "port": 1, "scheme": "HTTP"}`,
			`discovery: invalid source (no name): name: missing; the DNS name to look up; port: not allowed with "srv": each SRV record gives its own port; scheme: must be "http", "https" or "h2c", got "HTTP"`},
		{`{"discover": "a", "name": "10.0.0.1", "port": 80}`,
			`name: "10.0.0.1" is an IP address, not a name; write it as a URL such as "http://10.0.0.1:8080"`},
		{`{"discover": "a", "name": "api..test", "port": 80}`, `each dot-separated label must be 1 to 63 characters`},
		{`{"discover": "a", "name": "-api.test", "port": 80}`, `must not start or end with "-"`},
		{`{"discover": "a", "name": "api test", "port": 80}`, `only letters, digits`},
		{`{"discover": "a", "name": "` + strings.Repeat("a.", 127) + `x", "port": 80}`, `longer than 253 characters`},
		{`{"discover": "a", "name": "api.test", "port": 80, "weight": 3}`, `discovery: invalid source: unknown field "weight"`},
		{`{"discover": "a", "name": "api.test", "port": "80"}`, `discovery: invalid source: port: must be a whole number, got string`},
		{`{"discover": "a", "name": 7, "port": 80}`, `discovery: invalid source: name: must be a string, got number`},
		{`["a"]`, `discovery: invalid source: must be a JSON object, got array`},
		{`{"discover": "a", "name": "api.test", "port": 80} {}`, `unexpected data after the object`},
	} {
		_, err := discovery.DecodeSource([]byte(tc.json))
		if assert.Error(t, err, tc.json) {
			assert.ErrorIs(t, err, discovery.ErrInvalidSource, tc.json)
			assert.Contains(t, err.Error(), tc.want, tc.json)
			assert.NotContains(t, err.Error(), "\n", "one line")
		}
	}
}

func TestSourceString(t *testing.T) {
	assert.Equal(t, "a+http://api.test:8080", discovery.Source{Discover: discovery.KindA, Name: "api.test", Port: 8080}.String())
	assert.Equal(t, "srv+h2c://_grpc._tcp.x.test", discovery.Source{Discover: discovery.KindSRV, Name: "_grpc._tcp.x.test", Scheme: "h2c"}.String())
}

func TestParseResolver(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"127.0.0.1:8600":  "127.0.0.1:8600",
		"[::1]:53":        "[::1]:53",
		"consul.lan:0053": "consul.lan:53",
	} {
		got, err := discovery.ParseResolver(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"127.0.0.1", ":53", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:dns", "::1:53"} {
		_, err := discovery.ParseResolver(in)
		assert.ErrorIs(t, err, discovery.ErrConfig, in)
	}
}

func TestParseRefresh(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 30 * time.Second, "1s": time.Second, "1m30s": 90 * time.Second} {
		got, err := discovery.ParseRefresh(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"999ms", "0s", "-5s", "10", "soon"} {
		_, err := discovery.ParseRefresh(in)
		if assert.ErrorIs(t, err, discovery.ErrConfig, in) {
			assert.ErrorContains(t, err, "at least 1s", in)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := aSource("api.test", 80)
	for _, tc := range []struct {
		name string
		sink discovery.Sink
		cfg  discovery.Config
		want []string
	}{
		{"nil sink", nil, discovery.Config{}, []string{"Sink is nil"}},
		{"negative refresh", newSink(), discovery.Config{Refresh: -time.Second}, []string{"Refresh must not be negative"}},
		{"bad resolver", newSink(), discovery.Config{Resolver: "localhost"}, []string{"resolver must be host:port"}},
		{"bad source", newSink(), discovery.Config{Sources: []discovery.Source{{Discover: "txt", Name: "x.test"}}}, []string{`discover: must be "a" or "srv"`}},
		{"srv with port", newSink(), discovery.Config{Sources: []discovery.Source{{Discover: discovery.KindSRV, Name: "x.test", Port: 80}}}, []string{"port: not allowed"}},
		{"duplicate", newSink(), discovery.Config{Sources: []discovery.Source{good, {Discover: discovery.KindA, Name: "API.test.", Port: 80, Scheme: "http"}}}, []string{"listed twice (a+http://api.test:80)"}},
		{"all at once", nil, discovery.Config{Refresh: -1, Resolver: "x:0", Sources: []discovery.Source{{}}}, []string{"Sink", "Refresh", "resolver port", "discover: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := discovery.New(tc.sink, tc.cfg)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	// A refresh below the config file's floor is fine here: tests use it.
	_, err := discovery.New(newSink(), discovery.Config{Refresh: time.Millisecond, Sources: []discovery.Source{good}})
	assert.NoError(t, err)
}

func ExampleDecodeSource() {
	for _, entry := range []string{
		`{"discover": "a", "name": "api.default.svc.cluster.local", "port": 8080}`,
		`{"discover": "srv", "name": "_http._tcp.api.service.consul", "scheme": "h2c"}`,
		`{"discover": "srv", "name": "_http._tcp.api.service.consul", "port": 8080}`,
	} {
		s, err := discovery.DecodeSource([]byte(entry))
		if errors.Is(err, discovery.ErrInvalidSource) {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(s)
	}
	// Output:
	// a+http://api.default.svc.cluster.local:8080
	// srv+h2c://_http._tcp.api.service.consul
	// error: discovery: invalid source "_http._tcp.api.service.consul": port: not allowed with "srv": each SRV record gives its own port
}

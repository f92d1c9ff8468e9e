package proxy_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// Zero is the documented default; a negative value is an error naming the
// field, all of them at once.
func TestNewRefusesNegativeValues(t *testing.T) {
	p := pooltest.Start(t, pool.Config{})
	_, err := proxy.New(p, proxy.Config{})
	require.NoError(t, err)

	_, err = proxy.New(p, proxy.Config{RequestTimeout: -time.Second, MaxAttempts: -1, MaxIdleConnsPerHost: -2})
	require.Error(t, err)
	for _, field := range []string{"RequestTimeout", "MaxAttempts", "MaxIdleConnsPerHost"} {
		assert.ErrorContains(t, err, "proxy: "+field+" must not be negative")
	}
	_, err = proxy.New(nil, proxy.Config{})
	assert.ErrorContains(t, err, "proxy: Pool is nil")
}

func TestParseTrustedProxy(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8", // the network it names
		"192.168.1.7":         "192.168.1.7/32",
		"fd00::/8":            "fd00::/8",
		"::ffff:10.0.0.1":     "10.0.0.1/32", // the proxy sees IPv4 peers as IPv4
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
	} {
		got, err := proxy.ParseTrustedProxy(in)
		require.NoError(t, err, in)
		assert.Equal(t, netip.MustParsePrefix(want), got, in)
	}
	for _, in := range []string{"", "proxy.example.com", "10.0.0.0/33", "::ffff:0:0/64", "fe80::1%eth0"} {
		_, err := proxy.ParseTrustedProxy(in)
		assert.Error(t, err, in)
	}
}

// Reconfigure applies to requests that arrive after it; a bad config
// changes nothing.
func TestReconfigure(t *testing.T) {
	silent := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	f := newFixture(t, proxy.Config{RequestTimeout: 10 * time.Second}, silent.URL)
	require.Error(t, f.proxy.Reconfigure(proxy.Config{RequestTimeout: -1}))
	require.NoError(t, f.proxy.Reconfigure(proxy.Config{RequestTimeout: 100 * time.Millisecond}))
	start := time.Now()
	code, _ := f.get(t, "/")
	assert.Equal(t, http.StatusGatewayTimeout, code)
	assert.Less(t, time.Since(start), 3*time.Second, "the new timeout is in force")
}

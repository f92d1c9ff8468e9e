package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMetricsRoute(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://127.0.0.1:1")
	reg := prometheus.NewRegistry()
	reg.MustRegister(admin.NewPoolCollector(p))
	base := serveAdmin(t, p, admin.Config{Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})

	r := call(t, base, http.MethodGet, "/metrics", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), `switchyard_backend_up{backend="http://127.0.0.1:1"} 1`)
	assert.Contains(t, string(r.body), `switchyard_pool_backends{state="up"} 1`)

	r = call(t, base, http.MethodPost, "/metrics", "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.code)

	// Without a metrics handler the route does not exist.
	base = serveAdmin(t, p, admin.Config{})
	r = call(t, base, http.MethodGet, "/metrics", "")
	assert.Equal(t, http.StatusNotFound, r.code)
	assert.True(t, strings.HasPrefix(string(r.body), "{"), "a JSON error: %s", r.body)
}

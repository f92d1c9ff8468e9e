package health_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/grpctest"
)

// A probe uses the kind of connection the traffic does: TLS verified
// against BackendCAs for https backends, HTTP/2 with prior knowledge for
// h2c ones. A backend that speaks only h2c would fail an HTTP/1.1 probe; a
// backend whose certificate is not trusted fails.
func TestProbeSpeaksTheBackendsProtocol(t *testing.T) {
	protos := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
	})
	certFile, keyFile, roots := certstest.Write(t, t.TempDir(), "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	secure := httptest.NewUnstartedServer(h)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	secure.EnableHTTP2 = true
	secure.StartTLS()
	t.Cleanup(secure.Close)
	_, h2c := pooltest.H2CBackend(t, h)

	ctx := context.Background()
	probe := func(c *health.Checker, p *pool.Pool, url string) (bool, string) {
		t.Helper()
		b, _, err := p.Add(ctx, pool.Spec{URL: url})
		require.NoError(t, err)
		ok, err := c.Probe(ctx, b)
		require.NoError(t, err)
		return ok, pooltest.StatusOf(t, p, url).Reason
	}

	p := pooltest.Start(t, pool.Config{})
	trusting := newChecker(t, p, health.Config{BackendCAs: roots})
	for _, url := range []string{secure.URL, h2c} {
		ok, reason := probe(trusting, p, url)
		assert.True(t, ok, "%s: %s", url, reason)
		assert.Equal(t, "HTTP/2.0", <-protos, url)
	}

	// The system's roots do not know the test's CA.
	p = pooltest.Start(t, pool.Config{})
	ok, reason := probe(newChecker(t, p, health.Config{}), p, secure.URL)
	assert.False(t, ok)
	assert.Contains(t, reason, "certificate")
}

// In gRPC mode a probe is a grpc.health.v1 Check call, answered here by
// grpc-go's own health service: SERVING passes, anything else fails with
// the status named; a server that is not gRPC fails, and so does a gRPC
// server probed with a GET.
func TestGRPCHealthCheck(t *testing.T) {
	ctx := context.Background()
	srv := grpctest.Start(t)
	p := pooltest.Start(t, pool.Config{})
	b, _, err := p.Add(ctx, pool.Spec{URL: srv.URL})
	require.NoError(t, err)
	probe := func(c *health.Checker) (bool, string) {
		t.Helper()
		ok, err := c.Probe(ctx, b)
		require.NoError(t, err)
		return ok, pooltest.StatusOf(t, p, srv.URL).Reason
	}

	ok, reason := probe(newChecker(t, p, health.Config{}))
	assert.False(t, ok, "a GET of a gRPC server")
	assert.Equal(t, "health check: status 415", reason)

	grpcCheck := newChecker(t, p, health.Config{GRPC: true})
	ok, reason = probe(grpcCheck)
	assert.True(t, ok, reason)
	assert.Equal(t, "grpc health check: SERVING", reason)

	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	ok, reason = probe(grpcCheck)
	assert.False(t, ok)
	assert.Equal(t, "grpc health check: NOT_SERVING", reason)

	srv.Health.SetServingStatus("billing", healthpb.HealthCheckResponse_SERVING)
	ok, reason = probe(newChecker(t, p, health.Config{GRPC: true, GRPCService: "billing"}))
	assert.True(t, ok, "the service asked for, whatever the server's own status: %s", reason)
	ok, reason = probe(newChecker(t, p, health.Config{GRPC: true, GRPCService: "nope"}))
	assert.False(t, ok)
	assert.Equal(t, "grpc health check: grpc-status 5: unknown service", reason, "NOT_FOUND, as grpc-go answers it")

	// An HTTP server is no gRPC server.
	plain := backend(t, func(w http.ResponseWriter, r *http.Request) {})
	b, _, err = p.Add(ctx, pool.Spec{URL: plain.URL})
	require.NoError(t, err)
	ok, err = grpcCheck.Probe(ctx, b)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Contains(t, pooltest.StatusOf(t, p, plain.URL).Reason, "grpc health check: ")
}

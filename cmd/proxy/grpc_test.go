package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-proxy/switchyard/pool/pooltest/grpctest"
)

// gRPC end to end through the program: grpc-go clients on the TLS port and
// on the plain port (h2c), to h2c backends checked with the gRPC health
// protocol. A backend that stops SERVING leaves rotation; with none left,
// the client gets UNAVAILABLE with a message, not a bad content-type.
func TestGRPCThroughTheProgram(t *testing.T) {
	a, b := grpctest.Start(t), grpctest.Start(t)
	site := newTLSSite(t, []string{"localhost"})
	cfg := testConfig(t, a.URL, b.URL)
	cfg["h2c"] = true
	cfg["health_check_mode"] = "grpc"
	cfg["request_timeout"] = "300ms" // a stream outlives it: gRPC calls are bounded by grpc-timeout
	tlsPort := withTLS(t, cfg, site)
	r := start(t, cfg)
	waitAlive(t, r, a.URL, true)
	waitAlive(t, r, b.URL, true)

	for name, client := range map[string]*grpctest.Client{
		"h2c": grpctest.NewClient(t, r.proxyURL, nil),
		"tls": grpctest.NewClient(t, "https://localhost:"+strconv.Itoa(tlsPort), site.ca.Pool),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res := client.Unary(ctx, []byte("hello"))
		require.NoError(t, res.Err, name)
		assert.Equal(t, [][]byte{[]byte("hello")}, res.Messages, name)

		// A bidi stream lasting longer than request_timeout.
		st, err := client.Bidi(ctx)
		require.NoError(t, err, name)
		for i := range 4 {
			msg := []byte(fmt.Sprintf("m%d", i))
			require.NoError(t, st.Send(msg), name)
			got, err := st.Recv()
			require.NoError(t, err, name)
			assert.Equal(t, msg, got, name)
			time.Sleep(120 * time.Millisecond)
		}
		assert.NoError(t, st.Finish().Err, name)
		cancel()
	}

	// Health by the gRPC protocol: NOT_SERVING takes a backend out.
	a.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	b.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitAlive(t, r, a.URL, false)
	waitAlive(t, r, b.URL, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := grpctest.NewClient(t, r.proxyURL, nil).Unary(ctx, []byte("hello"))
	assert.Equal(t, codes.Unavailable, res.Code(), "%v", res.Err)
	assert.Contains(t, res.Err.Error(), "no backend")
	assert.Equal(t, exitOK, r.stop(t))
}

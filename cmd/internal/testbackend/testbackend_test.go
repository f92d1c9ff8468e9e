package testbackend

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(":8082"))
	t.Cleanup(srv.Close)

	code, body, h := pooltest.Get(t, http.DefaultClient, srv.URL+"/some/path?x=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "backend :8082 - GET /some/path?x=1\n", body)
	assert.Equal(t, ":8082", h.Get("X-Backend"))

	code, body, _ = pooltest.Get(t, http.DefaultClient, srv.URL+"/health")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	code, _, _ = pooltest.Get(t, http.DefaultClient, srv.URL+"/health?status=503")
	assert.Equal(t, http.StatusServiceUnavailable, code, "a demo can make a backend fail its health check")

	code, body, _ = pooltest.Get(t, http.DefaultClient, srv.URL+"/?status=503")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "backend :8082")

	for _, q := range []string{"status=99", "status=600", "status=abc", "status=100", "sleep=abc", "sleep=-1s", "sleep=1000h"} {
		code, body, _ = pooltest.Get(t, http.DefaultClient, srv.URL+"/?"+q)
		assert.Equal(t, http.StatusBadRequest, code, q)
		assert.Contains(t, body, ":8082", q)
	}

	start := time.Now()
	code, _, _ = pooltest.Get(t, http.DefaultClient, srv.URL+"/?sleep=50ms")
	assert.Equal(t, http.StatusOK, code)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
}

func TestSleepEndsWithTheRequest(t *testing.T) {
	done := make(chan struct{})
	h := Handler("b")
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/?sleep=4m", nil)
	rec := httptest.NewRecorder()
	go func() { // the test waits for it on done
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler slept on after its request ended")
	}
	assert.Empty(t, rec.Body.String(), "nobody is there to read an answer")
}

func TestListenAllIsAllOrNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	freeAddr := free.Addr().String()
	require.NoError(t, free.Close())

	_, err = ListenAll([]string{freeAddr, busy.Addr().String()})
	require.Error(t, err)
	// The first listener was closed again: its address can be taken.
	ln, err := net.Listen("tcp", freeAddr)
	require.NoError(t, err)
	require.NoError(t, ln.Close())

	lns, err := ListenAll([]string{freeAddr})
	require.NoError(t, err)
	require.Len(t, lns, 1)
	srv := Server("x", nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lns[0]) }() // the test waits for it on served
	code, body, _ := pooltest.Get(t, http.DefaultClient, "http://"+freeAddr+"/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "backend x - GET /\n", body)
	require.NoError(t, srv.Shutdown(context.Background()))
	assert.ErrorIs(t, <-served, http.ErrServerClosed)
}

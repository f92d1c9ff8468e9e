package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request still running when shutdown_timeout runs out is cut off, and its
// client must be able to tell: it gets an error or a 5xx, never a success.
// (net/http answers a handler that returns without writing with an empty
// 200, so a request whose context ends while its client is still connected
// would otherwise look served.) The backend's request is cancelled, and run
// still exits 0.
func TestShutdownTimeoutCutsRequestsVisibly(t *testing.T) {
	arrived, cancelled := make(chan struct{}, 1), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return // a health check
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
			io.WriteString(w, "too late")
		}
	}))
	t.Cleanup(backend.Close)
	cfg := testConfig(t, backend.URL)
	cfg["shutdown_timeout"] = "300ms"
	r := start(t, cfg)
	c := newClient(t)

	got := getAsync(c, r.proxyURL+"/slow")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the backend")
	}

	assert.Equal(t, exitOK, r.stop(t), r.stderr.String())
	select {
	case a := <-got:
		t.Logf("the client got: status %d, body %q, error %v", a.code, a.body, a.err)
		if a.err == nil {
			assert.GreaterOrEqual(t, a.code, 500, "a request cut at shutdown_timeout was answered %d %q", a.code, a.body)
		}
	case <-time.After(10 * time.Second):
		require.Fail(t, "the client got no answer and no error")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the backend's request was not cancelled")
	}
}

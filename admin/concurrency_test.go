package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// Fifty operators add and remove backends at once, each their own and all of
// them one shared one, with a real probe on every add. At the end the pool
// holds exactly what their answers say it should.
func TestConcurrentAddAndRemove(t *testing.T) {
	const (
		clients = 50
		each    = 4
	)
	healthy := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	p := pooltest.Start(t, pool.Config{})
	base := serveAdmin(t, p, admin.Config{Prober: checker(t, p)})
	// Paths make distinct backends on one server.
	own := func(c, i int) string { return fmt.Sprintf("%s/c%d/b%d", healthy, c, i) }
	shared := healthy + "/shared"
	body := func(u string) string { return `{"url": "` + u + `"}` }

	var mu sync.Mutex
	codes := map[string]int{} // "POST 201" -> count, for the shared backend
	var wg sync.WaitGroup
	for c := range clients {
		// Waited for by wg.Wait below. Off the test goroutine: assert only.
		wg.Go(func() {
			for i := range each {
				r, err := send(base, http.MethodPost, "/backends", body(own(c, i)), nil)
				if !assert.NoError(t, err) || !assert.Equal(t, http.StatusCreated, r.code, "%s", r.body) {
					return
				}
				assert.Contains(t, string(r.body), `"state": "up"`)
			}
			for i := 0; i < each; i += 2 {
				r, err := send(base, http.MethodDelete, "/backends", body(own(c, i)), nil)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
			}
			for _, method := range []string{http.MethodPost, http.MethodDelete} {
				r, err := send(base, method, "/backends", body(shared), nil)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				codes[fmt.Sprint(method, " ", r.code)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	st, err := p.Status(context.Background())
	require.NoError(t, err)
	assertConsistent(t, st)
	want := map[string]pool.State{}
	for c := range clients {
		for i := 1; i < each; i += 2 {
			want[own(c, i)] = pool.StateUp
		}
	}
	// Every shared add was answered 201 or 409 and every removal 200 or
	// 404; the backend is there at the end if one more add succeeded than
	// removals did.
	assert.Equal(t, clients, codes["POST 201"]+codes["POST 409"], "%v", codes)
	assert.Equal(t, clients, codes["DELETE 200"]+codes["DELETE 404"], "%v", codes)
	switch codes["POST 201"] - codes["DELETE 200"] {
	case 1:
		want[shared] = pool.StateUp
	case 0:
	default:
		assert.Failf(t, "adds and removals of the shared backend do not add up", "%v", codes)
	}
	assert.Equal(t, want, urlsOf(t, p))
	t.Logf("shared backend: %v", codes)
}

// A backend removed while a request to it is in flight drains: the request
// finishes normally, the backend is listed as draining with one connection
// meanwhile, and it disappears when the request ends.
func TestRemoveDuringInFlightRequestDrains(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	p := pooltest.Start(t, pool.Config{}, slow)

	// A minimal proxy over the pool, as the proxy package does it: pick,
	// acquire, forward, release.
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := p.Pick(r.Context(), nil)
		if err != nil {
			http.Error(w, "no backend", http.StatusServiceUnavailable)
			return
		}
		b.Acquire()
		defer b.Release()
		if b.Removed() { // removed between Pick and Acquire: see pool.Backend.Removed
			http.Error(w, "no backend", http.StatusServiceUnavailable)
			return
		}
		rp := httputil.NewSingleHostReverseProxy(b.URL())
		rp.Transport = transport
		rp.ServeHTTP(w, r)
	}))
	base := serveAdmin(t, p, admin.Config{})

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() { // waited for by <-done below
		r, err := send(front, http.MethodGet, "/long", "", nil)
		done <- result{r.code, string(r.body), err}
	}()
	<-entered

	r := call(t, base, http.MethodDelete, "/backends", `{"url": "`+slow+`"}`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	removed := decode[admin.BackendStatus](t, r)
	assert.Equal(t, "draining", removed.State)
	assert.Equal(t, int64(1), removed.CurrentConnections)
	assert.False(t, removed.Alive)

	r = call(t, base, http.MethodGet, "/status", "")
	require.Equal(t, http.StatusOK, r.code)
	st := decode[admin.StatusResponse](t, r)
	assert.Equal(t, 0, st.ActiveBackends)
	assert.Equal(t, 0, st.TotalBackends)
	assert.Equal(t, 1, st.DrainingBackends)
	require.Len(t, st.Backends, 1)
	assert.Equal(t, "draining", st.Backends[0].State)
	assert.Equal(t, int64(1), st.Backends[0].CurrentConnections)

	// New requests no longer reach it.
	r = call(t, front, http.MethodGet, "/other", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)

	close(release)
	res := <-done
	require.NoError(t, res.err)
	assert.Equal(t, http.StatusOK, res.code, "the request in flight was not cut")
	assert.Equal(t, "finished", res.body)

	// The proxy releases the backend after the client has its answer.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := send(base, http.MethodGet, "/status", "", nil)
		if !assert.NoError(c, err) {
			return
		}
		var st admin.StatusResponse
		if assert.NoError(c, json.Unmarshal(r.body, &st)) {
			assert.Empty(c, st.Backends)
		}
	}, 10*time.Second, 5*time.Millisecond)
}

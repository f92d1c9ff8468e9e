package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// passingProber reports every probe as a pass without any network, so that
// the fuzzer's URLs are never dialled.
type passingProber struct{ p *pool.Pool }

func (f passingProber) Probe(ctx context.Context, b *pool.Backend) (bool, error) {
	return true, f.p.ReportProbe(ctx, b, pool.ProbeResult{OK: true, Reason: "fuzz"})
}

// FuzzAdminHandlers sends one request of any method, path, Authorization
// header and body to the handlers over a live pool that holds an up backend
// and a draining one. The handler is called directly, not through a server,
// so that a panic fails the test instead of being recovered. It must answer
// 2xx or 4xx in JSON (the status page's files excepted), change nothing when
// it refuses, and leave the pool consistent. Bodies are sent as JSON, as the
// API requires; the Content-Type rule has tests of its own.
//
// Profiling is off: /debug/pprof/profile and /trace would run for 30 s, and
// they are net/http/pprof's, tested by Go.
func FuzzAdminHandlers(f *testing.F) {
	f.Add("GET", "/status", "Bearer secret", []byte(nil))
	f.Add("POST", "/backends", "Bearer secret", []byte(`{"url": "http://localhost:8085"}`))
	f.Add("POST", "/backends", "Bearer secret", []byte(`{"url": "http://draining.test"}`))
	f.Add("DELETE", "/backends", "Bearer secret", []byte(`{"url": "HTTP://A.test:80/"}`))
	f.Add("DELETE", "/backends", "bearer secret", []byte(`{"url": "http://draining.test"}`))
	f.Add("POST", "/backends", "Bearer secret", []byte(`{"url": "http://x.test"} {}`))
	f.Add("PUT", "/status", "", []byte(`{"url": 1}`))
	f.Add("GET", "/healthz", "Bearer wrong", []byte(nil))
	f.Add("GET", "/", "", []byte(nil))
	f.Add("HEAD", "/ui/app.js", "Bearer wrong", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte) {
		p := pooltest.Start(t, pool.Config{}, "http://a.test", "http://draining.test")
		ctx := context.Background()
		bs, err := p.Backends(ctx)
		require.NoError(t, err)
		bs[1].Acquire()
		t.Cleanup(bs[1].Release)
		_, err = p.Remove(ctx, "http://draining.test")
		require.NoError(t, err)
		h, err := admin.New(p, admin.Config{Token: "secret", Prober: passingProber{p}, DisablePprof: true})
		require.NoError(t, err)

		req, err := http.NewRequest(method, "http://admin.test"+path, strings.NewReader(string(body)))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		before, err := p.Status(ctx)
		require.NoError(t, err)

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		class := rec.Code / 100
		assert.True(t, class == 2 || class == 4, "status %d", rec.Code)
		if page := pageFiles[req.URL.Path]; page != "" && rec.Code == http.StatusOK {
			assert.Equal(t, page, rec.Header().Get("Content-Type"))
		} else {
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.True(t, json.Valid(rec.Body.Bytes()), "body %q", rec.Body)
		}

		after, err := p.Status(ctx)
		require.NoError(t, err)
		assertConsistent(t, after)
		if class != 2 {
			assert.Equal(t, states(before), states(after), "a refused request changed the pool")
		}
	})
}

func states(st pool.Status) map[string]pool.State {
	out := map[string]pool.State{}
	for _, b := range st.Backends {
		out[b.URL] = b.State
	}
	return out
}

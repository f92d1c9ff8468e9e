package health_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend serves h on a real listener until the test ends.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// refusedURL returns the address of a listener that has just been closed, so
// that a connection to it is refused.
func refusedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func newChecker(t *testing.T, p health.Pool, cfg health.Config) *health.Checker {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	c, err := health.New(p, cfg)
	require.NoError(t, err)
	return c
}

func TestNewValidatesConfig(t *testing.T) {
	p := pooltest.Start(t, pool.Config{})
	for _, tc := range []struct {
		name string
		cfg  health.Config
		want []string
	}{
		{"zero interval", health.Config{}, []string{"health: Interval must be positive"}},
		{"negative timeout", health.Config{Interval: time.Second, Timeout: -1}, []string{"health: Timeout must not be negative"}},
		{"default timeout not below interval", health.Config{Interval: 2 * time.Second}, []string{"health: Timeout (2s) must be less than Interval (2s)"}},
		{"relative path", health.Config{Interval: time.Minute, Path: "healthz"}, []string{"health: Path"}},
		{"absolute URL as path", health.Config{Interval: time.Minute, Path: "http://x/healthz"}, []string{"health: Path"}},
		{"all at once", health.Config{Interval: -time.Second, Path: "/#x"}, []string{"Interval", "Path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := health.New(p, tc.cfg)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := health.New(nil, health.Config{Interval: time.Minute})
	assert.ErrorContains(t, err, "health: Pool is nil")
	_, err = health.New(p, health.Config{Interval: time.Minute, Path: "/healthz?full=1"})
	assert.NoError(t, err)
}

// Each probe goes to the pool as a report; with the default thresholds of 1,
// one result changes the state.
func TestProbeResultsChangeState(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    http.HandlerFunc
		refused    bool
		startUp    bool
		wantOK     bool
		wantReason string
	}{
		{
			name:       "200 brings a down backend up",
			handler:    func(w http.ResponseWriter, r *http.Request) {},
			wantOK:     true,
			wantReason: "health check: 200 OK",
		},
		{
			name: "302 brings a down backend up and is not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			wantOK:     true,
			wantReason: "health check: 302 Found",
		},
		{
			name: "500 takes an up backend down",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			startUp:    true,
			wantReason: "health check: status 500",
		},
		{
			name:       "404 is a failure too",
			handler:    http.NotFound,
			startUp:    true,
			wantReason: "health check: status 404",
		},
		{
			name:       "a refused connection takes an up backend down",
			refused:    true,
			startUp:    true,
			wantReason: "connection refused",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var url string
			if tc.refused {
				url = refusedURL(t)
			} else {
				url = backend(t, tc.handler).URL
			}
			var p *pool.Pool
			var b *pool.Backend
			ctx := context.Background()
			if tc.startUp {
				p = pooltest.Start(t, pool.Config{}, url) // configured backends start up
				bs, err := p.Backends(ctx)
				require.NoError(t, err)
				b = bs[0]
			} else {
				p = pooltest.Start(t, pool.Config{})
				var err error
				b, _, err = p.Add(ctx, pool.Spec{URL: url}) // added backends start down
				require.NoError(t, err)
			}
			c := newChecker(t, p, health.Config{})

			ok, err := c.Probe(ctx, b)
			require.NoError(t, err)
			assert.Equal(t, tc.wantOK, ok)
			// The report was queued before this Status call, by the same
			// goroutine, so the owner has handled it.
			st := pooltest.StatusOf(t, p, url)
			assert.Equal(t, tc.wantOK, st.Alive())
			assert.Contains(t, st.Reason, tc.wantReason)
			assert.True(t, len(st.Reason) < 200, "reason is short: %q", st.Reason)
		})
	}
}

func TestProbeSendsPathAndUserAgent(t *testing.T) {
	type seen struct{ uri, ua string }
	got := make(chan seen, 1)
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.RequestURI, r.UserAgent()}
	})
	p := pooltest.Start(t, pool.Config{})
	ctx := context.Background()
	// The backend's own path is a prefix of the health path, as it is of
	// every proxied path.
	b, _, err := p.Add(ctx, pool.Spec{URL: srv.URL + "/app"})
	require.NoError(t, err)

	c := newChecker(t, p, health.Config{})
	_, err = c.Probe(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, seen{"/app/", health.DefaultUserAgent}, <-got)

	c = newChecker(t, p, health.Config{Path: "/healthz?full=1", UserAgent: "probe/2"})
	_, err = c.Probe(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, seen{"/app/healthz?full=1", "probe/2"}, <-got)
}

func TestBackendThatNeverAnswersFailsAtTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for handlers
	p := pooltest.Start(t, pool.Config{}, srv.URL)
	bs, err := p.Backends(context.Background())
	require.NoError(t, err)

	const timeout = 100 * time.Millisecond
	c := newChecker(t, p, health.Config{Timeout: timeout})
	start := time.Now()
	ok, err := c.Probe(context.Background(), bs[0])
	require.NoError(t, err)
	assert.False(t, ok)
	assert.GreaterOrEqual(t, time.Since(start), timeout)
	st := pooltest.StatusOf(t, p, srv.URL)
	assert.False(t, st.Alive())
	assert.Equal(t, "health check: timeout after 100ms", st.Reason)
}

// The first round runs when Run starts: with an interval of an hour, a backend
// added down can only come up in time if it does.
func TestRunChecksAtOnceAndStopsWithContext(t *testing.T) {
	var hits sync.WaitGroup
	hits.Add(2)
	srvA := backend(t, func(w http.ResponseWriter, r *http.Request) { hits.Done() })
	srvB := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Done()
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	p := pooltest.Start(t, pool.Config{}, srvB.URL)
	_, _, err := p.Add(context.Background(), pool.Spec{URL: srvA.URL})
	require.NoError(t, err)
	c := newChecker(t, p, health.Config{Interval: time.Hour})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }() // waited for below
	hits.Wait()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := p.Status(context.Background())
		if !assert.NoError(c, err) {
			return
		}
		alive := map[string]bool{}
		for _, b := range st.Backends {
			alive[b.URL] = b.Alive()
		}
		assert.True(c, alive[srvA.URL])
		assert.False(c, alive[srvB.URL])
	}, 10*time.Second, 5*time.Millisecond)

	cancel()
	assert.NoError(t, <-done)
	// goleak in TestMain checks that no probe goroutine or connection was left.
}

func TestRunFailsWhenThePoolStops(t *testing.T) {
	p, err := pool.New(pool.Config{})
	require.NoError(t, err)
	poolCtx, stopPool := context.WithCancel(context.Background())
	poolDone := make(chan error, 1)
	go func() { poolDone <- p.Run(poolCtx) }() // waited for below
	stopPool()
	require.NoError(t, <-poolDone)

	c := newChecker(t, p, health.Config{})
	assert.ErrorContains(t, c.Run(context.Background()), "health: listing backends: actor: stopped")
}

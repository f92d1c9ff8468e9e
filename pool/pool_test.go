package pool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func urls(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://127.0.0.1:%d", 20000+i)
	}
	return out
}

func TestPickRotatesThroughTheLoop(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, urls(3)...)
	ctx := context.Background()
	var got []string
	for range 6 {
		b, err := p.Pick(ctx, nil)
		require.NoError(t, err)
		got = append(got, b.String())
	}
	u := urls(3)
	assert.Equal(t, []string{u[0], u[1], u[2], u[0], u[1], u[2]}, got)

	// A retry names what it has tried.
	first, err := p.Pick(ctx, nil)
	require.NoError(t, err)
	second, err := p.Pick(ctx, []*pool.Backend{first})
	require.NoError(t, err)
	third, err := p.Pick(ctx, []*pool.Backend{first, second})
	require.NoError(t, err)
	_, err = p.Pick(ctx, []*pool.Backend{first, second, third})
	assert.ErrorIs(t, err, pool.ErrNoBackend)
}

func TestMarkDownAndBackUp(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, urls(2)...)
	ctx := context.Background()
	a, err := p.Pick(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, p.MarkDown(ctx, a, "connection refused"))
	for range 4 {
		b, err := p.Pick(ctx, nil)
		require.NoError(t, err)
		assert.NotSame(t, a, b)
	}
	st, err := p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Up)
	assert.Equal(t, pool.StateDown, st.Backends[0].State)
	assert.Equal(t, "connection refused", st.Backends[0].Reason)
	assert.False(t, st.Backends[0].Alive())

	// A passing health check brings it back.
	require.NoError(t, p.ReportProbe(ctx, a, pool.ProbeResult{OK: true, Reason: "test"}))
	st, err = p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Up)
}

func TestAddedBackendWaitsForAPassingProbe(t *testing.T) {
	p := pooltest.Start(t, pool.Config{})
	ctx := context.Background()
	b, st, err := p.Add(ctx, pool.Spec{URL: "http://127.0.0.1:9999/"})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9999", st.URL)
	assert.Equal(t, pool.StateDown, st.State)
	_, err = p.Pick(ctx, nil)
	assert.ErrorIs(t, err, pool.ErrNoBackend)

	require.NoError(t, p.ReportProbe(ctx, b, pool.ProbeResult{OK: true, Reason: "200 OK"}))
	got, err := p.Pick(ctx, nil)
	require.NoError(t, err)
	assert.Same(t, b, got)

	_, _, err = p.Add(ctx, pool.Spec{URL: "http://127.0.0.1:9999"})
	assert.ErrorIs(t, err, pool.ErrExists)
	_, _, err = p.Add(ctx, pool.Spec{URL: "127.0.0.1:9999"})
	assert.ErrorIs(t, err, pool.ErrInvalidURL)
	_, err = p.Remove(ctx, "http://127.0.0.1:1")
	assert.ErrorIs(t, err, pool.ErrNotFound)
	bs, err := p.Backends(ctx)
	require.NoError(t, err)
	assert.Equal(t, []*pool.Backend{b}, bs)
}

// Hundreds of goroutines pick while others add, remove, mark down and up. No
// pick may return a backend that was down or removed before the pick was
// sent, and the counts must add up at the end.
func TestLoopUnderFire(t *testing.T) {
	const stable = 3
	p := pooltest.Start(t, pool.Config{Strategy: pool.LeastConnections}, urls(stable)...)
	ctx := context.Background()

	// epoch orders events across goroutines. A churner bumps it after a
	// backend is gone (down or removed, and the owner has acted on it); a
	// picker reads it before sending its pick. If a picker read a later
	// epoch than the one at which its backend went away, the owner handled
	// the pick after the change: a violation.
	var epoch atomic.Int64
	var gone sync.Map // *pool.Backend -> epoch at which it went away

	stop := make(chan struct{})
	var churners sync.WaitGroup
	for c := range 4 {
		churners.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw := fmt.Sprintf("http://churn-%d-%d.test", c, i)
				b, _, err := p.Add(ctx, pool.Spec{URL: raw})
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, p.ReportProbe(ctx, b, pool.ProbeResult{OK: true, Reason: "test"}))
				time.Sleep(50 * time.Microsecond)
				assert.NoError(t, p.MarkDown(ctx, b, "test"))
				_, err = p.Status(ctx) // barrier: the owner has handled the mark-down
				assert.NoError(t, err)
				gone.Store(b, epoch.Add(1))
				_, err = p.Remove(ctx, raw)
				assert.NoError(t, err)
			}
		})
	}

	var picks atomic.Int64
	var pickers sync.WaitGroup
	for range 200 {
		pickers.Go(func() {
			for range 100 {
				seen := epoch.Load()
				b, err := p.Pick(ctx, nil)
				if err != nil {
					assert.ErrorIs(t, err, pool.ErrNoBackend)
					continue
				}
				b.Acquire()
				if at, ok := gone.Load(b); ok {
					assert.Less(t, seen, at.(int64), "picked %s after it went away", b)
				}
				picks.Add(1)
				b.Release()
			}
		})
	}
	pickers.Wait()
	close(stop)
	churners.Wait()

	st, err := p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, stable, st.Members, "every churned backend was removed")
	assert.Equal(t, 0, st.Draining)
	var requests uint64
	for _, b := range st.Backends {
		assert.Zero(t, b.InFlight)
		requests += b.Requests
	}
	assert.Positive(t, picks.Load())
	assert.LessOrEqual(t, requests, uint64(picks.Load()), "stable backends counted only their own picks")
	t.Logf("%d picks", picks.Load())
}

func TestCancelledCallerReturnsAndTheLoopGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := pool.New(pool.Config{}, pool.URLs(urls(1)...)...)
		require.NoError(t, err)

		// The loop is not running yet: the message is queued, nobody answers.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = p.Pick(ctx, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		_, err = p.Status(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		// Now it runs, answers the abandoned messages into their capacity-1
		// channels without blocking, and serves the next caller.
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }() // waited for below
		b, err := p.Pick(context.Background(), nil)
		require.NoError(t, err)
		assert.Equal(t, urls(1)[0], b.String())
		stop()
		require.NoError(t, <-done)
	})
}

func TestEveryCallReturnsErrStoppedAfterRun(t *testing.T) {
	p, err := pool.New(pool.Config{}, pool.URLs(urls(2)...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // waited for below
	b, err := p.Pick(context.Background(), nil)
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
	<-p.Done()

	bg := context.Background() // never ends: only ErrStopped can end these calls
	_, err = p.Pick(bg, nil)
	assert.ErrorIs(t, err, actor.ErrStopped)
	assert.ErrorIs(t, p.MarkDown(bg, b, "x"), actor.ErrStopped)
	assert.ErrorIs(t, p.ReportProbe(bg, b, pool.ProbeResult{OK: true}), actor.ErrStopped)
	_, _, err = p.Add(bg, pool.Spec{URL: "http://new.test"})
	assert.ErrorIs(t, err, actor.ErrStopped)
	_, err = p.Remove(bg, urls(1)[0])
	assert.ErrorIs(t, err, actor.ErrStopped)
	_, err = p.Status(bg)
	assert.ErrorIs(t, err, actor.ErrStopped)
	_, err = p.Backends(bg)
	assert.ErrorIs(t, err, actor.ErrStopped)
	assert.ErrorIs(t, p.Run(bg), pool.ErrRunning)
}

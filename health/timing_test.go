package health_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// The tests in this file run in synctest bubbles, with the HTTP probe replaced
// by a function that takes fake time. Time only moves when every goroutine in
// the bubble is blocked, so durations are exact.

// probeLog records, per backend, the fake times at which probes started and
// the most probes that ran for it at once.
type probeLog struct {
	start     time.Time
	mu        sync.Mutex
	starts    map[string][]time.Duration
	running   map[string]int
	maxAtOnce int
}

func newProbeLog() *probeLog {
	return &probeLog{start: time.Now(), starts: map[string][]time.Duration{}, running: map[string]int{}}
}

// probe returns a probe function that records its calls and then takes d of
// fake time, ignoring ctx as a stuck probe would.
func (l *probeLog) probe(d time.Duration) func(context.Context, *pool.Backend) (bool, string) {
	return func(_ context.Context, b *pool.Backend) (bool, string) {
		l.mu.Lock()
		l.starts[b.String()] = append(l.starts[b.String()], time.Since(l.start))
		l.running[b.String()]++
		l.maxAtOnce = max(l.maxAtOnce, l.running[b.String()])
		l.mu.Unlock()
		time.Sleep(d)
		l.mu.Lock()
		l.running[b.String()]--
		l.mu.Unlock()
		return true, "ok"
	}
}

func (l *probeLog) startsOf(key string) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.starts[key]...)
}

// run starts c.Run in the bubble and stops it when the test ends.
func run(t *testing.T, c *health.Checker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }() // waited for in Cleanup
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
}

const (
	backendA = "http://a.test"
	backendB = "http://b.test"
)

func TestRoundsStartAtOnceThenTickAtInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA, backendB)
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second})
		log := newProbeLog()
		health.SetProbeFunc(c, log.probe(time.Second))
		run(t, c)

		synctest.Wait()
		assert.Equal(t, []time.Duration{0}, log.startsOf(backendA), "first round at once")
		assert.Equal(t, []time.Duration{0}, log.startsOf(backendB))

		time.Sleep(35 * time.Second)
		want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
		assert.Equal(t, want, log.startsOf(backendA))
		assert.Equal(t, want, log.startsOf(backendB))
	})
}

// Probes that overrun the interval delay the next round; they never run twice
// at once for one backend, and the ticks missed meanwhile are dropped rather
// than run back to back.
func TestRoundsNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA, backendB)
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second})
		log := newProbeLog()
		health.SetProbeFunc(c, log.probe(25*time.Second))
		run(t, c)

		time.Sleep(80 * time.Second)
		synctest.Wait()
		want := []time.Duration{0, 25 * time.Second, 50 * time.Second, 75 * time.Second}
		assert.Equal(t, want, log.startsOf(backendA))
		// Both backends were probed at the same instant of each round, so
		// the probes within a round ran concurrently.
		assert.Equal(t, want, log.startsOf(backendB))
		assert.Equal(t, 1, log.maxAtOnce)
	})
}

func TestProbeIsBoundedByTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA)
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second, Timeout: 3 * time.Second})
		var took time.Duration
		health.SetProbeFunc(c, func(ctx context.Context, b *pool.Backend) (bool, string) {
			start := time.Now()
			<-ctx.Done() // a backend that never answers
			took = time.Since(start)
			return false, "timed out"
		})
		bs, err := p.Backends(context.Background())
		require.NoError(t, err)

		ok, err := c.Probe(context.Background(), bs[0])
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Equal(t, 3*time.Second, took)
		st, err := p.Status(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "timed out", st.Backends[0].Reason)
	})
}

// Stopping Run cuts the probes in flight short, waits for them, and reports
// nothing: a probe cancelled by shutdown says nothing about the backend.
func TestRunStopsWithContextMidRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA)
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second})
		var probing sync.WaitGroup
		probing.Add(1)
		health.SetProbeFunc(c, func(ctx context.Context, b *pool.Backend) (bool, string) {
			probing.Done()
			<-ctx.Done()
			return false, "cancelled"
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }() // waited for below
		probing.Wait()

		start := time.Now()
		cancel()
		assert.NoError(t, <-done)
		assert.Zero(t, time.Since(start), "Run returned without waiting for the timeout")
		st, err := p.Status(context.Background())
		require.NoError(t, err)
		assert.Equal(t, pool.StateUp, st.Backends[0].State)
		assert.Zero(t, st.Backends[0].Failures)
	})
}

// A backend that is down is checked every DownInterval (2s by default), an
// up one only every Interval: one that comes back is noticed within seconds,
// not at the next full round.
func TestDownBackendsAreCheckedMoreOften(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA, backendB)
		bs, err := p.Backends(t.Context())
		require.NoError(t, err)
		for _, b := range bs {
			if b.String() == backendB {
				require.NoError(t, p.MarkDown(t.Context(), b, "connection refused"))
			}
		}
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second})
		log := newProbeLog()
		health.SetProbeFunc(c, func(ctx context.Context, b *pool.Backend) (bool, string) {
			log.probe(0)(ctx, b)
			return b.String() == backendA, "probe" // b stays down
		})
		run(t, c)
		time.Sleep(11 * time.Second)
		assert.Equal(t, []time.Duration{0, 10 * time.Second}, log.startsOf(backendA))
		assert.Equal(t, []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second,
			10 * time.Second}, log.startsOf(backendB))
	})
}

// Reconfigure changes the schedule without a restart: after it, rounds come
// at the new interval.
func TestReconfigureChangesTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{}, backendA)
		c := newChecker(t, p, health.Config{Interval: 10 * time.Second})
		log := newProbeLog()
		health.SetProbeFunc(c, log.probe(0))
		run(t, c)
		time.Sleep(15 * time.Second) // rounds at 0 and 10s
		require.Error(t, c.Reconfigure(health.Config{Interval: time.Second, Timeout: time.Second}), "timeout not below interval")
		require.NoError(t, c.Reconfigure(health.Config{Interval: 3 * time.Second, Timeout: time.Second}))
		time.Sleep(7 * time.Second) // the new schedule from 15s: 18s, 21s
		assert.Equal(t, []time.Duration{0, 10 * time.Second, 18 * time.Second, 21 * time.Second}, log.startsOf(backendA))
	})
}

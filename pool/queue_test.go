package pool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// acquire gets a backend slot the way the proxy does: pick, try to take a
// slot, and when every backend is full, queue for one.
func acquire(ctx context.Context, p *pool.Pool) (*pool.Backend, error) {
	var skip []*pool.Backend
	for {
		b, err := p.PickFor(ctx, pool.PickRequest{Skip: skip})
		if errors.Is(err, pool.ErrBusy) || (errors.Is(err, pool.ErrNoBackend) && len(skip) > 0) {
			return p.Wait(ctx, pool.PickRequest{})
		}
		if err != nil {
			return nil, err
		}
		if b.TryAcquire() {
			return b, nil
		}
		skip = append(skip, b) // filled between the pick and the take
	}
}

// queueLength waits until n requests are queued.
func queueLength(t *testing.T, p *pool.Pool, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := p.Status(context.Background())
		return err == nil && st.Queue.Length == n
	}, 5*time.Second, time.Millisecond)
}

// A burst of ten times the capacity: no backend ever has more than its
// limit in flight, and every request is served or told the queue is full.
func TestQueueBurstNeverOverfillsABackend(t *testing.T) {
	const limit, backends, clients = 3, 2, 60
	p := pooltest.Start(t, pool.Config{MaxRequestsPerBackend: limit, MaxQueue: 40, QueueTimeout: 10 * time.Second},
		"http://a", "http://b")
	var most [backends]atomic.Int64
	var served, full atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			b, err := acquire(t.Context(), p)
			if errors.Is(err, pool.ErrQueueFull) {
				full.Add(1)
				return
			}
			if !assert.NoError(t, err) {
				return
			}
			i := 0
			if b.String() == "http://b" {
				i = 1
			}
			for n := b.InFlight(); ; {
				m := most[i].Load()
				if n <= m || most[i].CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond) // the backend at work
			served.Add(1)
			b.Release()
		})
	}
	wg.Wait()
	for i := range most {
		assert.LessOrEqual(t, most[i].Load(), int64(limit), "backend %d", i)
	}
	assert.Equal(t, int64(clients), served.Load()+full.Load())
	assert.Positive(t, served.Load())
	st, err := p.Status(t.Context())
	require.NoError(t, err)
	assert.Zero(t, st.Queue.Length)
	for _, b := range st.Backends {
		assert.Zero(t, b.InFlight, b.URL)
	}
}

// Waiting requests are served in the order they came, each as soon as a
// slot frees; a full queue refuses at once.
func TestQueueIsFIFOAndBounded(t *testing.T) {
	p := pooltest.Start(t, pool.Config{MaxRequestsPerBackend: 1, MaxQueue: 3}, "http://a")
	holder, err := acquire(t.Context(), p)
	require.NoError(t, err)

	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			b, err := p.Wait(t.Context(), pool.PickRequest{})
			if !assert.NoError(t, err) {
				return
			}
			order <- i
			b.Release()
		})
		queueLength(t, p, i+1) // so that they queue in this order
	}
	_, err = p.Wait(t.Context(), pool.PickRequest{})
	assert.ErrorIs(t, err, pool.ErrQueueFull)

	holder.Release()
	wg.Wait()
	close(order)
	var got []int
	for i := range order {
		got = append(got, i)
	}
	assert.Equal(t, []int{0, 1, 2}, got)
}

// A request that waits longer than the queue timeout gets ErrQueueTimeout;
// one whose client leaves gets its context's error at once and the slot goes
// to the next in line, never lost.
func TestQueueTimeoutAndLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{MaxRequestsPerBackend: 1, QueueTimeout: 5 * time.Second}, "http://a")
		holder, err := acquire(t.Context(), p)
		require.NoError(t, err)

		start := time.Now()
		_, err = p.Wait(t.Context(), pool.PickRequest{})
		assert.ErrorIs(t, err, pool.ErrQueueTimeout)
		assert.Equal(t, 5*time.Second, time.Since(start))

		leaving, leave := context.WithCancel(t.Context())
		left := make(chan error, 1)
		go func() { _, err := p.Wait(leaving, pool.PickRequest{}); left <- err }() // received below
		synctest.Wait()
		next := make(chan *pool.Backend, 1)
		go func() { b, _ := p.Wait(t.Context(), pool.PickRequest{}); next <- b }() // received below
		synctest.Wait()
		leave()
		assert.ErrorIs(t, <-left, context.Canceled)

		holder.Release()
		b := <-next
		require.NotNil(t, b, "the slot went to the next in line")
		assert.Equal(t, int64(1), b.InFlight())
		b.Release()
	})
}

// Without a limit there is nothing to queue for.
func TestNoQueueWithoutALimit(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a")
	_, err := p.Wait(t.Context(), pool.PickRequest{})
	assert.ErrorIs(t, err, pool.ErrNoBackend)
}

// A backend back from an ejection serves the queue at once, without waiting
// for a slot elsewhere to free.
func TestQueueServedWhenAnEjectionEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{MaxRequestsPerBackend: 1, QueueTimeout: time.Minute,
			Passive: &pool.PassiveHealth{ConsecutiveFailures: 1, FailureStatuses: []int{503},
				EjectionTime: 10 * time.Second, MaxEjectedPercent: 50}},
			"http://a", "http://b")
		failN(t, p, pooltest.BackendOf(t, p, "http://a"), 1)
		require.Equal(t, pool.StateEjected, pooltest.StatusOf(t, p, "http://a").State)
		holder, err := acquire(t.Context(), p)
		require.NoError(t, err)
		require.Equal(t, "http://b", holder.URL().String())

		start := time.Now()
		b, err := p.Wait(t.Context(), pool.PickRequest{})
		require.NoError(t, err)
		assert.Equal(t, "http://a", b.URL().String())
		assert.Equal(t, 10*time.Second, time.Since(start), "granted when the ejection ended")
		b.Release()
		holder.Release()
	})
}

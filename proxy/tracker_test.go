package proxy

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// wait returns once every handler has ended, not before, even while new ones
// keep starting and ending around it; and it returns at once when none runs.
func TestTrackerWaitsForTheLastHandler(t *testing.T) {
	var tr tracker
	tr.wait() // none running: returns at once

	release := make(chan struct{})
	var running sync.WaitGroup
	for range 50 {
		tr.add()
		running.Go(func() { // waited for below
			<-release
			tr.done()
		})
	}
	waited := make(chan struct{})
	go func() { tr.wait(); close(waited) }() // waited for on waited

	// Handlers that start and end while wait waits do not end the wait.
	for range 100 {
		tr.add()
		tr.done()
	}
	select {
	case <-waited:
		t.Fatal("wait returned while handlers were still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	running.Wait()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after the last handler ended")
	}
}

// Under the race detector: many handlers and several waiters at once, and
// every wait returns.
func TestTrackerUnderFire(t *testing.T) {
	var tr tracker
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				tr.add()
				tr.done()
			}
		})
	}
	for range 4 {
		wg.Go(tr.wait)
	}
	wg.Wait()
	assert.Zero(t, tr.n.Load())
}

// mutexTracker is the tracker as it was before: one process-wide mutex taken
// twice per request. Kept here as the reference the benchmark compares with.
type mutexTracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *mutexTracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *mutexTracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

// BenchmarkTracker measures what counting a handler in and out costs, with
// every core doing it at once, as every request does:
//
//	go test -run '^$' -bench Tracker -cpu 1,2 ./proxy
func BenchmarkTracker(b *testing.B) {
	b.Run("design=atomic", func(b *testing.B) {
		var tr tracker
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tr.add()
				tr.done()
			}
		})
	})
	b.Run("design=mutex", func(b *testing.B) {
		var tr mutexTracker
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tr.add()
				tr.done()
			}
		})
	})
}

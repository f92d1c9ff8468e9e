package actor_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/switchyard-proxy/switchyard/actor"
)

// A producer never waits: once the buffer is full, values are dropped and
// counted, and whatever was queued reaches the consumer in order.
func TestQueueDropsWhenFullAndDrainsInOrder(t *testing.T) {
	q := actor.NewQueue[int](3)
	for i := range 10 {
		q.Offer(i) // would hang here if Offer blocked: nobody consumes yet
	}
	assert.Equal(t, uint64(7), q.Dropped())
	assert.Equal(t, 3, q.Len())

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Drain handles what is queued, then returns
	var got []int
	flushes := 0
	q.Drain(ctx, func(v int) { got = append(got, v) }, func() { flushes++ })
	assert.Equal(t, []int{0, 1, 2}, got)
	assert.GreaterOrEqual(t, flushes, 1, "flushed on the way out")
}

// The consumer flushes when it has caught up, not after every value.
func TestQueueCaughtUpOncePerBurst(t *testing.T) {
	q := actor.NewQueue[int](8)
	for i := range 5 {
		q.Offer(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var got []int
	caughtUp := 0
	q.Drain(ctx, func(v int) {
		got = append(got, v)
	}, func() {
		caughtUp++
		cancel() // the burst is written: stop
	})
	assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
	assert.Equal(t, 2, caughtUp, "once after the burst, once on the way out")
}

func TestQueueNegativeSizePanics(t *testing.T) {
	assert.Panics(t, func() { actor.NewQueue[int](-1) })
}

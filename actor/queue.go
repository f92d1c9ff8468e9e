package actor

import (
	"context"
	"sync/atomic"
)

// A Queue carries values to one consumer goroutine without ever making a
// producer wait. When its buffer is full, Offer drops the value and counts it.
//
// It is for traffic whose sender must never be held up: the log lines of an
// owner loop, which would stop answering every caller if stderr stalled, or
// the access log of request handlers. Losing a line under overload is better
// than stalling; the count of lost lines says that it happened.
//
// The zero value is not usable; build one with NewQueue. The package starts
// no goroutine: whoever owns the consumer runs Drain.
type Queue[T any] struct {
	ch      chan T
	dropped atomic.Uint64
}

// NewQueue returns a queue that holds up to size values waiting for the
// consumer. Like make, it panics on a negative size; zero makes every Offer
// fail unless the consumer is waiting at that very moment.
func NewQueue[T any](size int) *Queue[T] {
	if size < 0 {
		panic("actor: negative queue size")
	}
	return &Queue[T]{ch: make(chan T, size)}
}

// Offer hands v to the consumer if there is room, and otherwise drops it and
// counts the drop. It never blocks. It reports whether v was queued.
func (q *Queue[T]) Offer(v T) bool {
	select {
	case q.ch <- v:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// Dropped returns how many values Offer has dropped since the queue was made.
func (q *Queue[T]) Dropped() uint64 { return q.dropped.Load() }

// C is the channel a consumer that waits for other things too receives
// from, instead of calling Drain. Only the consumer may receive from it.
func (q *Queue[T]) C() <-chan T { return q.ch }

// Len returns how many values are waiting for the consumer.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Drain is the consumer: it calls handle with each value, in order, until ctx
// ends; then it handles the values still queued and returns. After a value,
// when nothing more is waiting, it calls caughtUp (if not nil), so that a
// writer can flush once per burst rather than once per value.
//
// Values offered after Drain has returned stay queued, unhandled: stop the
// producers before ending ctx.
func (q *Queue[T]) Drain(ctx context.Context, handle func(T), caughtUp func()) {
	for {
		select {
		case v := <-q.ch:
			handle(v)
			if caughtUp != nil && len(q.ch) == 0 {
				caughtUp()
			}
		case <-ctx.Done():
			for {
				select {
				case v := <-q.ch:
					handle(v)
				default:
					if caughtUp != nil {
						caughtUp()
					}
					return
				}
			}
		}
	}
}

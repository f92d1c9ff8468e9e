// Package actor is the plumbing for a goroutine that owns some state and serves
// requests for it as messages, in the style of etcd-io/raft's node: one mailbox,
// a done channel closed when the owner has stopped, and a two-phase call (send,
// then await the reply) in which both phases also give up when the caller's
// context ends or the owner stops.
//
// The package starts no goroutines. The owner loop belongs to whoever builds on
// a Mailbox (the pool package, for this project): it receives from Inbox and
// calls Stop when it returns, after which every Send and Call returns ErrStopped
// at once and nothing can block on the mailbox forever.
package actor

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by Send, Await and Call once the owner loop has
// stopped.
var ErrStopped = errors.New("actor: stopped")

// A Mailbox carries messages of type M to one owner goroutine.
//
// The zero value is not usable; build one with NewMailbox. A Mailbox must not
// be copied after first use.
type Mailbox[M any] struct {
	in       chan M
	done     chan struct{}
	stopOnce sync.Once
}

// NewMailbox returns a mailbox that buffers up to size messages. A buffer lets
// many callers hand over their message without each waiting for the owner to
// be scheduled; zero makes every send a rendezvous with the owner.
func NewMailbox[M any](size int) *Mailbox[M] {
	if size < 0 {
		panic("actor: negative mailbox size")
	}
	return &Mailbox[M]{in: make(chan M, size), done: make(chan struct{})}
}

// Inbox is the channel the owner loop receives messages from. Only the owner
// may receive from it.
func (m *Mailbox[M]) Inbox() <-chan M { return m.in }

// Done is closed once the owner has called Stop.
func (m *Mailbox[M]) Done() <-chan struct{} { return m.done }

// Stop tells every present and future caller that the owner has stopped:
// their Send, Await and Call return ErrStopped. The owner calls it when its
// loop returns, usually with defer. Calling Stop more than once is harmless.
//
// Messages still buffered in the mailbox are dropped, never answered; their
// callers are waiting in Await and see ErrStopped instead.
func (m *Mailbox[M]) Stop() { m.stopOnce.Do(func() { close(m.done) }) }

// Send hands msg to the owner: phase one of a call, and the whole of a
// fire-and-forget message. It returns ctx.Err() if ctx ends first and
// ErrStopped if the owner has stopped, never blocking past either.
func (m *Mailbox[M]) Send(ctx context.Context, msg M) error {
	// Checked first because select picks at random among ready cases: without
	// this, a send into a buffer with room could succeed after the owner had
	// stopped, and a message would be accepted that nobody will ever read.
	select {
	case <-m.done:
		return ErrStopped
	default:
	}
	// Likewise a caller that has already given up sends nothing: the owner
	// would do work whose answer nobody reads.
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case m.in <- msg:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return ErrStopped
	}
}

// Await waits for the owner's reply to a message already sent: phase two of a
// call. reply must be the channel the message carried, made by the caller with
// capacity 1, so that the owner's reply never blocks the owner even when the
// caller has given up waiting.
func Await[R any, M any](ctx context.Context, m *Mailbox[M], reply <-chan R) (R, error) {
	var zero R
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-m.done:
		// The owner may have answered and then stopped; both cases are ready and
		// select chose this one. An answer that was given is worth returning.
		select {
		case r := <-reply:
			return r, nil
		default:
			return zero, ErrStopped
		}
	}
}

// Call sends msg and waits for the reply the owner sends on reply, which must
// be the capacity-1 channel that msg carries. It returns ctx.Err() or
// ErrStopped if either ends the wait first.
func Call[R any, M any](ctx context.Context, m *Mailbox[M], msg M, reply <-chan R) (R, error) {
	if cap(reply) < 1 {
		panic("actor: reply channel must be buffered")
	}
	if err := m.Send(ctx, msg); err != nil {
		var zero R
		return zero, err
	}
	return Await(ctx, m, reply)
}

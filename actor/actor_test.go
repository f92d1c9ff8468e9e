package actor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/actor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// addMsg asks the counter owner to add n and reply with the new total.
type addMsg struct {
	n     int
	reply chan int
}

// counter is the smallest owner loop there is: its state is a local variable
// and it stops when ctx ends.
func counter(ctx context.Context, mb *actor.Mailbox[addMsg], hold <-chan struct{}) {
	defer mb.Stop()
	total := 0
	for {
		select {
		case m := <-mb.Inbox():
			if hold != nil {
				<-hold
			}
			total += m.n
			m.reply <- total
		case <-ctx.Done():
			return
		}
	}
}

func add(ctx context.Context, mb *actor.Mailbox[addMsg], n int) (int, error) {
	reply := make(chan int, 1)
	return actor.Call(ctx, mb, addMsg{n: n, reply: reply}, reply)
}

func TestCallGetsReplies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	mb := actor.NewMailbox[addMsg](0)
	done := make(chan struct{})
	go func() { defer close(done); counter(ctx, mb, nil) }() // waited for below
	t.Cleanup(func() { cancel(); <-done })

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := add(context.Background(), mb, 2)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	got, err := add(context.Background(), mb, 0)
	require.NoError(t, err)
	assert.Equal(t, 100, got)
}

func TestEveryCallReturnsErrStoppedOnceStopped(t *testing.T) {
	for _, size := range []int{0, 8} {
		ctx, cancel := context.WithCancel(context.Background())
		mb := actor.NewMailbox[addMsg](size)
		done := make(chan struct{})
		go func() { defer close(done); counter(ctx, mb, nil) }() // waited for below
		cancel()
		<-done

		// Even with room in the buffer, nothing is accepted after Stop, and
		// nothing blocks: the background context never ends.
		for range 100 {
			_, err := add(context.Background(), mb, 1)
			require.ErrorIs(t, err, actor.ErrStopped)
			require.ErrorIs(t, mb.Send(context.Background(), addMsg{reply: make(chan int, 1)}), actor.ErrStopped)
		}
	}
}

func TestCallerContextEndsBothPhases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		hold := make(chan struct{})
		mb := actor.NewMailbox[addMsg](0)
		go counter(ctx, mb, hold) // ends with the bubble's cancel above

		// Phase two: the owner has the message but holds its reply.
		callCtx, callCancel := context.WithTimeout(context.Background(), time.Second)
		defer callCancel()
		_, err := add(callCtx, mb, 1)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		// Phase one: the owner is still busy with the first message, so with an
		// unbuffered mailbox the second cannot even be handed over.
		sendCtx, sendCancel := context.WithTimeout(context.Background(), time.Second)
		defer sendCancel()
		_, err = add(sendCtx, mb, 1)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		// The owner was never blocked by the caller that left: its reply went
		// into the capacity-1 channel, and it keeps serving.
		close(hold)
		got, err := add(context.Background(), mb, 5)
		require.NoError(t, err)
		assert.Equal(t, 6, got)
	})
}

func TestAwaitPrefersAReplyGivenBeforeStop(t *testing.T) {
	mb := actor.NewMailbox[addMsg](1)
	reply := make(chan int, 1)
	require.NoError(t, mb.Send(context.Background(), addMsg{n: 1, reply: reply}))
	// Play the owner by hand: answer, then stop.
	m := <-mb.Inbox()
	m.reply <- 7
	mb.Stop()
	for range 100 { // select's choice is random; the answer must win every time
		got, err := actor.Await(context.Background(), mb, reply)
		require.NoError(t, err)
		require.Equal(t, 7, got)
		reply <- 7
	}
}

func TestBufferedMessagesLeftAtStopAreNotAnswered(t *testing.T) {
	mb := actor.NewMailbox[addMsg](4)
	reply := make(chan int, 1)
	require.NoError(t, mb.Send(context.Background(), addMsg{n: 1, reply: reply}))
	mb.Stop()
	_, err := actor.Await(context.Background(), mb, reply)
	assert.ErrorIs(t, err, actor.ErrStopped)
}

func TestCallPanicsOnUnbufferedReply(t *testing.T) {
	mb := actor.NewMailbox[addMsg](1)
	reply := make(chan int)
	assert.Panics(t, func() { _, _ = actor.Call(context.Background(), mb, addMsg{reply: reply}, reply) })
}

package actor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-proxy/switchyard/actor"
)

// incr is the one message of a tiny counter actor: add by and reply with the
// new total on reply, which the caller makes with capacity 1.
type incr struct {
	by    int
	reply chan int
}

// runCounter is the owner loop. Its state, total, is a local variable that no
// other goroutine can reach; the only way in is a message.
func runCounter(ctx context.Context, mb *actor.Mailbox[incr]) {
	defer mb.Stop() // from now on every Send and Call returns ErrStopped
	total := 0
	for {
		select {
		case m := <-mb.Inbox():
			total += m.by
			m.reply <- total // never blocks: the channel has room for one reply
		case <-ctx.Done():
			return
		}
	}
}

// increment is what a caller writes: build the message with its reply channel,
// then Call sends it and waits for the answer.
func increment(ctx context.Context, mb *actor.Mailbox[incr], by int) (int, error) {
	reply := make(chan int, 1)
	return actor.Call(ctx, mb, incr{by: by, reply: reply}, reply)
}

// A counter owned by one goroutine: two calls get their answers, a caller
// whose context has ended gives up without blocking, and once the owner has
// stopped every call says so.
func Example() {
	mb := actor.NewMailbox[incr](0)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); runCounter(ctx, mb) }() // waited for below

	fmt.Println(increment(context.Background(), mb, 2))
	fmt.Println(increment(context.Background(), mb, 3))

	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := increment(gaveUp, mb, 100)
	fmt.Println(err)

	stop()
	<-done
	_, err = increment(context.Background(), mb, 1)
	fmt.Println(errors.Is(err, actor.ErrStopped))
	// Output:
	// 2 <nil>
	// 5 <nil>
	// context canceled
	// true
}

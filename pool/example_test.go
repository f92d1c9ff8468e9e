package pool_test

import (
	"context"
	"fmt"

	"github.com/switchyard-proxy/switchyard/pool"
)

// The life of one backend as the proxy sees it: the owner loop picks it, the
// request counts itself in flight on the backend record (an atomic, no
// message), and a removal while the request runs lets it drain rather than
// cutting it off.
func Example() {
	p, err := pool.New(pool.Config{Strategy: pool.RoundRobin}, pool.URLs("http://10.0.0.1:8080", "http://10.0.0.2:8080")...)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // the owner loop; waited for below

	// A request picks a backend and counts itself in flight on it.
	b, _ := p.Pick(ctx, nil)
	b.Acquire()
	if b.Removed() { // removed between the pick and the Acquire: pick again
		b.Release()
	}
	fmt.Println("picked", b, "in flight:", b.InFlight())

	// The operator removes it while the request is still running.
	st, _ := p.Remove(ctx, b.String())
	fmt.Println("removed:", st.State, "with", st.InFlight, "in flight")

	// New requests go elsewhere; the running one finishes normally.
	next, _ := p.Pick(ctx, nil)
	fmt.Println("next pick:", next)
	b.Release()

	all, _ := p.Status(ctx)
	fmt.Println("backends listed:", len(all.Backends))

	stop()
	fmt.Println(<-done)
	// Output:
	// picked http://10.0.0.1:8080 in flight: 1
	// removed: draining with 1 in flight
	// next pick: http://10.0.0.2:8080
	// backends listed: 1
	// <nil>
}

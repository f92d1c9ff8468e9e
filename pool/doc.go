// Package pool holds the proxy's backends and the one goroutine that owns
// their state.
//
// Everything mutable about the pool (which backends exist, which are up, why
// and since when, the round-robin cursor, the health-check streaks, the
// counters) lives in the locals of Pool.Run, the owner loop. Other goroutines
// never touch that state: they call methods on *Pool, which send a typed
// message (see messages.go) and, where there is an answer, wait for it. The
// only shared memory is on each Backend: atomics that the request path
// updates without asking the owner (the in-flight count, which
// least-connections balances on, and counters for metrics) and the removed
// flag, which closes the gap between a pick and its Acquire.
//
// Goroutines: the package starts none. Pool.Run is the owner loop; the caller
// runs it (cmd/proxy does, in its errgroup) and it returns when its context
// ends. From then on every method returns actor.ErrStopped at once.
package pool

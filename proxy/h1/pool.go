package h1

import (
	"sync/atomic"
	"time"
)

// hostPool holds the idle connections to one host:port.
//
// It is the only state that requests share, so it takes no lock. The idle
// connections sit in a fixed array of MaxIdleConnsPerHost slots, each an
// atomic pointer: a connection is taken by swapping its slot to nil with a
// compare-and-swap, and whoever wins that swap owns it, be it a request, the
// connection's idle timer or CloseIdleConnections. A mutex around a list
// would do the same work inside a critical section shared by every request
// to the backend; when two requests meet in it, one of them parks, and
// parking and waking goroutines is the very cost this package removes.
//
// Both get and put scan from the first slot, so the connections in the low
// slots are the ones reused and those in high slots are reused only when the
// low ones are busy. That is the property LIFO reuse is wanted for: a load
// that needs k connections keeps reusing the same k, and the others, left
// idle, age out at IdleConnTimeout. It is not strictly last-in-first-out
// (a true lock-free stack that reuses its nodes needs a double-word
// compare-and-swap against the ABA problem, or an allocation per put), and
// staleness does not depend on it: a connection is checked before reuse.
// Under load the scans are short, since busy connections leave the low slots
// empty for the next put and the idle ones are found near the start.
type hostPool struct {
	addr        string
	idleTimeout time.Duration
	slots       []atomic.Pointer[conn]
	// n counts the slots taken or reserved by a put under way. A put
	// reserves before it stores, so that at most len(slots) connections are
	// ever kept and a reserving put always finds a free slot. get reads it to
	// skip the scan when there is nothing idle.
	n atomic.Int64
	// live counts the connections open, idle or in use. A pool is
	// forgotten (taken out of the Transport's map) once it has had none for
	// IdleConnTimeout, so that the map does not keep a pool for every
	// address ever seen (backends come and go with discovery), and a
	// backend that closes every connection, or one that cannot be reached,
	// keeps one pool rather than having one made and dropped per request.
	// A request that had already found the pool may still open a
	// connection in it as it is forgotten; that connection is used, kept
	// idle and closed by its timer as any other, only not found again by a
	// later request, which makes a new pool.
	live atomic.Int64
	// forget takes the pool out of the Transport's map if it is still
	// there; linger runs it, IdleConnTimeout after release. Both are nil in
	// tests that build a pool alone.
	forget func()
	linger *time.Timer
}

func newHostPool(addr string, maxIdle int, idleTimeout time.Duration) *hostPool {
	return &hostPool{addr: addr, idleTimeout: idleTimeout, slots: make([]atomic.Pointer[conn], maxIdle)}
}

// get takes an idle connection, or returns nil. It may miss a connection
// being put at the same moment; the caller then dials, which costs a
// connection but is never wrong.
func (p *hostPool) get() *conn {
	if p.n.Load() <= 0 {
		return nil
	}
	for i := range p.slots {
		if c := p.slots[i].Load(); c != nil && p.slots[i].CompareAndSwap(c, nil) {
			p.n.Add(-1)
			return c
		}
	}
	return nil
}

// put makes c idle. It reports false, keeping nothing, when the pool is
// full; the caller then closes c.
func (p *hostPool) put(c *conn) bool {
	if p.n.Add(1) > int64(len(p.slots)) {
		p.n.Add(-1)
		return false
	}
	c.reused = true
	for {
		for i := range p.slots {
			if p.slots[i].Load() == nil && p.slots[i].CompareAndSwap(nil, c) {
				// Armed after c is visible, never before: a timer that fired
				// before the store would miss c and leave it idle with no
				// timer. Armed after, it may fire for c while someone else
				// has taken it (then it finds nothing and does nothing) or
				// close c a little early, never late.
				c.idle.Reset(p.idleTimeout)
				return true
			}
		}
		// Every slot looked taken while others came and went. With at most
		// len(slots) reservations one is free at any instant: look again.
	}
}

// remove takes c out of the pool if it is idle there, reporting whether it
// was. The idle timer calls it; it is not on the request path.
func (p *hostPool) remove(c *conn) bool {
	for i := range p.slots {
		if p.slots[i].CompareAndSwap(c, nil) {
			p.n.Add(-1)
			return true
		}
	}
	return false
}

func (p *hostPool) closeIdle() {
	for i := range p.slots {
		if c := p.slots[i].Swap(nil); c != nil {
			p.n.Add(-1)
			c.close()
		}
	}
}

// release says that the pool has no connection left: the last one closed,
// or a dial failed while there was none. Unless a connection is opened
// meanwhile, the pool is forgotten IdleConnTimeout from now, as an idle
// connection would be closed.
func (p *hostPool) release() {
	if p.linger != nil {
		p.linger.Reset(p.idleTimeout)
	}
}

// lapse runs on linger's goroutine.
func (p *hostPool) lapse() {
	if p.live.Load() == 0 {
		p.forget()
	}
}

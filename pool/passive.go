package pool

import "sync/atomic"

// passivePolicy is PassiveHealth made quick to consult on the request path:
// the failure statuses as a bitmap.
type passivePolicy struct {
	PassiveHealth
	statuses [600/64 + 1]uint64
}

func newPassivePolicy(ph *PassiveHealth) *passivePolicy {
	if ph == nil {
		return nil
	}
	p := &passivePolicy{PassiveHealth: *ph}
	for _, s := range ph.FailureStatuses {
		p.statuses[s/64] |= 1 << (s % 64)
	}
	return p
}

// fails reports whether a response with this status counts as a failure.
func (p *passivePolicy) fails(status int) bool {
	return status > 0 && status < 600 && p.statuses[status/64]&(1<<(status%64)) != 0
}

// A ticket is a queued request's claim on a backend slot. The owner grants
// it, or its request gives up; whichever comes first wins the ticket's state,
// an atomic, so that a grant never goes to a request that has left without
// being given back.
type ticket struct {
	state   atomic.Int32 // ticketWaiting, then ticketGranted or ticketAbandoned
	b       *Backend     // written before state becomes ticketGranted
	granted chan struct{}
}

const (
	ticketWaiting int32 = iota
	ticketGranted
	ticketAbandoned
)

func newTicket() *ticket { return &ticket{granted: make(chan struct{})} }

// grant gives b, already acquired, to the ticket's request; it reports false
// if the request has given up, in which case b is the owner's to release.
func (t *ticket) grant(b *Backend) bool {
	t.b = b
	if !t.state.CompareAndSwap(ticketWaiting, ticketGranted) {
		return false
	}
	close(t.granted)
	return true
}

// abandon gives up the ticket; it reports false if it was granted first, in
// which case t.b is the caller's, acquired, and granted is closed.
func (t *ticket) abandon() bool {
	if t.state.CompareAndSwap(ticketWaiting, ticketAbandoned) {
		return true
	}
	<-t.granted // the grant's close follows its state change
	return false
}

func (t *ticket) abandoned() bool { return t.state.Load() == ticketAbandoned }

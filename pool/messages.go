package pool

import "net/url"

// The owner loop's messages: one struct per operation, all of them here, so
// that this file is the complete list of what can happen to the pool's state.
// Messages that expect an answer carry a reply channel of capacity 1, made by
// the caller, so that the loop's reply never blocks the loop even when the
// caller has stopped waiting. Besides its inbox, the loop hears two things
// that are not messages: the doorbell that Release rings while requests are
// queued, and the timer of the next ejection to end.
type message interface{ isPoolMsg() }

// result is what a reply channel carries.
type result[T any] struct {
	val T
	err error
}

// pickMsg asks for a backend for a request.
type pickMsg struct {
	req   PickRequest
	reply chan result[*Backend]
}

// queueMsg puts a request in the queue for a backend slot, or answers at
// once that it is full or pointless. The grant itself comes on the ticket.
type queueMsg struct {
	req   PickRequest
	t     *ticket
	reply chan error
}

// markDownMsg takes b out of rotation at once, whatever the health
// thresholds say: the proxy could not connect to it. Fire-and-forget.
type markDownMsg struct {
	b      *Backend
	reason string
}

// ejectMsg says that b has failed Passive.ConsecutiveFailures requests in a
// row; the owner ejects it unless too many are ejected already.
// Fire-and-forget.
type ejectMsg struct {
	b      *Backend
	reason string
}

// recoveredMsg says that b, back from an ejection, has served a success:
// its run of ejections is over. Fire-and-forget.
type recoveredMsg struct {
	b *Backend
}

// probeMsg reports one health check of b. The loop counts consecutive results
// and changes b's state only when a threshold is reached. Fire-and-forget.
type probeMsg struct {
	b *Backend
	r ProbeResult
}

// addMsg adds a backend, not in rotation until a probe passes.
type addMsg struct {
	s     spec
	reply chan result[added]
}

type added struct {
	b  *Backend
	st BackendStatus
}

// removeMsg takes a backend out of rotation and lets it drain. An
// operator's removal refuses a backend that discovery owns.
type removeMsg struct {
	u        *url.URL
	operator bool
	reply    chan result[BackendStatus]
}

// sourceMsg sets the members of one discovery source to specs.
type sourceMsg struct {
	source string
	specs  []spec
	reply  chan Applied
}

// updateMsg sets a member's weight, its admin state, or both at once.
type updateMsg struct {
	u      *url.URL
	weight *int
	admin  *AdminState
	reply  chan result[BackendStatus]
}

// applyMsg is a reload's change, checked, applied as one.
type applyMsg struct {
	cfg    *Config // nil: keep the settings
	add    []spec
	remove []*url.URL
	update []spec
	reply  chan Applied
}

// statusMsg asks for a snapshot of every backend.
type statusMsg struct {
	reply chan Status
}

// backendsMsg asks for the backends to health-check: every member that is
// not in maintenance (draining ones are not members), or with downOnly
// those of them that are down or ejected.
type backendsMsg struct {
	downOnly bool
	reply    chan []*Backend
}

func (pickMsg) isPoolMsg()      {}
func (queueMsg) isPoolMsg()     {}
func (markDownMsg) isPoolMsg()  {}
func (ejectMsg) isPoolMsg()     {}
func (recoveredMsg) isPoolMsg() {}
func (probeMsg) isPoolMsg()     {}
func (addMsg) isPoolMsg()       {}
func (removeMsg) isPoolMsg()    {}
func (sourceMsg) isPoolMsg()    {}
func (updateMsg) isPoolMsg()    {}
func (applyMsg) isPoolMsg()     {}
func (statusMsg) isPoolMsg()    {}
func (backendsMsg) isPoolMsg()  {}

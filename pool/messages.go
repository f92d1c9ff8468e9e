package pool

import "net/url"

// The owner loop's messages: one struct per operation, all of them here, so
// that this file is the complete list of what can happen to the pool's state.
// Messages that expect an answer carry a reply channel of capacity 1, made by
// the caller, so that the loop's reply never blocks the loop even when the
// caller has stopped waiting.
type message interface{ isPoolMsg() }

// result is what a reply channel carries.
type result[T any] struct {
	val T
	err error
}

// pickMsg asks for a backend that is up and not in skip.
type pickMsg struct {
	skip  []*Backend
	reply chan result[*Backend]
}

// markDownMsg takes b out of rotation at once, whatever the health
// thresholds say: the proxy could not connect to it. Fire-and-forget.
type markDownMsg struct {
	b      *Backend
	reason string
}

// probeMsg reports one health check of b. The loop counts consecutive results
// and changes b's state only when a threshold is reached. Fire-and-forget.
type probeMsg struct {
	b *Backend
	r ProbeResult
}

// addMsg adds a backend, not in rotation until a probe passes.
type addMsg struct {
	u     *url.URL
	reply chan result[added]
}

type added struct {
	b  *Backend
	st BackendStatus
}

// removeMsg takes a backend out of rotation and lets it drain.
type removeMsg struct {
	u     *url.URL
	reply chan result[BackendStatus]
}

// statusMsg asks for a snapshot of every backend.
type statusMsg struct {
	reply chan Status
}

// backendsMsg asks for the backends to health-check: every member that is not
// draining, up or down.
type backendsMsg struct {
	reply chan []*Backend
}

func (pickMsg) isPoolMsg()     {}
func (markDownMsg) isPoolMsg() {}
func (probeMsg) isPoolMsg()    {}
func (addMsg) isPoolMsg()      {}
func (removeMsg) isPoolMsg()   {}
func (statusMsg) isPoolMsg()   {}
func (backendsMsg) isPoolMsg() {}

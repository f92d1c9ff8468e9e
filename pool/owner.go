package pool

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"
)

// owner is the state of the loop that Pool.Run runs. Only that goroutine
// touches it; everything else asks through the messages in messages.go.
type owner struct {
	cfg Config
	sel selector
	log *slog.Logger
	// members are the backends in the pool, in the order they were added,
	// which is the rotation order.
	members []*member
	// cursor is the index in members that the next pick considers first.
	cursor int
	// draining are removed backends with requests still in flight.
	draining []*member
}

// newOwner builds the loop's state: the configured backends, up, as
// HAProxy and nginx start them. Pool.Run and the tests both build it here,
// so that a test drives exactly the state the loop starts from.
func newOwner(cfg Config, initial []*url.URL, log *slog.Logger) *owner {
	o := &owner{cfg: cfg, sel: cfg.Strategy.selector(), log: log}
	for _, u := range initial {
		mem := &member{b: newBackend(u)}
		o.enter(mem, StateUp, "configured", CauseConfigured)
		o.members = append(o.members, mem)
	}
	return o
}

// run serves messages until ctx ends. It never does I/O and never blocks
// on anything but its inbox: every reply goes on a channel with room for it.
func (o *owner) run(ctx context.Context, inbox <-chan message) {
	for {
		select {
		case m := <-inbox:
			o.handle(m)
		case <-ctx.Done():
			return
		}
	}
}

// handle applies one message. The switch is the whole of what can happen
// to the pool's state.
func (o *owner) handle(msg message) {
	switch m := msg.(type) {
	case pickMsg:
		m.reply <- o.pick(m.skip)
	case markDownMsg:
		if mem := o.find(m.b); mem != nil {
			mem.failures++
			o.set(mem, StateDown, m.reason, CauseConnectionFailure)
		}
	case probeMsg:
		if mem := o.find(m.b); mem != nil {
			o.probe(mem, m.r)
		}
	case addMsg:
		m.reply <- o.add(m)
	case removeMsg:
		m.reply <- o.remove(m)
	case statusMsg:
		m.reply <- o.status()
	case backendsMsg:
		bs := make([]*Backend, len(o.members))
		for i, mem := range o.members {
			bs[i] = mem.b
		}
		m.reply <- bs
	default:
		panic(fmt.Sprintf("pool: unknown message %T", msg))
	}
}

func (o *owner) pick(skip []*Backend) result[*Backend] {
	i := o.sel(o.members, o.cursor, skip)
	if i < 0 {
		return result[*Backend]{err: ErrNoBackend}
	}
	o.cursor = (i + 1) % len(o.members)
	mem := o.members[i]
	mem.requests++
	return result[*Backend]{val: mem.b}
}

func (o *owner) probe(mem *member, r ProbeResult) {
	mem.observeCheck(r.Duration)
	reason := r.Reason
	if r.OK {
		mem.checksPassed++
		mem.passes, mem.fails = mem.passes+1, 0
		if mem.state == StateDown && mem.passes >= o.cfg.HealthyThreshold {
			o.set(mem, StateUp, reason, CauseHealthCheck)
		}
		return
	}
	mem.checksFailed++
	mem.passes, mem.fails = 0, mem.fails+1
	mem.failures++
	switch {
	case mem.state == StateUp && mem.fails >= o.cfg.UnhealthyThreshold:
		o.set(mem, StateDown, reason, CauseHealthCheck)
	case mem.state == StateDown:
		// Still down, perhaps for a new reason: an operator looking at a
		// backend that never came up wants the latest, not "added".
		mem.reason = reason
	}
}

// set moves mem to state, logging a change. The streak restarts so that the
// thresholds count from the change.
func (o *owner) set(mem *member, state State, reason string, cause Cause) {
	if mem.state == state {
		return
	}
	o.log.Info("backend state changed", "backend", mem.b.key,
		"from", string(mem.state), "to", string(state), "reason", reason)
	o.enter(mem, state, reason, cause)
}

// enter puts mem in state and counts the change.
func (o *owner) enter(mem *member, state State, reason string, cause Cause) {
	mem.state, mem.reason, mem.since = state, reason, time.Now()
	mem.passes, mem.fails = 0, 0
	if mem.changes == nil {
		mem.changes = make(map[changeKey]uint64)
	}
	mem.changes[changeKey{state, cause}]++
}

func (o *owner) add(m addMsg) result[added] {
	o.prune()
	key := m.u.String()
	if o.index(key) >= 0 {
		return result[added]{err: fmt.Errorf("%w: %s", ErrExists, key)}
	}
	var mem *member
	// A backend that is draining comes back as the same record, so that its
	// in-flight requests are still counted against it.
	for i, d := range o.draining {
		if d.b.key == key {
			mem = d
			o.draining = append(o.draining[:i], o.draining[i+1:]...)
			break
		}
	}
	if mem == nil {
		mem = &member{b: newBackend(m.u)}
	}
	mem.b.removed.Store(false)
	o.enter(mem, StateDown, "added; waiting for a health check to pass", CauseAdded)
	o.members = append(o.members, mem)
	o.log.Info("backend added", "backend", key)
	return result[added]{val: added{b: mem.b, st: mem.status()}}
}

func (o *owner) remove(m removeMsg) result[BackendStatus] {
	o.prune()
	key := m.u.String()
	i := o.index(key)
	if i < 0 {
		return result[BackendStatus]{err: fmt.Errorf("%w: %s", ErrNotFound, key)}
	}
	mem := o.removeAt(i)
	mem.b.removed.Store(true) // before reading the count: see Backend.Removed
	o.log.Info("backend removed", "backend", key, "in_flight", mem.b.InFlight())
	o.enter(mem, StateDraining, "removed", CauseRemoved)
	if mem.b.InFlight() > 0 {
		o.draining = append(o.draining, mem)
	} else {
		mem.state = StateRemoved
	}
	return result[BackendStatus]{val: mem.status()}
}

// removeAt deletes members[i] and keeps the cursor on the member it pointed
// at, so that removing a backend neither skips nor repeats any other in the
// rotation.
func (o *owner) removeAt(i int) *member {
	mem := o.members[i]
	o.members = append(o.members[:i], o.members[i+1:]...)
	if i < o.cursor {
		o.cursor--
	}
	if o.cursor >= len(o.members) {
		o.cursor = 0
	}
	return mem
}

func (o *owner) status() Status {
	o.prune()
	st := Status{
		Strategy: o.cfg.Strategy,
		Backends: make([]BackendStatus, 0, len(o.members)+len(o.draining)),
		Members:  len(o.members),
		Draining: len(o.draining),
	}
	for _, mem := range o.members {
		if mem.state == StateUp {
			st.Up++
		}
		st.Backends = append(st.Backends, mem.status())
	}
	for _, mem := range o.draining {
		st.Backends = append(st.Backends, mem.status())
	}
	return st
}

// prune forgets draining backends whose last request has finished. It runs
// whenever the list is about to be read or searched, rather than on a timer:
// nobody can observe a drained backend in between.
func (o *owner) prune() {
	o.draining = slices.DeleteFunc(o.draining, func(m *member) bool { return m.b.InFlight() <= 0 })
}

func (o *owner) index(key string) int {
	for i, mem := range o.members {
		if mem.b.key == key {
			return i
		}
	}
	return -1
}

// find returns the member holding b, or nil if b has been removed (a report
// about it arrived late) or belongs to another pool.
func (o *owner) find(b *Backend) *member {
	for _, mem := range o.members {
		if mem.b == b {
			return mem
		}
	}
	return nil
}

package pool

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// State is where a backend stands in the pool.
type State string

const (
	// StateUp: in rotation.
	StateUp State = "up"
	// StateDown: out of rotation until health checks pass.
	StateDown State = "down"
	// StateDraining: removed; listed until its in-flight requests finish.
	StateDraining State = "draining"
	// StateRemoved: removed with nothing in flight; gone from the pool.
	StateRemoved State = "removed"
)

// Cause says what moved a backend into a state: a bounded set, so that it
// can label a metric where the free-text Reason cannot.
type Cause string

const (
	CauseConfigured        Cause = "configured"
	CauseAdded             Cause = "added"
	CauseRemoved           Cause = "removed"
	CauseHealthCheck       Cause = "health_check"
	CauseConnectionFailure Cause = "connection_failure"
	CauseManual            Cause = "manual"
)

// Change counts a backend's moves into one state for one cause.
type Change struct {
	To    State
	Cause Cause
	Count uint64
}

// CheckDurationBuckets are the upper bounds, in seconds, of the buckets of
// BackendStatus.CheckDurations.
var CheckDurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Histogram is a cumulative histogram: Buckets[i] counts the observations
// at or below CheckDurationBuckets[i].
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets []uint64
}

// BackendStatus is a snapshot of one backend.
type BackendStatus struct {
	URL      string
	State    State
	InFlight int64
	// Reason and Since describe the last change of State.
	Reason string
	Since  time.Time
	// Requests counts picks of this backend; Failures counts failed health
	// checks and connection failures reported by the proxy.
	Requests uint64
	Failures uint64

	// Counted by the request path: responses by status class (index 0 is
	// 1xx), attempts retried elsewhere, attempts that could not connect.
	Responses          [5]uint64
	Retries            uint64
	ConnectionFailures uint64

	// ChecksPassed and ChecksFailed count health checks, CheckDurations
	// times them, and Changes counts state changes by cause.
	ChecksPassed, ChecksFailed uint64
	CheckDurations             Histogram
	Changes                    []Change
}

// Alive reports whether the backend is in rotation.
func (s BackendStatus) Alive() bool { return s.State == StateUp }

// Status is a snapshot of the pool.
type Status struct {
	Strategy Strategy
	// Backends lists the members in rotation order, then those draining.
	Backends []BackendStatus
	// Up, Members and Draining count the backends in rotation, in the pool
	// (up or down) and draining.
	Up, Members, Draining int
}

// member is the owner loop's record of one backend.
type member struct {
	b      *Backend
	state  State
	reason string
	since  time.Time
	// passes and fails are the current streak of health-check results; only
	// one of them is non-zero.
	passes, fails int
	requests      uint64
	failures      uint64

	checksPassed, checksFailed uint64
	checkCount                 uint64
	checkSum                   float64
	checkBuckets               []uint64 // not cumulative; made when first needed
	changes                    map[changeKey]uint64
}

type changeKey struct {
	to    State
	cause Cause
}

func (m *member) status() BackendStatus {
	b := m.b
	st := BackendStatus{
		URL: b.key, State: m.state, InFlight: b.InFlight(),
		Reason: m.reason, Since: m.since, Requests: m.requests, Failures: m.failures,
		Retries: b.retries.Load(), ConnectionFailures: b.connFailures.Load(),
		ChecksPassed: m.checksPassed, ChecksFailed: m.checksFailed,
		CheckDurations: Histogram{Count: m.checkCount, Sum: m.checkSum, Buckets: make([]uint64, len(CheckDurationBuckets))},
	}
	for i := range b.responses {
		st.Responses[i] = b.responses[i].Load()
	}
	var cum uint64
	for i, n := range m.checkBuckets {
		cum += n
		st.CheckDurations.Buckets[i] = cum
	}
	for k, n := range m.changes {
		st.Changes = append(st.Changes, Change{To: k.to, Cause: k.cause, Count: n})
	}
	slices.SortFunc(st.Changes, func(a, b Change) int {
		return strings.Compare(string(a.To)+string(a.Cause), string(b.To)+string(b.Cause))
	})
	return st
}

// observeCheck adds a health check's duration to mem's histogram.
func (m *member) observeCheck(d time.Duration) {
	if m.checkBuckets == nil {
		m.checkBuckets = make([]uint64, len(CheckDurationBuckets))
	}
	secs := d.Seconds()
	m.checkCount++
	m.checkSum += secs
	if i, _ := slices.BinarySearch(CheckDurationBuckets, secs); i < len(m.checkBuckets) {
		m.checkBuckets[i]++
	}
}

// owner is the state of the loop in Pool.Run. Only that goroutine touches it.
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

func (o *owner) handle(msg message) {
	switch m := msg.(type) {
	case pickMsg:
		m.reply <- o.pick(m.skip)
	case markMsg:
		if mem := o.find(m.b); mem != nil {
			if m.up {
				o.set(mem, StateUp, m.reason, CauseManual)
			} else {
				mem.failures++
				o.set(mem, StateDown, m.reason, CauseConnectionFailure)
			}
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

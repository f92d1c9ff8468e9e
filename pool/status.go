package pool

import "time"

// The pool's snapshot types: what Status returns, and what the admin API and
// the metrics collector render. They are copies, safe to keep and to read
// from any goroutine.

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

package pool

import "time"

// The pool's snapshot types: what Status returns, and what the admin API and
// the metrics collector render. They are copies, safe to keep and to read
// from any goroutine.

// State is where a backend stands in the pool, as health decides it.
type State string

const (
	// StateUp: healthy; in rotation unless its admin state says otherwise.
	StateUp State = "up"
	// StateDown: out of rotation until health checks pass.
	StateDown State = "down"
	// StateEjected: out of rotation for a while because live traffic
	// failed on it (passive health); back when the time is up or a health
	// check passes.
	StateEjected State = "ejected"
	// StateDraining: removed; listed until its in-flight requests finish.
	StateDraining State = "draining"
	// StateRemoved: removed with nothing in flight; gone from the pool.
	StateRemoved State = "removed"
)

// AdminState is what an operator has said about a backend, apart from its
// health.
type AdminState string

const (
	// AdminReady: health decides (the default).
	AdminReady AdminState = "ready"
	// AdminDrain: still a member and health-checked, but gets no new
	// requests except those that a sticky session sends to it; what is in
	// flight finishes (HAProxy's drain).
	AdminDrain AdminState = "drain"
	// AdminMaintenance: no requests at all, sticky ones included, and no
	// health checks.
	AdminMaintenance AdminState = "maintenance"
)

// ParseAdminState returns the AdminState named s.
func ParseAdminState(s string) (AdminState, error) {
	switch a := AdminState(s); a {
	case AdminReady, AdminDrain, AdminMaintenance:
		return a, nil
	}
	return "", ErrInvalidAdminState
}

// Cause says what moved a backend into a state: a bounded set, so that it
// can label a metric where the free-text Reason cannot.
type Cause string

const (
	CauseConfigured        Cause = "configured"
	CauseAdded             Cause = "added"
	CauseRemoved           Cause = "removed"
	CauseHealthCheck       Cause = "health_check"
	CauseConnectionFailure Cause = "connection_failure"
	CausePassiveHealth     Cause = "passive_health"
	CauseEjectionOver      Cause = "ejection_over"
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

// Check is the outcome of a backend's last health check.
type Check struct {
	At       time.Time
	Duration time.Duration
	OK       bool
	Reason   string
}

// BackendStatus is a snapshot of one backend.
type BackendStatus struct {
	URL        string
	State      State
	AdminState AdminState
	// Source names the discovery source the backend comes from; empty for
	// one from the config file or the admin API.
	Source   string
	InFlight int64
	// Weight is the configured weight; EffectiveWeight is what the
	// strategies use now: less than Weight during slow start.
	Weight          int
	EffectiveWeight float64
	// Reason and Since describe the last change of State.
	Reason string
	Since  time.Time
	// Requests counts picks of this backend; Failures counts failed health
	// checks and connection failures reported by the proxy.
	Requests uint64
	Failures uint64
	// Ejections counts passive-health ejections since the backend joined.
	Ejections uint64

	// Counted by the request path: responses by status class (index 0 is
	// 1xx), attempts retried elsewhere, attempts that could not connect,
	// responses cut short.
	Responses          [5]uint64
	Retries            uint64
	ConnectionFailures uint64
	Truncated          uint64

	// LastCheck is the last health check, zero if there has been none.
	LastCheck Check
	// ChecksPassed and ChecksFailed count health checks, CheckDurations
	// times them, and Changes counts state changes by cause.
	ChecksPassed, ChecksFailed uint64
	CheckDurations             Histogram
	Changes                    []Change
}

// Alive reports whether the backend takes new requests: healthy and ready.
func (s BackendStatus) Alive() bool { return s.State == StateUp && s.AdminState == AdminReady }

// Status is a snapshot of the pool.
type Status struct {
	// Strategy, SlowStart, Sticky, Passive and WhenAllDown repeat the
	// settings in force, for the status page.
	Strategy    Strategy
	SlowStart   time.Duration
	Sticky      bool
	Passive     *PassiveHealth
	WhenAllDown WhenAllDown
	// AllDown is true while WhenAllDown is TryAll and no backend is alive,
	// so that picks go to any member whatever its health.
	AllDown bool
	// Backends lists the members in rotation order, then those draining.
	Backends []BackendStatus
	// Up counts the backends alive (up and ready), Members those in the
	// pool (whatever their state), Draining those removed but still busy,
	// Ejected those out for passive health.
	Up, Members, Draining, Ejected int
	// Queue is the wait for a free backend, when max_requests_per_backend
	// limits them.
	Queue QueueStatus
}

// QueueStatus describes the queue of requests waiting for a backend slot.
type QueueStatus struct {
	// Limit is max_requests_per_backend, 0 when there is no limit (and so
	// no queue).
	Limit int
	// Length is how many requests wait now; Max how many may.
	Length, Max int
	Timeout     time.Duration
}

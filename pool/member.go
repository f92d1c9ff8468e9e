package pool

import (
	"slices"
	"strings"
	"time"
)

// member is the owner loop's record of one backend.
type member struct {
	b     *Backend
	state State
	admin AdminState
	// takesNew and takesSticky cache what state and admin allow, so that a
	// strategy's pass over a thousand members compares booleans, not
	// strings. refresh keeps them true to state and admin.
	takesNew, takesSticky bool
	source                string
	reason                string
	since                 time.Time

	// weight is the configured weight. rampFrom, when not zero, is when a
	// slow start began: the effective weight grows from 10% of weight to
	// all of it over Config.SlowStart.
	weight   int
	rampFrom time.Time
	// current is the smooth weighted round-robin's running weight.
	current int64

	// passes and fails are the current streak of health-check results; only
	// one of them is non-zero.
	passes, fails int
	requests      uint64
	failures      uint64

	// ejectStreak counts ejections in a row (without a success between);
	// ejectUntil is when the present one ends.
	ejections   uint64
	ejectStreak int
	ejectUntil  time.Time

	lastCheck                  Check
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

// fullWeight is a member's effective weight when it is not ramping, in the
// hundredths the strategies count in: slow start needs fractions of small
// weights (10% of 1), and integers keep the smooth round-robin exact.
func (m *member) fullWeight() int64 { return int64(m.weight) * 100 }

// effective returns the weight the strategies use now, in hundredths.
func (m *member) effective(now time.Time, slowStart time.Duration) int64 {
	full := m.fullWeight()
	if m.rampFrom.IsZero() || slowStart <= 0 {
		return full
	}
	elapsed := now.Sub(m.rampFrom)
	if elapsed >= slowStart {
		return full
	}
	// 10% at once, the other 90% linearly over slowStart.
	w := full/10 + int64(float64(full-full/10)*float64(elapsed)/float64(slowStart))
	return max(w, 1)
}

// refresh sets what m may take after its state or admin state changed: a
// new request that no sticky session sends when healthy and ready; one that
// its sticky session sends when healthy and not in maintenance (drain keeps
// its sessions).
func (m *member) refresh() {
	m.takesNew = m.state == StateUp && m.admin == AdminReady
	m.takesSticky = m.state == StateUp && m.admin != AdminMaintenance
}

// full reports whether m has as many requests in flight as limit allows;
// a limit of 0 or less is none.
func (m *member) full(limit int64) bool { return limit > 0 && m.b.InFlight() >= limit }

func (m *member) status(now time.Time, slowStart time.Duration) BackendStatus {
	b := m.b
	st := BackendStatus{
		URL: b.key, State: m.state, AdminState: m.admin, Source: m.source, InFlight: b.InFlight(),
		Weight: m.weight, EffectiveWeight: float64(m.effective(now, slowStart)) / 100,
		Reason: m.reason, Since: m.since, Requests: m.requests, Failures: m.failures, Ejections: m.ejections,
		Retries: b.retries.Load(), ConnectionFailures: b.connFailures.Load(), Truncated: b.truncated.Load(),
		LastCheck:    m.lastCheck,
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

// observeCheck records a health check: its duration in the histogram, and
// as the last check.
func (m *member) observeCheck(r ProbeResult, at time.Time) {
	if m.checkBuckets == nil {
		m.checkBuckets = make([]uint64, len(CheckDurationBuckets))
	}
	m.lastCheck = Check{At: at, Duration: r.Duration, OK: r.OK, Reason: r.Reason}
	secs := r.Duration.Seconds()
	m.checkCount++
	m.checkSum += secs
	if i, _ := slices.BinarySearch(CheckDurationBuckets, secs); i < len(m.checkBuckets) {
		m.checkBuckets[i]++
	}
}

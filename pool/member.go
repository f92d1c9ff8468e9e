package pool

import (
	"slices"
	"strings"
	"time"
)

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

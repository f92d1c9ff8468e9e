package pool

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testOwner returns the loop's state, built as Run builds it, without the
// loop, so that its handling of each message can be driven step by step
// from the test goroutine.
func testOwner(t *testing.T, cfg Config, urls ...string) *owner {
	t.Helper()
	p, err := New(cfg, URLs(urls...)...)
	require.NoError(t, err)
	return newOwner(p.cfg, p.initial, p.shared, discard())
}

func (o *owner) pickKey(t *testing.T) string {
	t.Helper()
	r := o.pick(PickRequest{})
	require.NoError(t, r.err)
	return r.val.key
}

func (o *owner) addURL(t *testing.T, raw string) *Backend {
	t.Helper()
	u, err := ParseURL(raw)
	require.NoError(t, err)
	reply := make(chan result[added], 1)
	o.handle(addMsg{s: spec{u: u, weight: 1, admin: AdminReady}, reply: reply})
	r := <-reply
	require.NoError(t, r.err)
	return r.val.b
}

func (o *owner) removeURL(raw string) (BackendStatus, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return BackendStatus{}, err
	}
	reply := make(chan result[BackendStatus], 1)
	o.handle(removeMsg{u: u, reply: reply})
	r := <-reply
	return r.val, r.err
}

// The rotation must not skip or repeat a backend more than an add or remove
// itself requires.
func TestRoundRobinRotationAcrossAddAndRemove(t *testing.T) {
	o := testOwner(t, Config{}, "http://a", "http://b", "http://c", "http://d")
	assert.Equal(t, "http://a", o.pickKey(t))
	assert.Equal(t, "http://b", o.pickKey(t))

	// Removing one already served this turn does not shift the rotation.
	_, err := o.removeURL("http://a")
	require.NoError(t, err)
	assert.Equal(t, "http://c", o.pickKey(t))

	// Removing the next one in line hands its turn to its successor.
	_, err = o.removeURL("http://d")
	require.NoError(t, err)
	assert.Equal(t, "http://b", o.pickKey(t))

	// An added backend joins at the end of the rotation once up.
	e := o.addURL(t, "http://e")
	o.handle(probeMsg{b: e, r: ProbeResult{OK: true, Reason: "test"}})
	assert.Equal(t, "http://c", o.pickKey(t))
	assert.Equal(t, "http://e", o.pickKey(t))
	assert.Equal(t, "http://b", o.pickKey(t))

	// Removing the last member while the cursor points past it wraps cleanly.
	_, err = o.removeURL("http://e")
	require.NoError(t, err)
	assert.Equal(t, "http://c", o.pickKey(t))
	assert.Equal(t, "http://b", o.pickKey(t))
}

// Asking whether a request may queue is not a pick: a request that queues
// while a slot is free is granted the backend next in the rotation, and the
// rotation moves on by one, not two.
func TestQueueingMovesTheRotationOnce(t *testing.T) {
	o := testOwner(t, Config{MaxRequestsPerBackend: 1}, "http://a", "http://b", "http://c")
	assert.Equal(t, "http://a", o.pickKey(t))
	tk := newTicket()
	reply := make(chan error, 1)
	o.handle(queueMsg{t: tk, reply: reply})
	require.NoError(t, <-reply)
	require.Equal(t, ticketGranted, tk.state.Load(), "a free slot is granted at once")
	assert.Equal(t, "http://b", tk.b.key)
	tk.b.Release()
	assert.Equal(t, "http://c", o.pickKey(t))
}

// Slow starts end on time although picks scan for their ends only when the
// earliest is due.
func TestSlowStartsEndOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOwner(t, Config{SlowStart: 10 * time.Second}, "http://a", "http://b", "http://c")
		a, b := o.members[0], o.members[1]
		restart := func(m *member) {
			o.set(m, StateDown, "test", CauseHealthCheck)
			o.set(m, StateUp, "test", CauseHealthCheck)
		}
		restart(a)
		o.pickKey(t)
		assert.Equal(t, 1, o.ramping)
		assert.Equal(t, a.rampFrom.Add(10*time.Second), o.rampsEnd)

		time.Sleep(5 * time.Second)
		restart(b)
		o.pickKey(t)
		assert.Equal(t, 2, o.ramping)
		assert.Equal(t, a.rampFrom.Add(10*time.Second), o.rampsEnd, "the earliest end")

		time.Sleep(5*time.Second - time.Nanosecond)
		o.pickKey(t)
		assert.Equal(t, 2, o.ramping, "a's slow start has a nanosecond to go")
		time.Sleep(time.Nanosecond)
		o.pickKey(t)
		assert.Equal(t, 1, o.ramping)
		assert.True(t, a.rampFrom.IsZero())
		assert.Equal(t, b.rampFrom.Add(10*time.Second), o.rampsEnd, "the next end")

		time.Sleep(5 * time.Second)
		o.pickKey(t)
		assert.Zero(t, o.ramping)
		assert.True(t, b.rampFrom.IsZero())
		assert.Equal(t, int64(100), a.effective(time.Now(), o.cfg.SlowStart))

		// A new slow_start moves the end of one under way.
		restart(a)
		cfg := o.cfg
		cfg.SlowStart = 2 * time.Second
		o.reconfigure(cfg)
		time.Sleep(2 * time.Second)
		o.pickKey(t)
		assert.Zero(t, o.ramping, "ended at the new slow_start")
	})
}

// The ejection timer follows every way out of an ejection: removing the
// member whose ejection ends first moves the timer to the next end, and
// the last ending stops it.
func TestEjectionTimerFollowsRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOwner(t, Config{Passive: &PassiveHealth{ConsecutiveFailures: 1, FailureStatuses: []int{503},
			EjectionTime: 10 * time.Second, MaxEjectedPercent: 100}}, "http://a", "http://b", "http://c")
		fired := func() bool {
			select {
			case <-o.ejectionsC():
				return true
			default:
				return false
			}
		}
		a, b := o.members[0], o.members[1]
		o.eject(a, "test")
		time.Sleep(5 * time.Second)
		o.eject(b, "test")
		require.Equal(t, StateEjected, b.state)
		_, err := o.removeURL("http://a")
		require.NoError(t, err)

		time.Sleep(6 * time.Second)
		assert.False(t, fired(), "a's end is no longer due")
		time.Sleep(5 * time.Second)
		require.True(t, fired(), "b's is")
		o.endEjections()
		assert.Equal(t, StateUp, b.state)
		time.Sleep(time.Hour)
		assert.False(t, fired(), "none is out")
	})
}

func TestThresholds(t *testing.T) {
	o := testOwner(t, Config{HealthyThreshold: 2, UnhealthyThreshold: 3}, "http://a")
	m := o.members[0]
	probe := func(ok bool) State {
		o.handle(probeMsg{b: m.b, r: ProbeResult{OK: ok, Reason: "probe"}})
		return m.state
	}
	assert.Equal(t, StateUp, probe(false))
	assert.Equal(t, StateUp, probe(false))
	assert.Equal(t, StateUp, probe(true), "a pass breaks the failing streak")
	assert.Equal(t, StateUp, probe(false))
	assert.Equal(t, StateUp, probe(false))
	assert.Equal(t, StateDown, probe(false), "third failure in a row")
	assert.Equal(t, StateDown, probe(true))
	o.handle(probeMsg{b: m.b, r: ProbeResult{Reason: "status 503"}})
	assert.Equal(t, StateDown, m.state)
	assert.Equal(t, "status 503", m.reason, "a failing check of a down backend says why")
	assert.Equal(t, StateDown, probe(true))
	assert.Equal(t, StateUp, probe(true), "second pass in a row")

	// A connection failure takes the backend down at once, whatever the threshold.
	o.handle(markDownMsg{b: m.b, reason: "connection refused"})
	assert.Equal(t, StateDown, m.state)
	assert.Equal(t, "connection refused", m.reason)
	assert.Equal(t, uint64(7), m.failures, "six failed probes and one connection failure")
}

func TestRemoveDrainsUntilIdle(t *testing.T) {
	o := testOwner(t, Config{}, "http://a", "http://b")
	a := o.members[0].b
	a.Acquire()

	st, err := o.removeURL("HTTP://A:80/")
	require.NoError(t, err)
	assert.Equal(t, StateDraining, st.State)
	assert.Equal(t, int64(1), st.InFlight)

	for range 3 {
		assert.Equal(t, "http://b", o.pickKey(t), "a draining backend is out of rotation")
	}
	s := o.status()
	assert.Equal(t, 1, s.Members)
	assert.Equal(t, 1, s.Draining)
	require.Len(t, s.Backends, 2)
	assert.Equal(t, StateDraining, s.Backends[1].State)

	_, err = o.removeURL("http://a")
	assert.ErrorIs(t, err, ErrNotFound, "a draining backend is already removed")

	a.Release()
	s = o.status()
	assert.Equal(t, 0, s.Draining)
	assert.Len(t, s.Backends, 1)

	// Nothing in flight: gone at once.
	st, err = o.removeURL("http://b")
	require.NoError(t, err)
	assert.Equal(t, StateRemoved, st.State)
	assert.Empty(t, o.status().Backends)
	assert.ErrorIs(t, o.pick(PickRequest{}).err, ErrNoBackend)
}

func TestAddingADrainingBackendRevivesIt(t *testing.T) {
	o := testOwner(t, Config{}, "http://a")
	a := o.members[0].b
	a.Acquire()
	_, err := o.removeURL("http://a")
	require.NoError(t, err)
	again := o.addURL(t, "http://a")
	assert.Same(t, a, again, "the in-flight request still counts against the same record")
	s := o.status()
	assert.Equal(t, 1, s.Members)
	assert.Equal(t, 0, s.Draining)
	assert.Equal(t, StateDown, s.Backends[0].State, "back in rotation only after a health check")
	a.Release()
}

func TestAddRejectsDuplicatesAfterNormalising(t *testing.T) {
	o := testOwner(t, Config{}, "http://a:8080")
	u, err := ParseURL("HTTP://A:8080/")
	require.NoError(t, err)
	reply := make(chan result[added], 1)
	o.handle(addMsg{s: spec{u: u, weight: 1, admin: AdminReady}, reply: reply})
	assert.ErrorIs(t, (<-reply).err, ErrExists)
	assert.Len(t, o.members, 1)
}

func TestReportsAboutRemovedBackendsAreIgnored(t *testing.T) {
	o := testOwner(t, Config{}, "http://a")
	a := o.members[0].b
	_, err := o.removeURL("http://a")
	require.NoError(t, err)
	again := o.addURL(t, "http://a")
	require.NotSame(t, a, again)
	o.handle(markDownMsg{b: a, reason: "stale"})
	o.handle(probeMsg{b: a, r: ProbeResult{OK: true, Reason: "stale"}})
	assert.Equal(t, StateDown, o.members[0].state)
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{}, URLs("localhost:8082", "http://a", "http://A/", "ftp://x")...)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalidURL)
	assert.ErrorIs(t, err, ErrExists)
	assert.Contains(t, err.Error(), "localhost:8082")
	assert.Contains(t, err.Error(), "ftp://x")

	_, err = New(Config{Strategy: "fastest"})
	assert.ErrorIs(t, err, ErrUnknownStrategy)
}

func TestParseURL(t *testing.T) {
	good := map[string]string{
		"http://localhost:8082":      "http://localhost:8082",
		"HTTP://LocalHost:8082/":     "http://localhost:8082",
		"http://example.com:80":      "http://example.com",
		"https://example.com:443/":   "https://example.com",
		"https://example.com:8443":   "https://example.com:8443",
		"http://10.0.0.1:08082":      "http://10.0.0.1:8082",
		"http://[::1]:8082/":         "http://[::1]:8082",
		"http://[::1]:80":            "http://[::1]",
		"http://example.com/api/v1/": "http://example.com/api/v1",
	}
	for in, want := range good {
		u, err := ParseURL(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, u.String(), in)
		}
	}
	bad := []string{
		"", " ", "localhost:8082", "ftp://example.com", "//example.com", "http://",
		"http://user:pw@example.com", "http://example.com/?a=1", "http://example.com/?",
		"http://example.com/#top", "http://example.com:0", "http://example.com:99999",
		"http://example.com:", "mailto:someone@example.com", "http://exa mple.com", "/just/a/path",
	}
	for _, in := range bad {
		_, err := ParseURL(in)
		assert.ErrorIs(t, err, ErrInvalidURL, "%q", in)
	}
}

func TestStatusCarriesCountersAndChanges(t *testing.T) {
	o := testOwner(t, Config{}, "http://a")
	b := o.members[0].b
	b.CountResponse(200)
	b.CountResponse(204)
	b.CountResponse(503)
	b.CountResponse(99) // not a status: ignored
	b.CountRetry()
	b.CountConnectFailure()
	o.handle(probeMsg{b: b, r: ProbeResult{OK: false, Reason: "status 500", Duration: 3 * time.Millisecond}})
	o.handle(probeMsg{b: b, r: ProbeResult{OK: true, Reason: "200 OK", Duration: 40 * time.Millisecond}})
	o.handle(markDownMsg{b: b, reason: "connection refused"})

	st := o.status().Backends[0]
	assert.Equal(t, [5]uint64{0, 2, 0, 0, 1}, st.Responses)
	assert.Equal(t, uint64(1), st.Retries)
	assert.Equal(t, uint64(1), st.ConnectionFailures)
	assert.Equal(t, uint64(1), st.ChecksPassed)
	assert.Equal(t, uint64(1), st.ChecksFailed)
	assert.Equal(t, uint64(2), st.CheckDurations.Count)
	assert.InDelta(t, 0.043, st.CheckDurations.Sum, 1e-9)
	// Cumulative: 3ms is at or below 0.005 and every bound after it; 40ms
	// joins from 0.05 on.
	for i, le := range CheckDurationBuckets {
		want := uint64(0)
		if le >= 0.005 {
			want++
		}
		if le >= 0.05 {
			want++
		}
		assert.Equal(t, want, st.CheckDurations.Buckets[i], "le=%v", le)
	}
	assert.Equal(t, []Change{ // in a stable order: by state, then cause
		{To: StateDown, Cause: CauseConnectionFailure, Count: 1},
		{To: StateDown, Cause: CauseHealthCheck, Count: 1},
		{To: StateUp, Cause: CauseConfigured, Count: 1},
		{To: StateUp, Cause: CauseHealthCheck, Count: 1},
	}, st.Changes)
}

// A pick answered just before a Remove must not send a request to a backend
// the owner has already dropped: the caller acquires, then sees Removed.
func TestRemovedFlagClosesThePickAcquireGap(t *testing.T) {
	o := testOwner(t, Config{}, "http://a")
	r := o.pick(PickRequest{})
	require.NoError(t, r.err)
	b := r.val
	st, err := o.removeURL("http://a") // lands before the caller's Acquire
	require.NoError(t, err)
	assert.Equal(t, StateRemoved, st.State, "nothing in flight yet")
	b.Acquire()
	assert.True(t, b.Removed(), "so the caller releases it and picks again")
	b.Release()

	// Adding it back, while a request still drains, clears the flag.
	o2 := testOwner(t, Config{}, "http://c")
	c := o2.members[0].b
	c.Acquire()
	_, err = o2.removeURL("http://c")
	require.NoError(t, err)
	assert.True(t, c.Removed())
	assert.Same(t, c, o2.addURL(t, "http://c"))
	assert.False(t, c.Removed())
	c.Release()
}

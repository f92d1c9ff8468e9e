package pool_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func pickURL(t *testing.T, p *pool.Pool, req pool.PickRequest) string {
	t.Helper()
	b, err := p.PickFor(t.Context(), req)
	require.NoError(t, err)
	return b.String()
}

func adminState(s pool.AdminState) *pool.AdminState { return &s }

// A sticky cookie sends its request to its backend whatever the strategy,
// across adds and removes of other backends; a backend on drain keeps its
// sticky requests but gets no new ones; one that is down or in maintenance
// loses them; a forged or stale cookie is ignored.
func TestStickySessions(t *testing.T) {
	p := pooltest.Start(t, pool.Config{StickySecret: []byte("s3cret")}, "http://a", "http://b", "http://c")
	ctx := t.Context()
	b := pooltest.BackendOf(t, p, "http://b")
	id := b.StickyID()
	require.NotEmpty(t, id)
	assert.NotContains(t, id, "b", "the cookie does not show the address") // base64url of an HMAC
	assert.NotEqual(t, id, pooltest.BackendOf(t, p, "http://a").StickyID())

	for range 5 {
		assert.Equal(t, "http://b", pickURL(t, p, pool.PickRequest{Sticky: id}))
	}
	_, _, err := p.Add(ctx, pool.Spec{URL: "http://d"})
	require.NoError(t, err)
	_, err = p.Remove(ctx, "http://a")
	require.NoError(t, err)
	assert.Equal(t, "http://b", pickURL(t, p, pool.PickRequest{Sticky: id}), "others come and go")

	_, err = p.Update(ctx, "http://b", nil, adminState(pool.AdminDrain))
	require.NoError(t, err)
	assert.Equal(t, "http://b", pickURL(t, p, pool.PickRequest{Sticky: id}), "drain keeps its sessions")
	for range 4 {
		assert.NotEqual(t, "http://b", pickURL(t, p, pool.PickRequest{}), "but takes no new ones")
	}
	_, err = p.Update(ctx, "http://b", nil, adminState(pool.AdminMaintenance))
	require.NoError(t, err)
	assert.NotEqual(t, "http://b", pickURL(t, p, pool.PickRequest{Sticky: id}), "maintenance loses them")

	_, err = p.Update(ctx, "http://b", nil, adminState(pool.AdminReady))
	require.NoError(t, err)
	require.NoError(t, p.MarkDown(ctx, b, "connection refused"))
	assert.NotEqual(t, "http://b", pickURL(t, p, pool.PickRequest{Sticky: id}), "a down backend loses them")

	assert.NotEmpty(t, pickURL(t, p, pool.PickRequest{Sticky: "forged-value"}), "a forged cookie is just ignored")
}

// Slow start: a backend that comes back up ramps from 10% of its weight to
// all of it over the slow-start time; one configured at start does not.
func TestSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{SlowStart: 30 * time.Second}, "http://a")
		a := pooltest.StatusOf(t, p, "http://a")
		assert.Equal(t, 1.0, a.EffectiveWeight, "not at start-up")

		ctx := t.Context()
		_, err := p.Update(ctx, "http://a", ptr(10), nil)
		require.NoError(t, err)
		b := pooltest.BackendOf(t, p, "http://a")
		require.NoError(t, p.MarkDown(ctx, b, "connection refused"))
		require.NoError(t, p.ReportProbe(ctx, b, pool.ProbeResult{OK: true, Reason: "200 OK"}))
		assert.Equal(t, 1.0, pooltest.StatusOf(t, p, "http://a").EffectiveWeight, "10% of 10 on the way back")
		time.Sleep(15 * time.Second)
		assert.InDelta(t, 5.5, pooltest.StatusOf(t, p, "http://a").EffectiveWeight, 0.01, "half way")
		time.Sleep(15 * time.Second)
		assert.Equal(t, 10.0, pooltest.StatusOf(t, p, "http://a").EffectiveWeight, "all of it")
	})
}

func ptr[T any](v T) *T { return &v }

// failN reports n failed attempts on b.
func failN(t *testing.T, p *pool.Pool, b *pool.Backend, n int) {
	t.Helper()
	for range n {
		require.NoError(t, p.ReportOutcome(t.Context(), b, 503, false))
	}
	_, err := p.Status(t.Context()) // a barrier: the owner has handled what was sent
	require.NoError(t, err)
}

// Outlier ejection: a backend answering 503 to everything beside two good
// ones is ejected after five failures, comes back after 30s, and is ejected
// for 60s the next time; a success in between ends the run; the good ones
// are never touched.
func TestEjection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pooltest.Start(t, pool.Config{Passive: &pool.PassiveHealth{ConsecutiveFailures: 5,
			FailureStatuses: []int{502, 503, 504}, EjectionTime: 30 * time.Second, MaxEjectedPercent: 50}},
			"http://bad", "http://good1", "http://good2")
		ctx := t.Context()
		bad := pooltest.BackendOf(t, p, "http://bad")
		good := pooltest.BackendOf(t, p, "http://good1")

		failN(t, p, bad, 4)
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://bad").State, "four are not enough")
		require.NoError(t, p.ReportOutcome(ctx, bad, 200, false))
		failN(t, p, bad, 4)
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://bad").State, "a success resets the count")
		failN(t, p, bad, 1)
		st := pooltest.StatusOf(t, p, "http://bad")
		assert.Equal(t, pool.StateEjected, st.State)
		assert.Contains(t, st.Reason, "ejected for 30s")
		for range 6 {
			assert.NotEqual(t, "http://bad", pickURL(t, p, pool.PickRequest{}))
		}

		time.Sleep(30 * time.Second)
		synctest.Wait()
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://bad").State, "back after 30s")
		failN(t, p, bad, 5)
		st = pooltest.StatusOf(t, p, "http://bad")
		assert.Contains(t, st.Reason, "ejected for 1m0s", "the second in a row lasts twice as long")
		time.Sleep(59 * time.Second)
		synctest.Wait()
		assert.Equal(t, pool.StateEjected, pooltest.StatusOf(t, p, "http://bad").State)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://bad").State)

		// A success after coming back ends the run: the next ejection is
		// the first again.
		require.NoError(t, p.ReportOutcome(ctx, bad, 200, false))
		failN(t, p, bad, 5)
		assert.Contains(t, pooltest.StatusOf(t, p, "http://bad").Reason, "ejected for 30s")
		assert.Equal(t, uint64(3), pooltest.StatusOf(t, p, "http://bad").Ejections)

		// A passing health check ends an ejection early.
		require.NoError(t, p.ReportProbe(ctx, bad, pool.ProbeResult{OK: true, Reason: "200 OK"}))
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://bad").State)

		// Transport failures count; the good backend was never ejected.
		for range 5 {
			require.NoError(t, p.ReportOutcome(ctx, good, 0, true))
		}
		assert.Equal(t, pool.StateEjected, pooltest.StatusOf(t, p, "http://good1").State)
		assert.Equal(t, pool.StateUp, pooltest.StatusOf(t, p, "http://good2").State)
	})
}

// max_ejected_percent holds even when every backend fails: of four bad
// backends at 50%, two are ejected and two keep serving.
func TestMaxEjectedPercent(t *testing.T) {
	p := pooltest.Start(t, pool.Config{Passive: &pool.PassiveHealth{ConsecutiveFailures: 5,
		FailureStatuses: []int{503}, EjectionTime: time.Minute, MaxEjectedPercent: 50}},
		"http://a", "http://b", "http://c", "http://d")
	for _, u := range []string{"http://a", "http://b", "http://c", "http://d"} {
		failN(t, p, pooltest.BackendOf(t, p, u), 5)
	}
	st, err := p.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, st.Ejected)
	assert.Equal(t, 2, st.Up)

	// With a 0% cap, one may still be ejected.
	p = pooltest.Start(t, pool.Config{Passive: &pool.PassiveHealth{ConsecutiveFailures: 1,
		FailureStatuses: []int{503}, EjectionTime: time.Minute}}, "http://a", "http://b")
	failN(t, p, pooltest.BackendOf(t, p, "http://a"), 1)
	failN(t, p, pooltest.BackendOf(t, p, "http://b"), 1)
	st, err = p.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, st.Ejected)
}

// With when_all_down try_all, a pool whose every backend is down still
// answers picks, among the ready members, and says so; with the default it
// has no backend.
func TestWhenAllDown(t *testing.T) {
	for _, mode := range []pool.WhenAllDown{pool.Fail, pool.TryAll} {
		t.Run(string(mode), func(t *testing.T) {
			p := pooltest.Start(t, pool.Config{WhenAllDown: mode}, "http://a", "http://b")
			ctx := t.Context()
			for _, u := range []string{"http://a", "http://b"} {
				require.NoError(t, p.MarkDown(ctx, pooltest.BackendOf(t, p, u), "connection refused"))
			}
			_, err := p.Update(ctx, "http://b", nil, adminState(pool.AdminMaintenance))
			require.NoError(t, err)
			st, err := p.Status(ctx)
			require.NoError(t, err)
			b, perr := p.Pick(ctx, nil)
			if mode == pool.Fail {
				assert.ErrorIs(t, perr, pool.ErrNoBackend)
				assert.False(t, st.AllDown)
				return
			}
			require.NoError(t, perr)
			assert.Equal(t, "http://a", b.String(), "any ready member, whatever its health")
			assert.True(t, st.AllDown, "shown while in effect")
		})
	}
}

// Update changes weight and admin state at once, refuses bad values
// without changing anything, and takes a member in maintenance out of the
// health checks.
func TestUpdate(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a", "http://b")
	ctx := t.Context()
	st, err := p.Update(ctx, "HTTP://A:80/", ptr(7), adminState(pool.AdminMaintenance))
	require.NoError(t, err)
	assert.Equal(t, 7, st.Weight)
	assert.Equal(t, pool.AdminMaintenance, st.AdminState)
	assert.False(t, st.Alive())
	bs, err := p.Backends(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 1, "maintenance: no health checks")
	assert.Equal(t, "http://b", bs[0].String())

	for _, w := range []int{0, -1, 1001} {
		_, err = p.Update(ctx, "http://a", ptr(w), adminState(pool.AdminReady))
		assert.ErrorIs(t, err, pool.ErrInvalidWeight, "%d", w)
	}
	_, err = p.Update(ctx, "http://a", ptr(3), adminState("asleep"))
	assert.ErrorIs(t, err, pool.ErrInvalidAdminState)
	st = pooltest.StatusOf(t, p, "http://a")
	assert.Equal(t, 7, st.Weight, "nothing half-applied")
	assert.Equal(t, pool.AdminMaintenance, st.AdminState)
	_, err = p.Update(ctx, "http://nope", ptr(3), nil)
	assert.ErrorIs(t, err, pool.ErrNotFound)
}

// Down backends are listed for the frequent checks; up and maintenance
// ones are not.
func TestDownBackends(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://a", "http://b", "http://c")
	ctx := context.Background()
	require.NoError(t, p.MarkDown(ctx, pooltest.BackendOf(t, p, "http://b"), "refused"))
	require.NoError(t, p.MarkDown(ctx, pooltest.BackendOf(t, p, "http://c"), "refused"))
	_, err := p.Update(ctx, "http://c", nil, adminState(pool.AdminMaintenance))
	require.NoError(t, err)
	bs, err := p.DownBackends(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 1)
	assert.Equal(t, "http://b", bs[0].String())
}

package pool_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// A reload's delta is applied as one: new members join (down until
// checked), removed ones drain, kept ones keep their record, state and
// counters, a changed weight is applied; a member the delta adds that is one
// already has its weight set; the settings change with it.
func TestApply(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://keep", "http://gone", "http://reweigh")
	ctx := t.Context()
	keep := pooltest.BackendOf(t, p, "http://keep")
	keep.Acquire()
	defer keep.Release()
	require.NoError(t, p.MarkDown(ctx, pooltest.BackendOf(t, p, "http://reweigh"), "refused"))

	applied, err := p.Apply(ctx, pool.Delta{
		Config: &pool.Config{Strategy: pool.LeastConnections, StickySecret: []byte("k")},
		Add:    []pool.Spec{{URL: "http://new", Weight: 2}, {URL: "http://keep", Weight: 4}},
		Remove: []string{"http://gone", "http://never"},
		Update: []pool.Spec{{URL: "http://reweigh", Weight: 9}, {URL: "http://never", Weight: 3}},
	})
	require.NoError(t, err)
	require.Len(t, applied.Added, 1)
	assert.Equal(t, "http://new", applied.Added[0].String())

	st, err := p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, pool.LeastConnections, st.Strategy)
	assert.True(t, st.Sticky)
	got := map[string]pool.BackendStatus{}
	for _, b := range st.Backends {
		got[b.URL] = b
	}
	assert.Same(t, keep, pooltest.BackendOf(t, p, "http://keep"), "the same record")
	assert.Equal(t, int64(1), got["http://keep"].InFlight)
	assert.Equal(t, 4, got["http://keep"].Weight)
	assert.Equal(t, pool.StateDown, got["http://reweigh"].State, "its state is kept")
	assert.Equal(t, 9, got["http://reweigh"].Weight)
	assert.Equal(t, pool.StateDown, got["http://new"].State, "new ones wait for a check")
	assert.NotContains(t, got, "http://gone", "removed with nothing in flight: gone")
	assert.NotEmpty(t, keep.StickyID(), "the new secret gave every member its identity")

	// A bad delta changes nothing.
	_, err = p.Apply(ctx, pool.Delta{Add: []pool.Spec{{URL: "http://fine"}, {URL: "ftp://bad"}}})
	assert.ErrorIs(t, err, pool.ErrInvalidURL)
	_, err = p.Apply(ctx, pool.Delta{Config: &pool.Config{Strategy: "fastest"}, Remove: []string{"http://keep"}})
	assert.ErrorIs(t, err, pool.ErrUnknownStrategy)
	st, err = p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, st.Members, "keep, reweigh, new: nothing half-applied")
}

// A discovery source's change arrives as its whole set: new members join,
// vanished ones drain, kept ones keep their record; a URL another owns is
// left to it; an operator cannot remove a discovered backend.
func TestSetSource(t *testing.T) {
	p := pooltest.Start(t, pool.Config{}, "http://static")
	ctx := t.Context()
	applied, err := p.SetSource(ctx, "dns", []pool.Spec{{URL: "http://a"}, {URL: "http://b", Weight: 2}, {URL: "http://static"}})
	require.NoError(t, err)
	assert.Len(t, applied.Added, 2, "a and b; static is already someone's")
	a := pooltest.BackendOf(t, p, "http://a")

	applied, err = p.SetSource(ctx, "dns", []pool.Spec{{URL: "http://a", Weight: 5}, {URL: "http://c"}})
	require.NoError(t, err)
	require.Len(t, applied.Added, 1)
	assert.Equal(t, "http://c", applied.Added[0].String())
	assert.Same(t, a, pooltest.BackendOf(t, p, "http://a"), "kept as the same record")
	st := pooltest.StatusOf(t, p, "http://a")
	assert.Equal(t, 5, st.Weight)
	assert.Equal(t, "dns", st.Source)
	assert.Empty(t, pooltest.StatusOf(t, p, "http://static").Source)
	status, err := p.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, status.Members, "static, a, c: b is gone")

	_, err = p.Remove(ctx, "http://a")
	assert.ErrorIs(t, err, pool.ErrDiscovered)
	assert.ErrorContains(t, err, "maintenance")
	_, err = p.SetSource(ctx, "dns", []pool.Spec{{URL: "ftp://bad"}})
	assert.ErrorIs(t, err, pool.ErrInvalidURL)
	status, _ = p.Status(ctx)
	assert.Equal(t, 3, status.Members, "a bad set changes nothing")

	_, err = p.SetSource(ctx, "dns", nil)
	require.NoError(t, err)
	status, _ = p.Status(ctx)
	assert.Equal(t, 1, status.Members, "an empty set empties the source")
}

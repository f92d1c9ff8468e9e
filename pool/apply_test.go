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

package pool_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// Whatever logger the pool is given, the owner loop never waits for it: with
// stderr stuck, every call is still answered; what could not be queued is
// counted and reported once the writer moves again, and Run returns only
// after the queued records are written.
func TestOwnerNeverWaitsForItsLog(t *testing.T) {
	w := pooltest.NewStuckWriter()
	logger := slog.New(slog.NewTextHandler(w, nil)).With("component", "pool")
	p, err := pool.New(pool.Config{Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // waited for below

	// Each add and remove logs a line: far more than the queue holds.
	for i := range 1500 {
		raw := fmt.Sprintf("http://b%d.test", i)
		_, _, err := p.Add(ctx, pool.Spec{URL: raw}) // would hang here if the owner waited for its log
		require.NoError(t, err)
		_, err = p.Remove(ctx, raw)
		require.NoError(t, err)
	}
	w.Release()
	cancel()
	require.NoError(t, <-done)

	out := w.String()
	assert.Contains(t, out, "component=pool")
	assert.Contains(t, out, "log records dropped")
	lines := strings.Count(out, "backend added") + strings.Count(out, "backend removed")
	assert.GreaterOrEqual(t, lines, 1000, "what was queued is written before Run returns")
	assert.Less(t, lines, 3000)
}

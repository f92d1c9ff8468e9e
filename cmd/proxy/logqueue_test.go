package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingWriter stands for a stderr nobody reads: writes wait until release.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     strings.Builder
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// A logger over a stuck writer never makes its caller wait; what could not
// be queued is counted and reported once the writer moves again.
func TestLogQueueNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	q := newLogQueue(4)
	log := slog.New(q.handler(slog.NewTextHandler(w, nil))).With("component", "pool")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.run(ctx) }() // waited for below

	for i := range 100 {
		log.Info("backend state changed", "i", i) // would hang here if Handle blocked
	}
	close(w.release)
	cancel()
	require.NoError(t, <-done)
	out := w.buf.String()
	assert.Contains(t, out, "component=pool")
	assert.Contains(t, out, "log records dropped")
	lines := strings.Count(out, "backend state changed")
	assert.GreaterOrEqual(t, lines, 4, "what was queued is written")
	assert.Less(t, lines, 100)
}

package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

// A disk that stops answering costs access log lines, counted, never a
// request's progress: every request completes while the writer is stuck.
func TestAccessLogNeverBlocksRequests(t *testing.T) {
	disk := pooltest.NewStuckWriter()
	al, err := proxy.NewAccessLog(disk, 4)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- al.Run(ctx) }() // waited for below

	be := backend(t, echo("a"))
	f := newFixture(t, proxy.Config{AccessLog: al}, be.URL)
	const n = 50
	for range n {
		code, _ := f.get(t, "/")
		require.Equal(t, http.StatusOK, code)
	}
	dropped := al.Dropped()
	// Run took at least one entry before it got stuck flushing it; four
	// wait in the channel; the rest were dropped.
	assert.LessOrEqual(t, dropped, uint64(n-5))
	assert.GreaterOrEqual(t, dropped, uint64(n/2))

	disk.Release()
	cancel()
	require.NoError(t, <-done)
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(disk.String()))
	for sc.Scan() {
		var e map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		assert.Equal(t, "GET", e["method"])
		assert.EqualValues(t, 200, e["status"])
		lines++
	}
	assert.Equal(t, n-int(dropped), lines, "every entry not dropped is written")
}

// The access log's fields for a request that was served.
func TestAccessLogEntry(t *testing.T) {
	pr, pw := io.Pipe()
	al, err := proxy.NewAccessLog(pw, 0)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- al.Run(ctx); pw.Close() }() // waited for below

	be := backend(t, echo("a"))
	f := newFixture(t, proxy.Config{AccessLog: al}, be.URL)
	_, body := f.get(t, "/x?q=1")
	line, err := bufio.NewReader(pr).ReadBytes('\n')
	require.NoError(t, err)
	cancel()
	go io.Copy(io.Discard, pr) // let Run's last flush through
	require.NoError(t, <-done)

	var e struct {
		Msg, Client, Method, Path, Backend string
		Status, Attempts                   int
		Bytes                              int64
		DurationMS                         float64 `json:"duration_ms"`
		Error                              *string
	}
	require.NoError(t, json.Unmarshal(line, &e), string(line))
	assert.Equal(t, "request", e.Msg)
	assert.Equal(t, "GET", e.Method)
	assert.Equal(t, "/x", e.Path, "the query stays out of the log: it may hold secrets")
	assert.Equal(t, 200, e.Status)
	assert.Equal(t, int64(len(body)), e.Bytes)
	assert.Equal(t, be.URL, e.Backend)
	assert.Equal(t, 1, e.Attempts)
	assert.Positive(t, e.DurationMS)
	assert.Nil(t, e.Error, "no error field when there was none")
	assert.True(t, strings.HasPrefix(e.Client, "127.0.0.1:"))
}

// SetOutput moves the log to a new writer without losing an entry: what
// was written before goes to the old writer, flushed, the rest to the new.
func TestAccessLogSetOutput(t *testing.T) {
	var first, second pooltest.SyncBuffer
	al, stop := runAccessLog(t, &first)

	f := newFixture(t, proxy.Config{AccessLog: al}, backend(t, echo("a")).URL)
	f.get(t, "/before")
	require.Eventually(t, func() bool { return strings.Contains(first.String(), "/before") }, 5*time.Second, time.Millisecond)
	require.NoError(t, al.SetOutput(t.Context(), &second))
	f.get(t, "/after")
	stop()
	assert.Contains(t, first.String(), `"path":"/before"`)
	assert.NotContains(t, first.String(), "/after")
	assert.Contains(t, second.String(), `"path":"/after"`)
}

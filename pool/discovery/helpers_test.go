package discovery_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait on the real DNS server: far beyond what any
// refresh takes, so that only a bug reaches it.
const waitFor = 10 * time.Second

// call is one SetSource call as the recording sink saw it.
type call struct {
	Source  string
	Targets []discovery.Target
	At      time.Time
}

// recSink is a Sink that records every call, in order, and can be made to
// fail as a stopped pool does.
type recSink struct {
	mu    sync.Mutex
	calls []call
	err   error
	ch    chan call
}

func newSink() *recSink { return &recSink{ch: make(chan call, 1000)} }

func (r *recSink) SetSource(ctx context.Context, source string, backends []discovery.Target) error {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return err
	}
	c := call{Source: source, Targets: backends, At: time.Now()}
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	select {
	case r.ch <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail makes every later call return err.
func (r *recSink) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Calls returns every call so far.
func (r *recSink) Calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// next waits for the next call. Off a bubble it waits at most waitFor.
func (r *recSink) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-r.ch:
		return c
	case <-time.After(waitFor):
		require.FailNow(t, "no SetSource call")
		return call{}
	}
}

// pending returns the calls received but not yet taken with next.
func (r *recSink) pending() []call {
	var out []call
	for {
		select {
		case c := <-r.ch:
			out = append(out, c)
		default:
			return out
		}
	}
}

// urls returns the URLs of targets, to compare sets at a glance.
func urls(targets []discovery.Target) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.URL
	}
	return out
}

// start builds a watcher and runs it until the test ends; the cleanup
// checks that Run then returned nil.
func start(t *testing.T, sink discovery.Sink, cfg discovery.Config) *discovery.Watcher {
	t.Helper()
	w, err := discovery.New(sink, cfg)
	require.NoError(t, err)
	runUntilCleanup(t, w)
	return w
}

func runUntilCleanup(t *testing.T, w *discovery.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // waited for in Cleanup
	t.Cleanup(func() {
		cancel()
		err := <-done
		if !errors.Is(err, discovery.ErrSink) {
			assert.NoError(t, err)
		}
	})
}

// waitStatus waits until the i-th source's status satisfies ok, and returns
// it.
func waitStatus(t *testing.T, w *discovery.Watcher, i int, what string, ok func(discovery.SourceStatus) bool) discovery.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st := w.Status()[i]
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "timed out", "waiting for %s; status: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func failing(st discovery.SourceStatus) bool { return st.Failing }
func healthy(st discovery.SourceStatus) bool { return !st.Failing && !st.LastRefresh.IsZero() }

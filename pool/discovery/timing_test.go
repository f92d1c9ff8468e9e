package discovery_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/discovery"
)

// The tests in this file run in synctest bubbles with the resolver replaced
// by a fake that answers from a map at once, or blocks until its context
// ends. Time moves only when every goroutine in the bubble is blocked, so the
// times they check are exact.

var (
	errNX       = &net.DNSError{Err: "no such host", IsNotFound: true}
	errServFail = &net.DNSError{Err: "server misbehaving", IsTemporary: true}
)

// fakeAnswer is what the fake resolver gives for one name.
type fakeAnswer struct {
	addrs []string
	srvs  []*net.SRV
	err   error
	block bool // wait for the lookup's context to end
}

// fakeResolver answers from a map the test changes, and records when each
// name was asked, in fake time since start.
type fakeResolver struct {
	start time.Time

	mu      sync.Mutex
	answers map[string]fakeAnswer // by absolute name
	asked   map[string][]time.Duration
}

func newFake() *fakeResolver {
	return &fakeResolver{start: time.Now(), answers: map[string]fakeAnswer{}, asked: map[string][]time.Duration{}}
}

func (f *fakeResolver) set(name string, a fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[name+"."] = a
}

func (f *fakeResolver) askedAt(name string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.asked[name+"."]...)
}

func (f *fakeResolver) get(ctx context.Context, name string) (fakeAnswer, error) {
	f.mu.Lock()
	f.asked[name] = append(f.asked[name], time.Since(f.start))
	a, ok := f.answers[name]
	f.mu.Unlock()
	if !ok {
		return a, errNX
	}
	if a.block {
		<-ctx.Done()
		return a, &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	}
	return a, a.err
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	a, err := f.get(ctx, host)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, s := range a.addrs {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func (f *fakeResolver) LookupSRV(ctx context.Context, _, _, name string) (string, []*net.SRV, error) {
	a, err := f.get(ctx, name)
	return name, a.srvs, err
}

// startFake builds a watcher on the fake and runs it in the bubble until the
// test ends.
func startFake(t *testing.T, f *fakeResolver, sink discovery.Sink, refresh time.Duration, sources ...discovery.Source) *discovery.Watcher {
	t.Helper()
	w, err := discovery.New(sink, discovery.Config{Sources: sources, Refresh: refresh})
	require.NoError(t, err)
	discovery.SetResolver(w, f)
	runUntilCleanup(t, w)
	return w
}

// callTimes returns, for each call, its fake time since start and its URLs.
type timedSet struct {
	At   time.Duration
	URLs []string
}

func callsSince(start time.Time, sink *recSink) []timedSet {
	var out []timedSet
	for _, c := range sink.Calls() {
		out = append(out, timedSet{At: c.At.Sub(start), URLs: urls(c.Targets)})
	}
	return out
}

func TestFirstLookupAtOnceThenEveryRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("api.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		sink := newSink()
		w := startFake(t, f, sink, 10*time.Second, aSource("api.test", 8080))

		synctest.Wait()
		assert.Equal(t, []timedSet{{0, []string{"http://10.0.0.1:8080"}}}, callsSince(f.start, sink), "the first set at once")
		time.Sleep(35 * time.Second)
		synctest.Wait()
		assert.Equal(t, []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}, f.askedAt("api.test"))
		assert.Len(t, sink.Calls(), 1, "nothing changed, nothing sent")
		st := w.Status()[0]
		assert.Equal(t, f.start.Add(30*time.Second), st.LastRefresh)
		assert.EqualValues(t, 4, st.Lookups)
	})
}

// "No such host" is believed at the first refresh at which it has lasted
// three periods, not one refresh sooner; the source is failing until then.
func TestNotFoundBelievedAfterThreePeriods(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone fakeAnswer
	}{
		{"NXDOMAIN", fakeAnswer{err: errNX}},
		{"no records", fakeAnswer{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.set("api.test", fakeAnswer{addrs: []string{"10.0.0.1", "10.0.0.2"}})
				sink := newSink()
				w := startFake(t, f, sink, 10*time.Second, aSource("api.test", 8080))
				time.Sleep(5 * time.Second)
				f.set("api.test", tc.gone) // seen at 10s

				time.Sleep(29 * time.Second) // 34s: seen at 10, 20 and 30
				synctest.Wait()
				st := w.Status()[0]
				assert.True(t, st.Failing)
				assert.Equal(t, "lookup api.test: no such host or no records for 20s; the last set is kept until that has lasted 30s", st.LastError)
				assert.Equal(t, []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, st.Backends)
				assert.Len(t, sink.Calls(), 1)

				time.Sleep(10 * time.Second) // 44s: seen at 40 too
				synctest.Wait()
				assert.Equal(t, []timedSet{
					{0, []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}},
					{40 * time.Second, []string{}},
				}, callsSince(f.start, sink))
				st = w.Status()[0]
				assert.False(t, st.Failing)
				assert.Empty(t, st.LastError)
				assert.Empty(t, st.Backends)
				assert.EqualValues(t, 4, st.NotFoundLookups)
			})
		})
	}
}

// A success resets the clock; a failure does not (it says nothing about the
// name), nor does it believe the answer.
func TestNotFoundClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		good := fakeAnswer{addrs: []string{"10.0.0.1"}}
		f.set("api.test", good)
		sink := newSink()
		startFake(t, f, sink, 10*time.Second, aSource("api.test", 8080))
		time.Sleep(5 * time.Second)

		// 10, 20, 30: NXDOMAIN, 40: back, 50, 60, 70: NXDOMAIN, 80: back.
		f.set("api.test", fakeAnswer{err: errNX})
		time.Sleep(30 * time.Second)
		f.set("api.test", good)
		time.Sleep(10 * time.Second)
		f.set("api.test", fakeAnswer{err: errNX})
		time.Sleep(30 * time.Second)
		f.set("api.test", good)
		synctest.Wait()
		assert.Len(t, sink.Calls(), 1, "never three periods in a row: never emptied")

		// 90: NXDOMAIN, 100: SERVFAIL, 110: NXDOMAIN, 120: NXDOMAIN, believed:
		// 30s since 90, the failure at 100 in between notwithstanding.
		time.Sleep(10 * time.Second)
		f.set("api.test", fakeAnswer{err: errNX})
		time.Sleep(10 * time.Second)
		f.set("api.test", fakeAnswer{err: errServFail})
		time.Sleep(10 * time.Second)
		f.set("api.test", fakeAnswer{err: errNX})
		time.Sleep(20 * time.Second)
		synctest.Wait()
		assert.Equal(t, []timedSet{
			{0, []string{"http://10.0.0.1:8080"}},
			{120 * time.Second, []string{}},
		}, callsSince(f.start, sink))
	})
}

// A failure keeps the last set and says why; recovery clears it.
func TestFailureKeepsSetAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("api.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		sink := newSink()
		w := startFake(t, f, sink, 10*time.Second, aSource("api.test", 8080))
		time.Sleep(5 * time.Second)
		f.set("api.test", fakeAnswer{err: errServFail})
		time.Sleep(60 * time.Second)
		synctest.Wait()
		st := w.Status()[0]
		assert.True(t, st.Failing)
		assert.Equal(t, "lookup api.test: server misbehaving", st.LastError)
		assert.Equal(t, []string{"http://10.0.0.1:8080"}, st.Backends)
		assert.Equal(t, f.start, st.LastSuccess)
		assert.Equal(t, f.start.Add(60*time.Second), st.LastRefresh)
		assert.EqualValues(t, 6, st.FailedLookups)
		assert.Len(t, sink.Calls(), 1)

		f.set("api.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st = w.Status()[0]
		assert.False(t, st.Failing)
		assert.Empty(t, st.LastError)
		assert.Len(t, sink.Calls(), 1, "the same set as before: nothing to send")
	})
}

// A lookup is bounded by min(5s, refresh); a source whose server does not
// answer does not delay another.
func TestLookupTimeoutAndIndependentSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("slow.test", fakeAnswer{block: true})
		f.set("fast.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		f.set("quick.test", fakeAnswer{block: true})
		sink := newSink()
		w := startFake(t, f, sink, 20*time.Second, aSource("slow.test", 80), aSource("fast.test", 80))
		w2 := startFake(t, f, newSink(), 2*time.Second, aSource("quick.test", 80))

		time.Sleep(4999 * time.Millisecond)
		synctest.Wait()
		assert.False(t, w.Status()[0].Failing, "still waiting for the answer")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		st := w.Status()[0]
		assert.True(t, st.Failing)
		assert.Equal(t, "lookup slow.test: timed out after 5s", st.LastError)
		assert.Equal(t, f.start, st.LastRefresh, "the lookup that started at 0")

		st = w2.Status()[0]
		assert.Equal(t, "lookup quick.test: timed out after 2s", st.LastError, "a refresh shorter than 5s bounds the lookup")

		time.Sleep(35 * time.Second) // 40s
		synctest.Wait()
		assert.Equal(t, []time.Duration{0, 20 * time.Second, 40 * time.Second}, f.askedAt("fast.test"))
		assert.Equal(t, []time.Duration{0, 20 * time.Second, 40 * time.Second}, f.askedAt("slow.test"))
		assert.False(t, w.Status()[1].Failing)
		assert.Equal(t, []time.Duration{0, 2 * time.Second, 4 * time.Second}, f.askedAt("quick.test")[:3])
	})
}

// An SRV target that vanishes while its record stays is "no such host" for
// that target: the whole set is kept for three periods, then the target goes.
func TestSRVTargetNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("_api._tcp.test", fakeAnswer{srvs: []*net.SRV{
			{Target: "a.test.", Port: 8080, Priority: 1, Weight: 2},
			{Target: "b.test.", Port: 8080, Priority: 1, Weight: 3},
			{Target: ".", Port: 8080, Priority: 0}, // "not offered here": ignored
		}})
		f.set("a.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		f.set("b.test", fakeAnswer{addrs: []string{"10.0.0.2"}})
		sink := newSink()
		w := startFake(t, f, sink, 10*time.Second, srvSource("_api._tcp.test"))
		time.Sleep(5 * time.Second)
		f.set("b.test", fakeAnswer{err: errNX})
		time.Sleep(20 * time.Second)
		synctest.Wait()
		st := w.Status()[0]
		assert.True(t, st.Failing)
		assert.Contains(t, st.LastError, "lookup b.test: no such host or no records for 10s")
		assert.Equal(t, []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, st.Backends)

		time.Sleep(20 * time.Second) // 45s: believed at 40s
		synctest.Wait()
		calls := sink.Calls()
		require.Len(t, calls, 2)
		assert.Equal(t, []discovery.Target{{URL: "http://10.0.0.1:8080", Weight: 2}, {URL: "http://10.0.0.2:8080", Weight: 3}}, calls[0].Targets)
		assert.Equal(t, []discovery.Target{{URL: "http://10.0.0.1:8080", Weight: 2}}, calls[1].Targets)
		assert.Equal(t, 40*time.Second, calls[1].At.Sub(f.start))
		assert.False(t, w.Status()[0].Failing)
	})
}

// The SRV lookup failing, or one target's, fails the whole refresh.
func TestSRVFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("_api._tcp.test", fakeAnswer{srvs: []*net.SRV{
			{Target: "a.test.", Port: 8080, Priority: 1},
			{Target: "b.test.", Port: 8080, Priority: 1},
		}})
		f.set("a.test", fakeAnswer{addrs: []string{"10.0.0.1"}})
		f.set("b.test", fakeAnswer{addrs: []string{"10.0.0.2"}})
		sink := newSink()
		w := startFake(t, f, sink, 10*time.Second, srvSource("_api._tcp.test"))
		time.Sleep(5 * time.Second)

		f.set("b.test", fakeAnswer{err: errServFail})
		f.set("a.test", fakeAnswer{addrs: []string{"10.0.0.9"}})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, "lookup b.test: server misbehaving", w.Status()[0].LastError)
		assert.Len(t, sink.Calls(), 1, "a's new address waits for a whole answer")

		f.set("b.test", fakeAnswer{addrs: []string{"10.0.0.2"}})
		f.set("_api._tcp.test", fakeAnswer{err: errServFail})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, "lookup _api._tcp.test: server misbehaving", w.Status()[0].LastError)
		assert.Len(t, sink.Calls(), 1)
	})
}

// With no sources, Run waits for its context like every other member of the
// proxy's errgroup, and a second Run is refused.
func TestRunWithoutSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := discovery.New(newSink(), discovery.Config{})
		require.NoError(t, err)
		assert.Empty(t, w.Status())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }() // waited for below
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-done:
			assert.Failf(t, "Run returned early", "%v", err)
		default:
		}
		assert.ErrorIs(t, w.Run(ctx), discovery.ErrRunning)
		cancel()
		assert.NoError(t, <-done)
	})
}

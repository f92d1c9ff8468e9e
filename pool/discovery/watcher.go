package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Errors of Run.
var (
	// ErrSink is wrapped, with the sink's own error, when the sink refused
	// a source's backends while Run's context was still live.
	ErrSink = errors.New("discovery: handing backends to the pool")
	// ErrRunning is returned by a second call of Run.
	ErrRunning = errors.New("discovery: Run called twice")
)

// A Target is one discovered backend.
type Target struct {
	// URL is scheme://address:port, in the pool's normal form: an IPv6
	// address is in brackets and the default port of http (80) and https
	// (443) is left out.
	URL string
	// Weight is the backend's share, MinWeight to MaxWeight: the SRV
	// record's weight for KindSRV (0 counts as 1), MinWeight for KindA.
	Weight int
}

// A Sink receives each source's backends. The pool implements it with one
// message to its owner, which adds the new ones, drains the ones that are
// gone and keeps the rest as they are.
type Sink interface {
	// SetSource replaces every backend of source (its Source.String) with
	// backends, sorted by URL and possibly empty. The slice is the sink's to
	// keep: the watcher never changes it afterwards. An error is taken to
	// mean the sink has stopped, and ends Run.
	SetSource(ctx context.Context, source string, backends []Target) error
}

// SourceStatus is a snapshot of one source.
type SourceStatus struct {
	// Source is the source's identity, as handed to the Sink.
	Source   string
	Name     string
	Discover Kind
	// LastRefresh is when the last lookup that finished started, whatever
	// its outcome; LastSuccess, when the last one that was believed did.
	// Both are zero before the first.
	LastRefresh time.Time
	LastSuccess time.Time
	// Failing is set while the last lookup failed (timeout, SERVFAIL,
	// refused, network error) or answered "no such host" or "no records"
	// for less than GraceRefreshes periods. The backends are then the last
	// good set. LastError says why, and is empty when the lookup worked.
	Failing   bool
	LastError string
	// Backends are the URLs last handed to the sink, sorted; nil until the
	// first success.
	Backends []string
	// Lookups counts calls to the resolver since Run started: one per
	// refresh for KindA (the A and AAAA questions are asked together), one
	// plus one per distinct target for KindSRV. FailedLookups counts those
	// that failed, NotFoundLookups those that answered "no such host" or
	// "no records".
	Lookups         uint64
	FailedLookups   uint64
	NotFoundLookups uint64
}

// resolver is what the watcher asks. *net.Resolver satisfies it; tests in a
// synctest bubble replace it, because a real socket does not block durably
// and fake time would not advance while a lookup waits on one.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// A Watcher looks its sources up on a ticker and hands every change to its
// Sink. Status is safe for concurrent use with Run.
type Watcher struct {
	sink    Sink
	refresh time.Duration
	timeout time.Duration
	grace   time.Duration
	log     *slog.Logger
	sources []*source
	started atomic.Bool
}

// source is one source's shared part: what Status reads while the source's
// goroutine refreshes. The rest of its state is in that goroutine's locals.
type source struct {
	src  Source
	key  string
	fqdn string // Name with the trailing dot that keeps the search list out
	// res is the source's own: a net.Resolver merges identical lookups in
	// flight, and one that a source gives up on (its refresh timed out) is
	// cancelled only if no other caller shares it. With a resolver per
	// source, nothing is shared across sources, so every lookup given up
	// on is cut short rather than left running for seconds.
	res resolver

	lookups, failedLookups, notFoundLookups atomic.Uint64
	// snap is replaced, never changed, by the source's goroutine after each
	// refresh, so Status reads it without a lock.
	snap atomic.Pointer[snapshot]
}

type snapshot struct {
	lastRefresh, lastSuccess time.Time
	failing                  bool
	lastError                string
	backends                 []string // shared between snapshots; never changed
}

// New returns a watcher that hands the backends of cfg.Sources to sink. It
// reports every problem with cfg at once and starts nothing: Run does.
func New(sink Sink, cfg Config) (*Watcher, error) {
	var errs []error
	if sink == nil {
		errs = append(errs, fmt.Errorf("%w: Sink is nil", ErrConfig))
	}
	if cfg.Refresh < 0 {
		errs = append(errs, fmt.Errorf("%w: Refresh must not be negative, got %v", ErrConfig, cfg.Refresh))
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	addr, err := ParseResolver(cfg.Resolver)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	w := &Watcher{
		sink:    sink,
		refresh: cfg.Refresh,
		timeout: min(MaxLookupTimeout, cfg.Refresh),
		grace:   GraceRefreshes * cfg.Refresh,
		log:     cfg.Logger,
	}
	seen := make(map[string]bool)
	for _, src := range cfg.Sources {
		src, err := src.validate()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := src.String()
		if seen[key] {
			errs = append(errs, fmt.Errorf("%w %q: listed twice (%s)", ErrInvalidSource, src.Name, key))
			continue
		}
		seen[key] = true
		s := &source{src: src, key: key, fqdn: src.Name + ".", res: newResolver(addr)}
		s.snap.Store(&snapshot{})
		w.sources = append(w.sources, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return w, nil
}

// newResolver returns Go's own resolver, which asks addr when it is set and
// the servers of /etc/resolv.conf otherwise.
func newResolver(addr string) *net.Resolver {
	var d net.Dialer
	return &net.Resolver{
		// The Go resolver, not the C library's: it is the one that honours
		// Dial, and its errors tell "no such host" from a failure.
		PreferGo: true,
		// Without it, a SERVFAIL for AAAA beside an answer for A would come
		// back as the A records alone, and a flaky server would take the
		// IPv6 backends out of the pool. A partial answer must be a failure.
		StrictErrors: true,
		// Go calls Dial with the address of a server from resolv.conf, for
		// UDP and for TCP when an answer is truncated; with addr set, every
		// one goes to addr instead.
		Dial: func(ctx context.Context, network, server string) (net.Conn, error) {
			if addr != "" {
				server = addr
			}
			c, err := d.DialContext(ctx, network, server)
			if err != nil {
				return nil, err
			}
			return cancelOnDone(ctx, c), nil
		},
	}
}

// cancelOnDone makes a read or write on c return when ctx ends.
//
// LookupNetIP returns when its caller's context ends, but the question it
// sent goes on in a goroutine of the net package until the answer comes or
// resolv.conf's timeout (5s by default, per attempt) passes: the context it
// dials with is cancelled then, but a socket read does not watch a context.
// Against a server that has gone silent, every refresh would leave such a
// goroutine and socket behind for seconds. Setting the deadline when ctx
// ends cuts them short.
func cancelOnDone(ctx context.Context, c net.Conn) net.Conn {
	// AfterFunc runs its function in a goroutine of its own once ctx ends,
	// unless stop is called first, as Close does; nothing waits for it and it
	// only sets a deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	// Go's resolver frames a question by the connection's type: a
	// PacketConn gets datagrams, anything else the TCP length prefix. The
	// wrapper must keep the type.
	if u, ok := c.(*net.UDPConn); ok {
		return &cancelPacketConn{UDPConn: u, stop: stop}
	}
	return &cancelStreamConn{Conn: c, stop: stop}
}

type cancelPacketConn struct {
	*net.UDPConn
	stop func() bool
}

func (c *cancelPacketConn) Close() error { c.stop(); return c.UDPConn.Close() }

type cancelStreamConn struct {
	net.Conn
	stop func() bool
}

func (c *cancelStreamConn) Close() error { c.stop(); return c.Conn.Close() }

// Run looks up every source at once, then again every Refresh, until ctx
// ends; then it returns nil. Each source has its own goroutine and ticker,
// so that a source whose server is slow or down does not delay the others;
// Run waits for all of them before it returns.
//
// Run returns an error wrapping ErrSink if the sink fails while ctx is still
// live: the pool has stopped, and a watcher with nothing to feed has nothing
// left to do. Run may be called only once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if len(w.sources) == 0 {
		// A member of cmd's errgroup that returned now would be taken as
		// having stopped early.
		<-ctx.Done()
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range w.sources {
		// One goroutine per source, waited for by g.Wait below. Each
		// returns when gctx ends: when ctx does, or when another source's
		// sink call failed.
		g.Go(func() error { return w.watch(gctx, s) })
	}
	return g.Wait()
}

// loopState is what one source's goroutine remembers between refreshes. It
// lives in that goroutine alone.
type loopState struct {
	sent    bool     // a set has been handed to the sink
	last    []Target // the set last handed over, sorted by URL
	urls    []string // last's URLs, shared with the status snapshots
	failing bool
	// notFound holds, for each name that answered "no such host" or "no
	// records" at the last refresh, when it began to, with no success of
	// that name since. A name is believed gone once it has lasted grace.
	notFound    map[string]time.Time
	lastSuccess time.Time
}

// watch is one source's loop: refresh at once, then on every tick.
func (w *Watcher) watch(ctx context.Context, s *source) error {
	// A Ticker, not a sleep after each refresh, keeps lookups on a fixed
	// schedule. The lookups of a refresh end within the period (timeout ≤
	// refresh), but the sink call after them is not bounded by it: the
	// program's sink probes the backends added before it returns. A refresh
	// that outlasts the period finds one tick waiting, the Ticker having
	// dropped any others, so the next refresh starts at once and refreshes
	// never pile up.
	tick := time.NewTicker(w.refresh)
	defer tick.Stop()
	var st loopState
	for {
		if err := w.refreshSource(ctx, s, &st); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// refreshSource looks s up once, decides what the answer means and hands a
// changed set to the sink. It returns an error only when the sink failed
// while ctx was live.
func (w *Watcher) refreshSource(ctx context.Context, s *source, st *loopState) error {
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, w.timeout)
	ans := w.resolve(lctx, s)
	// The clock, not only lctx.Err: a socket's deadline can fire before
	// the context's timer has marked it done.
	deadline, _ := lctx.Deadline()
	timedOut := errors.Is(lctx.Err(), context.DeadlineExceeded) || !time.Now().Before(deadline)
	cancel()
	if ctx.Err() != nil {
		// Cut short by shutdown: it says nothing about the source.
		return nil
	}
	if ans.err != nil && timedOut {
		ans.err = fmt.Errorf("lookup %s: timed out after %v", s.src.Name, w.timeout)
	}

	switch {
	case ans.err != nil:
		w.fail(s, st, start, ans.err.Error())
		return nil
	case len(ans.missing) > 0:
		nf := make(map[string]time.Time, len(ans.missing))
		var youngest time.Duration = -1
		for _, name := range ans.missing {
			since, ok := st.notFound[name]
			if !ok {
				since = start
			}
			nf[name] = since
			if d := start.Sub(since); youngest < 0 || d < youngest {
				youngest = d
			}
		}
		st.notFound = nf
		if youngest < w.grace {
			// A DNS server that restarts with an empty zone, or a Consul
			// agent that has lost its cluster, answers NXDOMAIN for a while;
			// emptying the pool on its word would take the service down.
			more := ""
			if len(ans.missing) > 1 {
				more = fmt.Sprintf(" (and %d more names)", len(ans.missing)-1)
			}
			w.fail(s, st, start, fmt.Sprintf("lookup %s%s: no such host or no records for %v; the last set is kept until that has lasted %v",
				trimDot(ans.missing[0]), more, youngest, w.grace))
			return nil
		}
	default:
		st.notFound = nil
	}
	return w.apply(ctx, s, st, start, ans.targets)
}

// fail records a refresh that changed nothing because it failed.
func (w *Watcher) fail(s *source, st *loopState, start time.Time, why string) {
	if !st.failing {
		w.log.Info("discovery: source failing; keeping its last backends",
			"source", s.key, "error", why, "backends", len(st.last))
	}
	st.failing = true
	s.snap.Store(&snapshot{lastRefresh: start, lastSuccess: st.lastSuccess, failing: true, lastError: why, backends: st.urls})
}

// apply hands targets to the sink if they differ from the last set, and
// records a refresh that worked.
func (w *Watcher) apply(ctx context.Context, s *source, st *loopState, start time.Time, targets []Target) error {
	if !st.sent || !slices.Equal(st.last, targets) {
		if err := w.sink.SetSource(ctx, s.key, targets); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: %s: %w", ErrSink, s.key, err)
		}
		added, removed := diffCount(st.last, targets)
		w.log.Info("discovery: backends changed", "source", s.key,
			"backends", len(targets), "added", added, "removed", removed)
		urls := make([]string, len(targets))
		for i, t := range targets {
			urls[i] = t.URL
		}
		st.sent, st.last, st.urls = true, targets, urls
	}
	if st.failing {
		w.log.Info("discovery: source recovered", "source", s.key, "backends", len(st.last))
	}
	st.failing = false
	st.lastSuccess = start
	s.snap.Store(&snapshot{lastRefresh: start, lastSuccess: start, backends: st.urls})
	return nil
}

// diffCount counts the URLs of b that are not in a, and of a not in b. Both
// are sorted by URL.
func diffCount(a, b []Target) (added, removed int) {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].URL == b[j].URL:
			i++
			j++
		case a[i].URL < b[j].URL:
			removed++
			i++
		default:
			added++
			j++
		}
	}
	return added + len(b) - j, removed + len(a) - i
}

// Status returns a snapshot of every source, in the order of Config.Sources.
// It takes no lock and never waits for a refresh.
func (w *Watcher) Status() []SourceStatus {
	out := make([]SourceStatus, len(w.sources))
	for i, s := range w.sources {
		p := s.snap.Load()
		out[i] = SourceStatus{
			Source:          s.key,
			Name:            s.src.Name,
			Discover:        s.src.Discover,
			LastRefresh:     p.lastRefresh,
			LastSuccess:     p.lastSuccess,
			Failing:         p.failing,
			LastError:       p.lastError,
			Backends:        slices.Clone(p.backends),
			Lookups:         s.lookups.Load(),
			FailedLookups:   s.failedLookups.Load(),
			NotFoundLookups: s.notFoundLookups.Load(),
		}
	}
	return out
}

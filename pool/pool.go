package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/actor"
)

// Errors returned by the pool. Calls may also return actor.ErrStopped once the
// owner loop has stopped, or the caller's ctx.Err().
var (
	ErrNoBackend         = errors.New("pool: no backend available")
	ErrBusy              = errors.New("pool: every backend is at max_requests_per_backend")
	ErrQueueFull         = errors.New("pool: the queue for a free backend is full")
	ErrQueueTimeout      = errors.New("pool: no backend became free within the queue timeout")
	ErrExists            = errors.New("pool: backend already exists")
	ErrDiscovered        = errors.New("pool: the backend comes from discovery")
	ErrNotFound          = errors.New("pool: backend not found")
	ErrInvalidURL        = errors.New("pool: invalid backend URL")
	ErrInvalidWeight     = errors.New("pool: weight must be a whole number from 1 to 1000")
	ErrInvalidAdminState = errors.New(`pool: admin_state must be "ready", "drain" or "maintenance"`)
	ErrUnknownStrategy   = errors.New("pool: unknown strategy")
	ErrInvalidConfig     = errors.New("pool: invalid config")
	ErrRunning           = errors.New("pool: Run called twice")
)

// mailboxSize lets a burst of requests hand their pick to the owner without
// each waiting for it to be scheduled. Memory is a pointer per slot.
const mailboxSize = 256

// MaxWeight is the largest weight a backend may have.
const MaxWeight = 1000

// Defaults of the queue, used when MaxRequestsPerBackend is set.
const (
	DefaultMaxQueue     = 1024
	DefaultQueueTimeout = 5 * time.Second
)

// WhenAllDown says what a pick does when no backend is alive.
type WhenAllDown string

const (
	// Fail: no backend alive, no pick (the proxy answers 503).
	Fail WhenAllDown = "fail"
	// TryAll is Envoy's panic mode: with no backend alive, pick among every
	// ready member whatever its health, so that an outage of the health
	// endpoint alone does not become a total outage.
	TryAll WhenAllDown = "try_all"
)

// ParseWhenAllDown parses "fail" or "try_all".
func ParseWhenAllDown(s string) (WhenAllDown, error) {
	switch w := WhenAllDown(s); w {
	case Fail, TryAll:
		return w, nil
	}
	return "", fmt.Errorf("%w: WhenAllDown must be %q or %q, got %q", ErrInvalidConfig, Fail, TryAll, s)
}

// PassiveHealth is outlier ejection from live traffic.
type PassiveHealth struct {
	// ConsecutiveFailures in a row eject a backend. It must be positive.
	ConsecutiveFailures int
	// FailureStatuses are the response statuses that count as failures;
	// a connection that could not be made, or was reset or timed out
	// before the response headers, always counts.
	FailureStatuses []int
	// EjectionTime is how long the first ejection lasts; each ejection in
	// a row lasts that much longer, up to ten times. It must be positive.
	EjectionTime time.Duration
	// MaxEjectedPercent caps the share of the pool ejected at once; at
	// least one backend may always be. 0 to 100.
	MaxEjectedPercent int
}

// A FieldError is a problem with one field of a config, the field named as
// a config file spells it, so that a loader can name it in the file by
// adding where the config sits there.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Problems lists what is wrong with ph, every problem, in field order.
func (ph PassiveHealth) Problems() []*FieldError {
	var out []*FieldError
	bad := func(field, format string, args ...any) {
		out = append(out, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if ph.ConsecutiveFailures < 1 {
		bad("consecutive_failures", "must be at least 1, got %d", ph.ConsecutiveFailures)
	}
	for i, s := range ph.FailureStatuses {
		if s < 100 || s > 599 {
			bad(fmt.Sprintf("failure_statuses[%d]", i), "must be an HTTP status from 100 to 599, got %d", s)
		}
	}
	if ph.EjectionTime <= 0 {
		bad("ejection_time", "must be a positive duration, got %v", ph.EjectionTime)
	}
	if ph.MaxEjectedPercent < 0 || ph.MaxEjectedPercent > 100 {
		bad("max_ejected_percent", "must be from 0 to 100, got %d", ph.MaxEjectedPercent)
	}
	return out
}

// Config says how the pool chooses and when health checks change a backend's
// state. Zero values mean the defaults given beside each field; negative
// ones are errors.
type Config struct {
	// Strategy chooses among the backends that take requests. Zero means
	// RoundRobin.
	Strategy Strategy
	// HealthyThreshold is how many consecutive passing health checks bring a
	// down backend up. Zero means 1.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failing health checks take an
	// up backend down. Zero means 1. A connection failure reported with
	// MarkDown takes it down at once, whatever this says.
	UnhealthyThreshold int
	// SlowStart, when positive, ramps the effective weight of a backend
	// that comes back up (after being down or ejected, or added at
	// runtime) from 10% to 100% over that time (HAProxy's slowstart). Zero
	// means off. Backends configured at start do not ramp.
	SlowStart time.Duration
	// Passive turns on outlier ejection from live traffic. Nil means off.
	Passive *PassiveHealth
	// WhenAllDown says what happens when no backend is alive. Zero means
	// Fail.
	WhenAllDown WhenAllDown
	// StickySecret, when not empty, gives every backend a session-affinity
	// identity: an HMAC-SHA256 of its URL under the secret (see StickyID).
	StickySecret []byte
	// MaxRequestsPerBackend, when positive, is the most requests any one
	// backend may have in flight (HAProxy's maxconn, nginx's max_conns). A
	// request that finds every backend full waits in one FIFO queue (Wait).
	// Zero means no limit.
	MaxRequestsPerBackend int
	// MaxQueue is how many requests may wait at once. Zero means
	// DefaultMaxQueue.
	MaxQueue int
	// QueueTimeout is how long a request may wait. Zero means
	// DefaultQueueTimeout.
	QueueTimeout time.Duration
	// Seed seeds the random choices of RandomTwo, for tests that want them
	// repeatable. Zero means seeded from the clock.
	Seed uint64
	// Logger receives one Info line per state change. The owner loop never
	// waits for it: New puts a queue in front of it, which Run writes out on
	// a goroutine of its own, dropping (and counting) records when the
	// writer falls behind. Nil means no logging.
	Logger *slog.Logger
}

// A Spec names a backend and its weight.
type Spec struct {
	URL string
	// Weight is 1 to MaxWeight; zero means 1.
	Weight int
	// Source is the name of the discovery source that found it; empty for
	// a backend from the config file or the admin API.
	Source string
	// AdminState is the operator's word on it; zero means AdminReady. A
	// restart restores it from the state file.
	AdminState AdminState
}

// check validates cfg and fills in its defaults. It reports every problem.
func (cfg *Config) check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if cfg.Strategy == "" {
		cfg.Strategy = RoundRobin
	}
	if _, err := ParseStrategy(string(cfg.Strategy)); err != nil {
		errs = append(errs, err)
	}
	if cfg.HealthyThreshold < 0 || cfg.UnhealthyThreshold < 0 {
		bad("negative health threshold")
	}
	cfg.HealthyThreshold = max(cfg.HealthyThreshold, 1)
	cfg.UnhealthyThreshold = max(cfg.UnhealthyThreshold, 1)
	if cfg.SlowStart < 0 {
		bad("SlowStart must not be negative, got %v", cfg.SlowStart)
	}
	if cfg.WhenAllDown == "" {
		cfg.WhenAllDown = Fail
	}
	if _, err := ParseWhenAllDown(string(cfg.WhenAllDown)); err != nil {
		errs = append(errs, err)
	}
	if ph := cfg.Passive; ph != nil {
		for _, p := range ph.Problems() {
			bad("Passive: %v", p)
		}
	}
	switch {
	case cfg.MaxRequestsPerBackend < 0:
		bad("MaxRequestsPerBackend must not be negative, got %d", cfg.MaxRequestsPerBackend)
	case cfg.MaxQueue < 0:
		bad("MaxQueue must not be negative, got %d", cfg.MaxQueue)
	case cfg.QueueTimeout < 0:
		bad("QueueTimeout must not be negative, got %v", cfg.QueueTimeout)
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	return errors.Join(errs...)
}

// A Pool is the handle through which other goroutines ask the owner loop for
// backends and report on them. Its methods are safe for concurrent use. Run
// must be running for them to be answered.
type Pool struct {
	cfg     Config
	initial []spec
	shared  *shared
	mb      *actor.Mailbox[message]
	logq    *actor.Queue[queuedRecord]
	started atomic.Bool
}

// spec is a Spec checked: its URL parsed and normalised, its weight set.
type spec struct {
	u      *url.URL
	weight int
	source string
	admin  AdminState
}

// parseSpec checks s.
func parseSpec(s Spec) (spec, error) {
	u, err := ParseURL(s.URL)
	if err != nil {
		return spec{}, err
	}
	w, err := checkWeight(s.Weight)
	if err != nil {
		return spec{}, fmt.Errorf("%w (%s: %d)", err, u, s.Weight)
	}
	admin := s.AdminState
	if admin == "" {
		admin = AdminReady
	}
	if _, err := ParseAdminState(string(admin)); err != nil {
		return spec{}, fmt.Errorf("%w (%s)", err, u)
	}
	return spec{u: u, weight: w, source: s.Source, admin: admin}, nil
}

// parseSpecs parses every one of specs, in order, and reports the problems
// of all the bad ones rather than only the first. keep, when not nil, may
// refuse a spec that parsed, with the error to report (New's duplicates).
func parseSpecs(specs []Spec, keep func(spec) error) ([]spec, []error) {
	var out []spec
	var errs []error
	for _, s := range specs {
		sp, err := parseSpec(s)
		if err == nil && keep != nil {
			err = keep(sp)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sp)
	}
	return out, errs
}

// checkWeight applies the zero-means-default rule to a weight.
func checkWeight(w int) (int, error) {
	switch {
	case w == 0:
		return 1, nil
	case w < 0 || w > MaxWeight:
		return 0, ErrInvalidWeight
	}
	return w, nil
}

// New returns a pool of the given backends. They start up, as in HAProxy
// and nginx: a backend is assumed to serve until a health check or a failed
// connection says otherwise, and the health checker runs its first round at
// once. It reports every problem with cfg, every bad URL and weight, and
// every duplicate, at once.
func New(cfg Config, backends ...Spec) (*Pool, error) {
	seen := make(map[string]bool)
	specs, specErrs := parseSpecs(backends, func(s spec) error {
		if seen[s.u.String()] {
			return fmt.Errorf("%w: %s", ErrExists, s.u)
		}
		seen[s.u.String()] = true
		return nil
	})
	errs := append([]error{cfg.check()}, specErrs...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logq := actor.NewQueue[queuedRecord](logQueueSize)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = slog.New(queuedHandler{next: cfg.Logger.Handler(), q: logq})
	return &Pool{
		cfg:     cfg,
		initial: specs,
		shared:  newShared(),
		mb:      actor.NewMailbox[message](mailboxSize),
		logq:    logq,
	}, nil
}

// URLs is the Specs of raw URLs at weight 1, for the common case.
func URLs(raw ...string) []Spec {
	specs := make([]Spec, len(raw))
	for i, r := range raw {
		specs[i] = Spec{URL: r}
	}
	return specs
}

// Run is the owner loop. It serves the pool's messages until ctx ends and then
// returns nil; after that every method returns actor.ErrStopped. Run may be
// called only once.
//
// Beside the loop, Run writes the loop's log records on a goroutine of its
// own, and returns only once that goroutine has written the last of them.
func (p *Pool) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	// The writer outlives the loop by the time it takes to write what the
	// loop logged last, so its context is not ctx but one cancelled after
	// the loop has returned.
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() { defer close(logDone); writeLog(logCtx, p.logq) }() // waited for on logDone, below
	defer func() { stopLog(); <-logDone }()
	defer p.mb.Stop() // runs first: callers learn at once that nobody will answer

	newOwner(p.cfg, p.initial, p.shared, p.cfg.Logger).run(ctx, p.mb.Inbox())
	return nil
}

// Done is closed once Run has returned.
func (p *Pool) Done() <-chan struct{} { return p.mb.Done() }

// PickRequest says what a request needs from a pick.
type PickRequest struct {
	// Skip holds the backends this request has tried already.
	Skip []*Backend
	// Sticky is the value of the request's session-affinity cookie, if
	// any: a backend whose StickyID it is gets the request if it may.
	Sticky string
	// Hash is the request's key for the Hash strategy (see HashKey), used
	// when HasHash is true; without one, Hash picks as RoundRobin does.
	Hash    uint64
	HasHash bool
}

// Pick returns a backend that takes new requests and is not among skip,
// chosen by the pool's strategy. See PickFor.
func (p *Pool) Pick(ctx context.Context, skip []*Backend) (*Backend, error) {
	return p.PickFor(ctx, PickRequest{Skip: skip})
}

// PickFor returns a backend for req, or ErrNoBackend when none may take it,
// or ErrBusy when some could but every one of them is at
// MaxRequestsPerBackend (then Wait queues for one). The caller must then
// TryAcquire it (and if that fails, pick again, skipping it), check Removed
// (and if set, Release it and pick again), and Release it when done.
func (p *Pool) PickFor(ctx context.Context, req PickRequest) (*Backend, error) {
	if len(req.Skip) > 0 {
		// The loop reads skip after this call may have given up and returned;
		// a copy keeps the caller free to reuse its slice.
		req.Skip = slices.Clone(req.Skip)
	}
	reply := make(chan result[*Backend], 1)
	r, err := actor.Call(ctx, p.mb, message(pickMsg{req: req, reply: reply}), reply)
	if err != nil {
		return nil, err
	}
	return r.val, r.err
}

// Wait queues req for a backend slot, after PickFor answered ErrBusy: the
// owner grants waiting requests in the order they came, each as soon as a
// backend it may use has a free slot. The backend returned is already
// acquired: the caller checks nothing and must Release it when done. Wait
// returns ErrQueueFull at once when MaxQueue requests already wait,
// ErrQueueTimeout when QueueTimeout passes first, and ctx.Err() when the
// caller gives up first; either way it leaves the queue at once.
//
// How a freed slot reaches a waiting request without the owner ever
// blocking: Release, an atomic on the request path, rings the pool's
// doorbell (a channel of capacity 1, never waited on) while anything is
// queued; the owner, at the ring, grants as many waiting requests as there
// are free slots. A grant and a caller giving up race on the ticket's
// state, an atomic, so that exactly one of them wins: a slot granted to a
// caller that has left is given back.
func (p *Pool) Wait(ctx context.Context, req PickRequest) (*Backend, error) {
	if len(req.Skip) > 0 {
		req.Skip = slices.Clone(req.Skip)
	}
	t := newTicket()
	reply := make(chan error, 1)
	qerr, err := actor.Call(ctx, p.mb, message(queueMsg{req: req, t: t, reply: reply}), reply)
	if err == nil {
		err = qerr
	}
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(time.Duration(p.shared.queueTimeout.Load()))
	defer timer.Stop()
	select {
	case <-t.granted:
		return t.b, nil
	case <-ctx.Done():
		if t.abandon() {
			return nil, ctx.Err()
		}
		t.b.Release() // granted as the caller left: give it back
		return nil, ctx.Err()
	case <-timer.C:
		if t.abandon() {
			return nil, ErrQueueTimeout
		}
		return t.b, nil // granted at the last moment: use it
	case <-p.mb.Done():
		if t.abandon() {
			return nil, actor.ErrStopped
		}
		return t.b, nil
	}
}

// MarkDown takes b out of rotation at once, recording reason. The proxy calls
// it when a connection to b cannot be made. It waits only for the message to
// be queued, never for the owner to act on it.
func (p *Pool) MarkDown(ctx context.Context, b *Backend, reason string) error {
	return p.mb.Send(ctx, markDownMsg{b: b, reason: reason})
}

// ReportOutcome is passive health: the proxy calls it after each attempt on
// b with the response status (0 if there was none) and whether the attempt
// failed in transport (no connection, or reset or timed out before the
// response headers). It counts on b's atomics; it sends the owner a message
// only when b reaches Passive.ConsecutiveFailures in a row (to eject it) or
// serves its first success after an ejection (to end the run of
// ejections). Without passive health it does nothing. ctx's cancellation is
// ignored: an outcome is a fact about b, and a client that has gone since
// does not unmake it. (The request path passes its request's context as it
// is; detaching it only when a message is sent saves an allocation per
// request.)
func (p *Pool) ReportOutcome(ctx context.Context, b *Backend, status int, transportFailure bool) error {
	pol := b.shared.passive.Load()
	if pol == nil {
		return nil
	}
	if transportFailure || pol.fails(status) {
		if n := b.consecutiveFailures.Add(1); n == int64(pol.ConsecutiveFailures) {
			reason := fmt.Sprintf("passive health: %d failures in a row, the last a transport failure", n)
			if !transportFailure {
				reason = fmt.Sprintf("passive health: %d failures in a row, the last status %d", n, status)
			}
			return p.mb.Send(context.WithoutCancel(ctx), ejectMsg{b: b, reason: reason})
		}
		return nil
	}
	if b.consecutiveFailures.Load() != 0 {
		b.consecutiveFailures.Store(0)
	}
	if b.probation.Load() && b.probation.CompareAndSwap(true, false) {
		return p.mb.Send(context.WithoutCancel(ctx), recoveredMsg{b: b})
	}
	return nil
}

// ProbeResult is the outcome of one health check.
type ProbeResult struct {
	OK bool
	// Reason says why it passed or failed, for operators.
	Reason string
	// Duration is how long the check took.
	Duration time.Duration
}

// ReportProbe records the result of one health check of b. The owner changes
// b's state when HealthyThreshold (or UnhealthyThreshold) results in a row
// agree. Results for backends no longer in the pool are ignored.
func (p *Pool) ReportProbe(ctx context.Context, b *Backend, r ProbeResult) error {
	return p.mb.Send(ctx, probeMsg{b: b, r: r})
}

// Add adds the backend s. It is down until a health check passes. It returns
// ErrInvalidURL, ErrInvalidWeight or ErrExists without changing the pool.
// Adding a backend that is still draining puts that same backend back, with
// its in-flight requests.
func (p *Pool) Add(ctx context.Context, s Spec) (*Backend, BackendStatus, error) {
	sp, err := parseSpec(s)
	if err != nil {
		return nil, BackendStatus{}, err
	}
	reply := make(chan result[added], 1)
	r, err := actor.Call(ctx, p.mb, message(addMsg{s: sp, reply: reply}), reply)
	if err == nil {
		err = r.err
	}
	return r.val.b, r.val.st, err
}

// Remove takes the backend at raw out of rotation at once. Requests in flight
// to it go on; until the last one ends it is listed as draining. The status
// returned is the backend's as it left: StateDraining, or StateRemoved if
// nothing was in flight. A backend from discovery cannot be removed so
// (ErrDiscovered): the next lookup would bring it back; its admin state can
// take it out.
func (p *Pool) Remove(ctx context.Context, raw string) (BackendStatus, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return BackendStatus{}, err
	}
	reply := make(chan result[BackendStatus], 1)
	r, err := actor.Call(ctx, p.mb, message(removeMsg{u: u, operator: true, reply: reply}), reply)
	if err == nil {
		err = r.err
	}
	return r.val, err
}

// Update changes what an operator sets on the backend at raw: its weight,
// its admin state, or both, at once. Nil fields are left as they are. Bad
// values are refused before anything changes (ErrInvalidWeight,
// ErrInvalidAdminState); ErrNotFound if there is no such member.
func (p *Pool) Update(ctx context.Context, raw string, weight *int, admin *AdminState) (BackendStatus, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return BackendStatus{}, err
	}
	if weight != nil {
		if *weight == 0 { // zero is not "the default" here: it is a value sent
			return BackendStatus{}, ErrInvalidWeight
		}
		if _, err := checkWeight(*weight); err != nil {
			return BackendStatus{}, err
		}
	}
	if admin != nil {
		if _, err := ParseAdminState(string(*admin)); err != nil {
			return BackendStatus{}, err
		}
	}
	reply := make(chan result[BackendStatus], 1)
	r, err := actor.Call(ctx, p.mb, message(updateMsg{u: u, weight: weight, admin: admin, reply: reply}), reply)
	if err == nil {
		err = r.err
	}
	return r.val, err
}

// A Delta is what a reload of the config does to the pool, applied at once
// by one message, so that no pick ever sees half of it.
type Delta struct {
	// Config replaces the settings (strategy, thresholds, slow start,
	// passive health, when_all_down, sticky secret, limits), or is nil to
	// keep them. Its Logger and Seed are ignored: the pool keeps its own.
	Config *Config
	// Add are new members; one that is a member already has its weight
	// set instead (an operator added it through the API meanwhile).
	Add []Spec
	// Remove are members to remove with drain; one that is not a member is
	// left alone.
	Remove []string
	// Update are members whose weight to set; one that is not a member is
	// left alone.
	Update []Spec
}

// Applied says what a Delta did.
type Applied struct {
	// Added are the backends that joined: the caller probes them at once,
	// as POST /backends does.
	Added []*Backend
}

// Apply makes d in one message to the owner. Everything is checked first:
// a bad config, URL or weight is an error and nothing changes.
func (p *Pool) Apply(ctx context.Context, c Delta) (Applied, error) {
	var errs []error
	var msg applyMsg
	if c.Config != nil {
		cfg := *c.Config
		cfg.Logger, cfg.Seed = nil, 0
		errs = append(errs, cfg.check())
		msg.cfg = &cfg
	}
	var addErrs, updateErrs []error
	msg.add, addErrs = parseSpecs(c.Add, nil)
	msg.update, updateErrs = parseSpecs(c.Update, nil)
	errs = append(append(errs, addErrs...), updateErrs...)
	for _, raw := range c.Remove {
		u, err := ParseURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		msg.remove = append(msg.remove, u)
	}
	if err := errors.Join(errs...); err != nil {
		return Applied{}, err
	}
	msg.reply = make(chan Applied, 1)
	return actor.Call(ctx, p.mb, message(msg), msg.reply)
}

// SetSource makes the members found by the discovery source named source
// be exactly specs, in one message: new ones join (down until checked; the
// caller probes the Added), vanished ones are removed with drain, the
// others keep their record, health and counters, their weight set. A URL
// that is a member already, static or from another source, stays as it is:
// the first to claim a backend owns it. Bad specs are refused and nothing
// changes.
func (p *Pool) SetSource(ctx context.Context, source string, specs []Spec) (Applied, error) {
	msg := sourceMsg{source: source, reply: make(chan Applied, 1)}
	var errs []error
	msg.specs, errs = parseSpecs(specs, nil)
	for i := range msg.specs {
		msg.specs[i].source = source
	}
	if err := errors.Join(errs...); err != nil {
		return Applied{}, err
	}
	return actor.Call(ctx, p.mb, message(msg), msg.reply)
}

// Status returns a snapshot of every backend, members in order, then the ones
// still draining.
func (p *Pool) Status(ctx context.Context) (Status, error) {
	reply := make(chan Status, 1)
	return actor.Call(ctx, p.mb, message(statusMsg{reply: reply}), reply)
}

// Backends returns the backends to health-check: every member that is not
// draining or in maintenance, up or not.
func (p *Pool) Backends(ctx context.Context) ([]*Backend, error) {
	reply := make(chan []*Backend, 1)
	return actor.Call(ctx, p.mb, message(backendsMsg{reply: reply}), reply)
}

// DownBackends returns the backends to check more often: those of Backends
// that are down or ejected.
func (p *Pool) DownBackends(ctx context.Context) ([]*Backend, error) {
	reply := make(chan []*Backend, 1)
	return actor.Call(ctx, p.mb, message(backendsMsg{downOnly: true, reply: reply}), reply)
}

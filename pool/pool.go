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
	ErrNoBackend       = errors.New("pool: no backend available")
	ErrExists          = errors.New("pool: backend already exists")
	ErrNotFound        = errors.New("pool: backend not found")
	ErrInvalidURL      = errors.New("pool: invalid backend URL")
	ErrUnknownStrategy = errors.New("pool: unknown strategy")
	ErrRunning         = errors.New("pool: Run called twice")
)

// mailboxSize lets a burst of requests hand their pick to the owner without
// each waiting for it to be scheduled. Memory is a pointer per slot.
const mailboxSize = 256

// Config says how the pool chooses and when health checks change a backend's
// state.
type Config struct {
	// Strategy chooses among backends that are up. Zero means RoundRobin.
	Strategy Strategy
	// HealthyThreshold is how many consecutive passing health checks bring a
	// down backend up. Zero means 1.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failing health checks take an
	// up backend down. Zero means 1. A connection failure reported with
	// MarkDown takes it down at once, whatever this says.
	UnhealthyThreshold int
	// Logger receives one Info line per state change. The owner loop never
	// waits for it: New puts a queue in front of it, which Run writes out on
	// a goroutine of its own, dropping (and counting) records when the
	// writer falls behind. Nil means no logging.
	Logger *slog.Logger
}

// A Pool is the handle through which other goroutines ask the owner loop for
// backends and report on them. Its methods are safe for concurrent use. Run
// must be running for them to be answered.
type Pool struct {
	cfg     Config
	initial []*url.URL
	mb      *actor.Mailbox[message]
	logq    *actor.Queue[queuedRecord]
	started atomic.Bool
}

// New returns a pool of the given backends, each parsed with ParseURL. They
// start up, as in HAProxy and nginx: a backend is assumed to serve until a
// health check or a failed connection says otherwise, and the health checker
// runs its first round at once. It reports every bad URL and duplicate at once.
func New(cfg Config, backends ...string) (*Pool, error) {
	if cfg.Strategy == "" {
		cfg.Strategy = RoundRobin
	}
	if _, err := ParseStrategy(string(cfg.Strategy)); err != nil {
		return nil, err
	}
	if cfg.HealthyThreshold < 0 || cfg.UnhealthyThreshold < 0 {
		return nil, errors.New("pool: negative health threshold")
	}
	cfg.HealthyThreshold = max(cfg.HealthyThreshold, 1)
	cfg.UnhealthyThreshold = max(cfg.UnhealthyThreshold, 1)
	logq := actor.NewQueue[queuedRecord](logQueueSize)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = slog.New(queuedHandler{next: cfg.Logger.Handler(), q: logq})
	var errs []error
	seen := make(map[string]bool)
	var urls []*url.URL
	for _, raw := range backends {
		u, err := ParseURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[u.String()] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrExists, u))
			continue
		}
		seen[u.String()] = true
		urls = append(urls, u)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Pool{
		cfg:     cfg,
		initial: urls,
		mb:      actor.NewMailbox[message](mailboxSize),
		logq:    logq,
	}, nil
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

	newOwner(p.cfg, p.initial, p.cfg.Logger).run(ctx, p.mb.Inbox())
	return nil
}

// Done is closed once Run has returned.
func (p *Pool) Done() <-chan struct{} { return p.mb.Done() }

// Pick returns a backend that is up and not among skip, chosen by the pool's
// strategy, or ErrNoBackend. The caller must Acquire it before use, then
// check Removed (and if set, Release it and pick again), and Release it when
// done. A retry passes the backends already tried as skip.
func (p *Pool) Pick(ctx context.Context, skip []*Backend) (*Backend, error) {
	if len(skip) > 0 {
		// The loop reads skip after this call may have given up and returned;
		// a copy keeps the caller free to reuse its slice.
		skip = slices.Clone(skip)
	}
	reply := make(chan result[*Backend], 1)
	r, err := actor.Call(ctx, p.mb, message(pickMsg{skip: skip, reply: reply}), reply)
	if err != nil {
		return nil, err
	}
	return r.val, r.err
}

// MarkDown takes b out of rotation at once, recording reason. The proxy calls
// it when a connection to b cannot be made. It waits only for the message to
// be queued, never for the owner to act on it.
func (p *Pool) MarkDown(ctx context.Context, b *Backend, reason string) error {
	return p.mb.Send(ctx, markDownMsg{b: b, reason: reason})
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

// Add adds the backend at raw, parsed with ParseURL. It is down until a health
// check passes. It returns ErrInvalidURL or ErrExists without changing the
// pool. Adding a backend that is still draining puts that same backend back,
// with its in-flight requests.
func (p *Pool) Add(ctx context.Context, raw string) (*Backend, BackendStatus, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, BackendStatus{}, err
	}
	reply := make(chan result[added], 1)
	r, err := actor.Call(ctx, p.mb, message(addMsg{u: u, reply: reply}), reply)
	if err == nil {
		err = r.err
	}
	return r.val.b, r.val.st, err
}

// Remove takes the backend at raw out of rotation at once. Requests in flight
// to it go on; until the last one ends it is listed as draining. The status
// returned is the backend's as it left: StateDraining, or StateRemoved if
// nothing was in flight.
func (p *Pool) Remove(ctx context.Context, raw string) (BackendStatus, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return BackendStatus{}, err
	}
	reply := make(chan result[BackendStatus], 1)
	r, err := actor.Call(ctx, p.mb, message(removeMsg{u: u, reply: reply}), reply)
	if err == nil {
		err = r.err
	}
	return r.val, err
}

// Status returns a snapshot of every backend, members in order, then the ones
// still draining.
func (p *Pool) Status(ctx context.Context) (Status, error) {
	reply := make(chan Status, 1)
	return actor.Call(ctx, p.mb, message(statusMsg{reply: reply}), reply)
}

// Backends returns the backends to health-check: every member, up or down,
// that is not draining.
func (p *Pool) Backends(ctx context.Context) ([]*Backend, error) {
	reply := make(chan []*Backend, 1)
	return actor.Call(ctx, p.mb, message(backendsMsg{reply: reply}), reply)
}

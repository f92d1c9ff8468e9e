package main

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// logQueue keeps the pool's owner loop from ever waiting for stderr. The
// owner logs each state change, and it must never block on I/O: a stalled
// stderr (a full pipe, a stopped terminal) would stop every Pick and with it
// the whole proxy. So the owner's logger hands records to a buffered
// channel, and run, a goroutine of the program's errgroup, writes them out.
// When it falls behind, records are dropped and counted, and the count is
// logged once it catches up.
type logQueue struct {
	ch      chan queuedRecord
	dropped atomic.Uint64
}

type queuedRecord struct {
	h slog.Handler
	r slog.Record
}

func newLogQueue(size int) *logQueue { return &logQueue{ch: make(chan queuedRecord, size)} }

// handler returns a slog.Handler that queues records for next.
func (q *logQueue) handler(next slog.Handler) slog.Handler { return queuedHandler{next: next, q: q} }

// run writes queued records until ctx ends, then those still queued, and
// returns nil.
func (q *logQueue) run(ctx context.Context) error {
	for {
		select {
		case qr := <-q.ch:
			q.write(ctx, qr)
		case <-ctx.Done():
			for {
				select {
				case qr := <-q.ch:
					q.write(ctx, qr)
				default:
					return nil
				}
			}
		}
	}
}

func (q *logQueue) write(ctx context.Context, qr queuedRecord) {
	if n := q.dropped.Swap(0); n > 0 {
		r := qr.r.Clone()
		r.Message = "log records dropped: the log's writer could not keep up"
		r.Level = slog.LevelWarn
		r.AddAttrs(slog.Uint64("dropped", n))
		_ = qr.h.Handle(context.WithoutCancel(ctx), r)
	}
	_ = qr.h.Handle(context.WithoutCancel(ctx), qr.r)
}

type queuedHandler struct {
	next slog.Handler
	q    *logQueue
}

func (h queuedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle never blocks. The record is cloned: its attributes may share memory
// with the caller's, which goes on after Handle returns.
func (h queuedHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.q.ch <- queuedRecord{h: h.next, r: r.Clone()}:
	default:
		h.q.dropped.Add(1)
	}
	return nil
}

func (h queuedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return queuedHandler{next: h.next.WithAttrs(as), q: h.q}
}

func (h queuedHandler) WithGroup(name string) slog.Handler {
	return queuedHandler{next: h.next.WithGroup(name), q: h.q}
}

package pool

import (
	"context"
	"log/slog"

	"github.com/switchyard-proxy/switchyard/actor"
)

// logQueueSize is how many log records the owner loop may be ahead of the
// writer before records are dropped. The owner logs once per state change,
// so a thousand is a large burst: every backend of a big pool going down at
// once.
const logQueueSize = 1024

// The owner loop logs each state change, and it must never block on I/O: a
// stalled stderr (a full pipe, a stopped terminal) would stop every Pick and
// with it the whole proxy. So New wraps whatever logger it is given in
// queuedHandler, which hands each record to an actor.Queue and returns; Run
// writes them out on a goroutine of its own. When the writer falls behind,
// records are dropped and counted, and the count is logged once it catches
// up. The guarantee is the pool's own: no caller has to remember it.
type queuedRecord struct {
	h slog.Handler
	r slog.Record
}

type queuedHandler struct {
	next slog.Handler
	q    *actor.Queue[queuedRecord]
}

func (h queuedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle never blocks. The record is cloned: its attributes may share memory
// with the caller's, which goes on after Handle returns.
func (h queuedHandler) Handle(_ context.Context, r slog.Record) error {
	h.q.Offer(queuedRecord{h: h.next, r: r.Clone()})
	return nil
}

func (h queuedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return queuedHandler{next: h.next.WithAttrs(as), q: h.q}
}

func (h queuedHandler) WithGroup(name string) slog.Handler {
	return queuedHandler{next: h.next.WithGroup(name), q: h.q}
}

// writeLog is the consumer of q: it writes each record through the handler
// it was logged with, until ctx ends and the queue is empty. Before the first
// record written after some were dropped, it says how many.
func writeLog(ctx context.Context, q *actor.Queue[queuedRecord]) {
	var reported uint64
	q.Drain(ctx, func(qr queuedRecord) {
		if n := q.Dropped(); n > reported {
			r := slog.NewRecord(qr.r.Time, slog.LevelWarn, "log records dropped: the log's writer could not keep up", 0)
			r.AddAttrs(slog.Uint64("dropped", n-reported))
			_ = qr.h.Handle(context.WithoutCancel(ctx), r)
			reported = n
		}
		_ = qr.h.Handle(context.WithoutCancel(ctx), qr.r)
	}, nil)
}

package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/switchyard-proxy/switchyard/actor"
)

// AccessLog writes one JSON line per request, through log/slog, without
// making any request wait for it: ServeHTTP offers each entry to an
// actor.Queue and moves on; Run, on a goroutine of its own, writes them out.
// When the writer falls behind (a slow disk) and the queue is full, entries
// are dropped and counted (switchyard_access_log_dropped_total), never
// waited for.
//
// Run is a long-lived goroutine: whoever runs the proxy runs it, and stops it
// after the proxy's last handler has returned, so that no entry is lost.
type AccessLog struct {
	out     io.Writer
	entries *actor.Queue[accessEntry]
}

type accessEntry struct {
	start    time.Time
	client   string
	method   string
	path     string
	status   int
	bytes    int64
	took     time.Duration
	backend  string
	attempts int
	err      string
}

// NewAccessLog returns an access log writing to w that holds up to buffer
// entries waiting to be written. Zero means 8192; a negative buffer is an
// error.
func NewAccessLog(w io.Writer, buffer int) (*AccessLog, error) {
	switch {
	case w == nil:
		return nil, errors.New("proxy: access log writer is nil")
	case buffer < 0:
		return nil, fmt.Errorf("proxy: access log buffer must not be negative, got %d", buffer)
	case buffer == 0:
		buffer = 8192
	}
	return &AccessLog{out: w, entries: actor.NewQueue[accessEntry](buffer)}, nil
}

// Dropped returns how many entries were dropped because the queue was full.
func (a *AccessLog) Dropped() uint64 { return a.entries.Dropped() }

func (a *AccessLog) log(e accessEntry) { a.entries.Offer(e) }

// Run writes entries until ctx ends, then writes those still queued and
// returns. It flushes whenever it has caught up, so a quiet proxy's log is
// current and a busy one's is written in large blocks. A failed write shows
// up as the error of a later flush, which Run returns at the end.
func (a *AccessLog) Run(ctx context.Context) error {
	w := bufio.NewWriterSize(a.out, 64<<10)
	h := slog.NewJSONHandler(w, nil)
	a.entries.Drain(ctx, func(e accessEntry) { a.write(h, e) }, func() { w.Flush() })
	return w.Flush()
}

func (a *AccessLog) write(h slog.Handler, e accessEntry) {
	r := slog.NewRecord(e.start, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("client", e.client),
		slog.String("method", e.method),
		slog.String("path", e.path),
		slog.Int("status", e.status),
		slog.Int64("bytes", e.bytes),
		slog.Float64("duration_ms", float64(e.took.Microseconds())/1000),
		slog.String("backend", e.backend),
		slog.Int("attempts", e.attempts),
	)
	if e.err != "" {
		r.AddAttrs(slog.String("error", e.err))
	}
	_ = h.Handle(context.Background(), r)
}

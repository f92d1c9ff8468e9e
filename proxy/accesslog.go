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
	// switches carry a new writer to Run, with a reply channel of
	// capacity 1 for the old writer's last flush.
	switches chan outputSwitch
}

type outputSwitch struct {
	w     io.Writer
	reply chan error
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
	return &AccessLog{out: w, entries: actor.NewQueue[accessEntry](buffer), switches: make(chan outputSwitch)}, nil
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
	for {
		select {
		case e := <-a.entries.C():
			a.write(h, e)
			if a.entries.Len() == 0 {
				w.Flush()
			}
		case sw := <-a.switches:
			// What was written so far goes to the old writer; the next
			// entry to the new one.
			sw.reply <- w.Flush()
			w = bufio.NewWriterSize(sw.w, 64<<10)
			h = slog.NewJSONHandler(w, nil)
		case <-ctx.Done():
			a.entries.Drain(ctx, func(e accessEntry) { a.write(h, e) }, nil)
			return w.Flush()
		}
	}
}

// SetOutput makes Run write to w from now on, after flushing what it has
// written to the old writer, which the caller may then close (SIGHUP reopens
// the access log file so; a reload may change its destination). It returns
// the old writer's last flush error, or ctx's if Run does not take the
// switch in time.
func (a *AccessLog) SetOutput(ctx context.Context, w io.Writer) error {
	sw := outputSwitch{w: w, reply: make(chan error, 1)}
	select {
	case a.switches <- sw:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-sw.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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

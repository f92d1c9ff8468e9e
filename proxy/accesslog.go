package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// AccessLog writes one JSON line per request, through log/slog, without
// making any request wait for it: ServeHTTP hands each entry to a buffered
// channel and moves on; Run, on a goroutine of its own, writes them out. When
// the writer falls behind (a slow disk) and the channel is full, entries are
// dropped and counted (switchyard_access_log_dropped_total), never waited for.
//
// Run is a long-lived goroutine: whoever runs the proxy runs it, and stops it
// after the proxy's last handler has returned, so that no entry is lost.
type AccessLog struct {
	out     io.Writer
	entries chan accessEntry
	dropped atomic.Uint64
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
// entries waiting to be written. Zero means 8192.
func NewAccessLog(w io.Writer, buffer int) *AccessLog {
	if buffer <= 0 {
		buffer = 8192
	}
	return &AccessLog{out: w, entries: make(chan accessEntry, buffer)}
}

// Dropped returns how many entries were dropped because the channel was full.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

func (a *AccessLog) log(e accessEntry) {
	select {
	case a.entries <- e:
	default:
		a.dropped.Add(1)
	}
}

// Run writes entries until ctx ends, then writes those still queued and
// returns nil. It flushes whenever it has caught up, so a quiet proxy's log is
// current and a busy one's is written in large blocks.
func (a *AccessLog) Run(ctx context.Context) error {
	w := bufio.NewWriterSize(a.out, 64<<10)
	h := slog.NewJSONHandler(w, nil)
	for {
		select {
		case e := <-a.entries:
			a.write(h, e)
		case <-ctx.Done():
			for {
				select {
				case e := <-a.entries:
					a.write(h, e)
				default:
					return w.Flush()
				}
			}
		}
		if len(a.entries) == 0 {
			w.Flush() // a failed write shows up as the next one's error, if anywhere
		}
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

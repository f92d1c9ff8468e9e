package discovery

import "context"

// Resolver is the lookup seam, for fakes in synctest bubbles: a real socket
// does not block durably, so fake time would not advance while a lookup
// waited on one.
type Resolver = resolver

// SetResolver replaces the resolver of every source of w.
func SetResolver(w *Watcher, r Resolver) {
	for _, s := range w.sources {
		s.res = r
	}
}

// A Refresher runs the refreshes of one source outside Run, keeping the state
// between them that Run's goroutine would, so that benchmarks can time one.
type Refresher struct {
	w  *Watcher
	s  *source
	st loopState
}

// NewRefresher returns a Refresher for w's i-th source.
func NewRefresher(w *Watcher, i int) *Refresher { return &Refresher{w: w, s: w.sources[i]} }

// Refresh does what one tick of the source's goroutine does.
func (r *Refresher) Refresh(ctx context.Context) error { return r.w.refreshSource(ctx, r.s, &r.st) }

package health

import (
	"context"

	"github.com/switchyard-proxy/switchyard/pool"
)

// SetProbeFunc replaces c's HTTP probe. Tests that run in a synctest bubble use
// it, because a real socket does not block durably and fake time would not
// advance while a probe waits on one.
func SetProbeFunc(c *Checker, f func(ctx context.Context, b *pool.Backend) (bool, string)) {
	c.probeFn = func(ctx context.Context, _ *settings, b *pool.Backend) (bool, string) { return f(ctx, b) }
}

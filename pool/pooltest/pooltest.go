// Package pooltest runs a pool for the length of a test.
package pooltest

import (
	"context"
	"testing"

	"github.com/switchyard-proxy/switchyard/pool"
)

// Start builds a pool of urls with cfg and runs its owner loop until the
// test ends: t.Cleanup stops the loop and waits for its goroutine. Inside a
// testing/synctest bubble, call it from the bubble, so that the loop belongs
// to the bubble.
func Start(t testing.TB, cfg pool.Config, urls ...string) *pool.Pool {
	t.Helper()
	p, err := pool.New(cfg, urls...)
	if err != nil {
		t.Fatalf("pooltest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // waited for in Cleanup
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pooltest: Run: %v", err)
		}
	})
	return p
}

package pool_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// picker is what the benchmarks compare: the owner loop against the two
// designs it could have been.
type picker interface {
	pick() *url.URL
}

type actorPicker struct{ p *pool.Pool }

func (a actorPicker) pick() *url.URL {
	b, err := a.p.Pick(context.Background(), nil)
	if err != nil {
		panic(err)
	}
	return b.URL()
}

// mutexPicker is the classic design: one lock around the list and the cursor.
type mutexPicker struct {
	mu     sync.Mutex
	urls   []*url.URL
	alive  []bool
	cursor int
}

func (m *mutexPicker) pick() *url.URL {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.urls {
		i := (m.cursor + k) % len(m.urls)
		if m.alive[i] {
			m.cursor = i + 1
			return m.urls[i]
		}
	}
	return nil
}

// snapshotPicker is the lock-free design: readers load an immutable list of
// the alive backends and bump an atomic counter; writers publish a new list.
type snapshotPicker struct {
	alive  atomic.Pointer[[]*url.URL]
	cursor atomic.Uint64
}

func (s *snapshotPicker) pick() *url.URL {
	l := *s.alive.Load()
	return l[s.cursor.Add(1)%uint64(len(l))]
}

func parsed(raw []string) []*url.URL {
	out := make([]*url.URL, len(raw))
	for i, r := range raw {
		out[i], _ = pool.ParseURL(r)
	}
	return out
}

// runCallers runs pick with the given number of concurrent callers.
func runCallers(b *testing.B, callers int, pick func()) {
	b.ReportAllocs()
	if callers == 1 {
		for b.Loop() {
			pick()
		}
		return
	}
	b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pick()
		}
	})
}

// BenchmarkPick compares the owner loop with a mutex and an atomic snapshot
// at 1, 8 and 64 concurrent callers, three backends.
func BenchmarkPick(b *testing.B) {
	raw := urls(3)
	alive := []bool{true, true, true}
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("design=actor/callers=%d", callers), func(b *testing.B) {
			p := actorPicker{pooltest.Start(b, pool.Config{}, raw...)}
			runCallers(b, callers, func() { p.pick() })
		})
		b.Run(fmt.Sprintf("design=mutex/callers=%d", callers), func(b *testing.B) {
			m := &mutexPicker{urls: parsed(raw), alive: alive}
			runCallers(b, callers, func() { m.pick() })
		})
		b.Run(fmt.Sprintf("design=snapshot/callers=%d", callers), func(b *testing.B) {
			s := &snapshotPicker{}
			l := parsed(raw)
			s.alive.Store(&l)
			runCallers(b, callers, func() { s.pick() })
		})
	}
}

// BenchmarkPickScale measures a pick through the owner loop as the pool grows,
// for every strategy, with 8 concurrent callers that take and give back a
// slot, so that least-connections and random-two see real counts.
// "round-robin-weighted" gives the backends weights 1 to 5, which turns on
// the smooth weighted round-robin (a pass over the members) in place of
// plain rotation; "hash" gives each pick a different key.
//
//	go test -run '^$' -bench PickScale -benchtime 20000x ./pool
func BenchmarkPickScale(b *testing.B) {
	for _, strategy := range []pool.Strategy{pool.RoundRobin, "round-robin-weighted", pool.LeastConnections, pool.RandomTwo, pool.Hash} {
		for _, n := range []int{3, 100, 1000} {
			b.Run(fmt.Sprintf("strategy=%s/backends=%d", strategy, n), func(b *testing.B) {
				specs := pool.URLs(urls(n)...)
				cfg := pool.Config{Strategy: strategy}
				if strategy == "round-robin-weighted" {
					cfg.Strategy = pool.RoundRobin
					for i := range specs {
						specs[i].Weight = 1 + i%5
					}
				}
				p := pooltest.StartSpecs(b, cfg, specs...)
				ctx := context.Background()
				var key atomic.Uint64
				runCallers(b, 8, func() {
					req := pool.PickRequest{Hash: key.Add(0x9e3779b97f4a7c15), HasHash: true}
					be, err := p.PickFor(ctx, req)
					if err != nil {
						panic(err)
					}
					be.Acquire()
					be.Release()
				})
			})
		}
	}
}

package main

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// series makes a sample every 5s over d with f(minutes, noise) as the
// goroutine count.
func series(d time.Duration, f func(m float64, rng *rand.Rand) float64) []sample {
	rng := rand.New(rand.NewPCG(1, 2))
	var s []sample
	for at := sampleEvery; at <= d; at += sampleEvery {
		s = append(s, sample{at: at, goroutines: f(at.Minutes(), rng)})
	}
	return s
}

func goroutines() resource { return resources[0] }

func TestJudge(t *testing.T) {
	const d = 10 * time.Minute
	for _, tc := range []struct {
		name string
		f    func(m float64, rng *rand.Rand) float64
		grew bool
	}{
		{"flat with noise", func(_ float64, rng *rand.Rand) float64 { return 100 + rng.NormFloat64()*8 }, false},
		{"wide sawtooth", func(m float64, _ *rand.Rand) float64 { return 100 + 40*(m*3-float64(int(m*3))) }, false},
		{"outliers", func(_ float64, rng *rand.Rand) float64 {
			if rng.IntN(10) == 0 {
				return 400
			}
			return 100
		}, false},
		{"warm-up ramp, then flat", func(m float64, _ *rand.Rand) float64 { return 100 + 50*min(m, 2) }, false},
		{"low early minute, then flat", func(m float64, _ *rand.Rand) float64 {
			if m < 3 {
				return 60
			}
			return 100
		}, false},
		{"a step in the last seconds", func(m float64, _ *rand.Rand) float64 {
			if m > 9.8 {
				return 200
			}
			return 100
		}, false},
		{"going down", func(m float64, _ *rand.Rand) float64 { return 200 - 10*m }, false},
		{"steady leak", func(m float64, rng *rand.Rand) float64 { return 100 + 6*m + rng.NormFloat64()*5 }, true},
		// Two kills a minute. One goroutine per kill is 14 over the judged
		// minutes: within the tolerance under load, left to the idle check
		// at the end (20 kills, 10 allowed). Two per kill are caught here.
		{"one goroutine per kill", func(m float64, _ *rand.Rand) float64 { return 100 + float64(int(m*2)) }, false},
		{"two goroutines per kill", func(m float64, _ *rand.Rand) float64 { return 100 + 2*float64(int(m*2)) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := judge(goroutines(), series(d, tc.f), d)
			assert.False(t, j.tooFew)
			assert.Equal(t, tc.grew, j.grew, "early %.0f late %.0f growth %.0f allowed %.0f rise %.0f", j.early, j.late, j.growth, j.allowed, j.rise)
		})
	}
}

func TestJudgeNeedsSamples(t *testing.T) {
	j := judge(goroutines(), series(time.Minute, func(float64, *rand.Rand) float64 { return 1 })[:6], 10*time.Minute)
	assert.True(t, j.tooFew)
}

func TestWindows(t *testing.T) {
	warm, window := windows(10 * time.Minute)
	assert.Equal(t, 2*time.Minute, warm)
	assert.Equal(t, time.Minute, window)
	warm, window = windows(2 * time.Minute)
	assert.Equal(t, 24*time.Second, warm)
	assert.Equal(t, 32*time.Second, window)
}

func TestTheilSen(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4, 5, 6}
	ys := []float64{0, 2, 4, 100, 8, 10, 12} // one outlier
	assert.InDelta(t, 2, theilSen(xs, ys), 1e-9)
	assert.Equal(t, 0.0, theilSen([]float64{1, 1}, []float64{3, 5}))
	assert.InDelta(t, 2.5, median([]float64{4, 1, 3, 2}), 1e-9)
}

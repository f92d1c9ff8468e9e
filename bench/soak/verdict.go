package main

import (
	"math"
	"slices"
	"time"
)

// resource is one of the proxy's four resources, with how much it may grow
// before the soak calls it a leak.
type resource struct {
	name string
	unit float64 // shown divided by this
	// Under load, growth over the run up to the larger of abs and rel times
	// the early median is noise (in-flight connections, the GC's sawtooth).
	abs, rel float64
	// idle: once the load is over and the proxy's idle connections have
	// timed out, how far above its idle reading before the load the
	// resource may stay; 0 for memory, which the Go runtime keeps.
	idle float64
	get  func(sample) float64
}

const mib = 1 << 20

// resources are the four resources judged. The tolerances are a few times
// the spread of the per-minute medians in runs with no leak (goroutines
// ±3, heap ±1.5 MiB, RSS flat, fds ±1 over a 10-minute run).
var resources = []resource{
	{name: "goroutines", unit: 1, abs: 25, rel: 0.15, idle: 10, get: func(s sample) float64 { return s.goroutines }},
	{name: "heap in use (MiB)", unit: mib, abs: 4 * mib, rel: 0.25, get: func(s sample) float64 { return s.heapInuse }},
	{name: "RSS (MiB)", unit: mib, abs: 8 * mib, rel: 0.15, get: func(s sample) float64 { return s.rss }},
	{name: "open fds", unit: 1, abs: 15, rel: 0.15, idle: 5, get: func(s sample) float64 { return s.fds }},
}

// windows returns the run's warm-up, after which samples count, and the
// length of the early and late windows compared: for 10 minutes, 2 minutes
// of warm-up, then the 3rd minute against the 10th.
func windows(d time.Duration) (warm, window time.Duration) {
	warm = min(2*time.Minute, d/5)
	window = min(time.Minute, (d-warm)/3)
	return warm, window
}

// judgement is the verdict on one resource.
type judgement struct {
	early, late float64 // medians of the early and late windows
	growth      float64 // late - early
	allowed     float64 // growth tolerated
	rise        float64 // the robust trend line's rise over the judged span
	grew        bool    // growth and rise both beyond what is tolerated
	tooFew      bool    // not enough samples to judge
}

// judge says whether r grew steadily over the samples of a run of length
// d. It grew if both
//
//   - the median of the last window is above the median of the first window
//     after the warm-up by more than allowed (max(abs, rel × early median)):
//     medians, so that a GC cycle or a burst of connections at one sample
//     weighs nothing; and
//   - the Theil–Sen line through every sample after the warm-up (the median
//     of the slopes between all pairs of samples, which a minority of
//     outliers cannot move) rises by more than half of allowed over that
//     span: so that a dip in the early window, or a step up in the last
//     seconds, is not taken for a trend.
//
// A leak of a goroutine per kill, or of a few bytes per request, passes
// both; a resource that wanders within a band passes neither.
func judge(r resource, samples []sample, d time.Duration) judgement {
	warm, window := windows(d)
	var j judgement
	var early, late, xs, ys []float64
	for _, s := range samples {
		if s.at < warm {
			continue
		}
		v := r.get(s)
		xs = append(xs, s.at.Minutes())
		ys = append(ys, v)
		if s.at <= warm+window {
			early = append(early, v)
		}
		if s.at >= d-window {
			late = append(late, v)
		}
	}
	if len(early) < 3 || len(late) < 3 {
		j.tooFew = true
		return j
	}
	j.early, j.late = median(early), median(late)
	j.growth = j.late - j.early
	j.allowed = max(r.abs, r.rel*j.early)
	j.rise = theilSen(xs, ys) * (xs[len(xs)-1] - xs[0])
	j.grew = j.growth > j.allowed && j.rise > j.allowed/2
	return j
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// theilSen returns the median of the slopes between every pair of points
// with distinct xs.
func theilSen(xs, ys []float64) float64 {
	var slopes []float64
	for i := range xs {
		for k := i + 1; k < len(xs); k++ {
			if dx := xs[k] - xs[i]; dx != 0 {
				slopes = append(slopes, (ys[k]-ys[i])/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return 0
	}
	return median(slopes)
}

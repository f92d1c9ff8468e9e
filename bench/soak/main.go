// Command soak is the load of bench/soak.sh: a leak hunt that runs a mixed,
// moderate load through the proxy for minutes, kills and restarts its
// backends and churns its admin API meanwhile, samples the proxy's
// goroutines, heap, RSS and open file descriptors from its /metrics, and
// fails if one of them grows steadily or a request fails in a way the kills
// do not explain.
//
//	soak -backends 127.0.0.1:19101,127.0.0.1:19102   # serve soak backends, nothing else
//	soak -proxy 127.0.0.1:19100 -admin 127.0.0.1:19110 -config config.json \
//	     -pool 127.0.0.1:19101,127.0.0.1:19102,127.0.0.1:19103 -spare 127.0.0.1:19104 -d 10m
//
// In the second form it starts the backends itself (-pool, the config's, and
// -spare), one process each, so that a kill is a crash; the proxy must
// already run with that config. It prints a row of samples and counts at the
// start and at the end of every minute, then the totals and the verdict, and
// exits 0 (pass), 1 (fail) or 2 (bad flags). soak.sh documents the criterion;
// judge, in verdict.go, applies it.
//
// Goroutines: main runs the recorder (recorder.run), the load's workers
// (loader.run, one goroutine per worker) and the churn (churn.run), each
// under a context main cancels, and waits for all three groups before it
// judges; the fleet runs one goroutine per backend process, which reaps it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	backends := flag.String("backends", "", "serve soak backends on these comma-separated addresses, and nothing else")
	o := options{}
	flag.StringVar(&o.proxy, "proxy", "127.0.0.1:19100", "the proxy's address")
	flag.StringVar(&o.admin, "admin", "127.0.0.1:19110", "the proxy's admin API")
	flag.StringVar(&o.config, "config", "", "the proxy's config file, edited and reloaded every minute")
	pool := flag.String("pool", "127.0.0.1:19101,127.0.0.1:19102,127.0.0.1:19103",
		"the config's backends, in its order: started, killed and restarted by the soak")
	flag.StringVar(&o.spare, "spare", "127.0.0.1:19104", "a backend the soak runs and the admin churn adds and removes")
	flag.DurationVar(&o.d, "d", 10*time.Minute, "how long the load runs (at least 1m)")
	flag.DurationVar(&o.settle, "settle", 30*time.Second,
		"after the load, how long the proxy gets to close its idle connections (more than its backend_idle_timeout)")
	flag.StringVar(&o.logDir, "logs", "", "directory for the backends' output (default: stderr)")
	flag.StringVar(&o.samplesFile, "samples", "", "write every sample there, as CSV")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *backends != "" {
		if err := serveBackends(ctx, strings.Split(*backends, ",")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	o.pool = strings.Split(*pool, ",")
	if o.config == "" || o.d < time.Minute || len(o.pool) != 3 {
		fmt.Fprintln(os.Stderr, "soak: need -config, -d of at least 1m and three -pool backends")
		os.Exit(2)
	}
	os.Exit(soak(ctx, o))
}

type options struct {
	proxy, admin, config, spare, logDir string
	samplesFile                         string
	pool                                []string
	d, settle                           time.Duration
}

// sampleEvery is the time between two readings of /metrics: 12 a minute for
// the medians, one of them at the minute's turn for the table.
const sampleEvery = 5 * time.Second

// soak runs the whole soak and returns the exit code.
func soak(ctx context.Context, o options) int {
	out := os.Stdout
	fl, err := newFleet(o.logDir)
	if err != nil {
		return harness(err)
	}
	defer fl.stopAll()
	for _, addr := range append(slices.Clone(o.pool), o.spare) {
		if err := fl.start(addr); err != nil {
			return harness(err)
		}
	}

	adminC := &http.Client{Timeout: 10 * time.Second}
	admin := "http://" + o.admin
	generation, err := waitReady(ctx, adminC, admin, len(o.pool))
	if err != nil {
		return harness(err)
	}
	base, _, err := idleFloor(ctx, adminC, admin, 5)
	if err != nil {
		return harness(err)
	}

	warm, window := windows(o.d)
	fmt.Fprintf(out, "soak: %v of load on %s, samples of its /metrics every %v; warm-up %v, then %v–%v against the last %v\n\n",
		o.d, o.proxy, sampleEvery, warm, warm, warm+window, window)
	fmt.Fprintln(out, "| at | goroutines | heap in use MiB | RSS MiB | open fds | requests | ok | expected errors | unexpected errors | kills | reloads |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|")
	fmt.Fprintf(out, "| start | %s | | | | | | |\n", resourceCells(base))

	t0 := time.Now()
	rec := newRecorder(t0, o.d)
	recCtx, stopRec := context.WithCancel(context.Background())
	var recWG sync.WaitGroup
	recWG.Go(func() { rec.run(recCtx) }) // waited for by recWG.Wait, at the end of soak
	defer func() { stopRec(); recWG.Wait() }()

	loadStop, endLoad := context.WithCancel(ctx)
	defer endLoad()
	hard, cut := context.WithCancel(context.Background())
	defer cut()
	ld := newLoader(o.proxy, rec, loadStop, hard)
	loadDone := make(chan struct{})
	go func() { // waited for through loadDone, below
		ld.run()
		close(loadDone)
	}()

	ch := &churn{fleet: fl, pool: o.pool, spare: o.spare, admin: admin, config: o.config,
		client: adminC, rec: rec, t0: t0, generation: generation}
	churnCtx, endChurn := context.WithCancel(ctx)
	defer endChurn()
	churnErr := make(chan error, 1)
	go func() { churnErr <- ch.run(churnCtx) }() // waited for through churnErr, below
	// stop ends the load and the churn and waits for the load's requests
	// to end, cutting them after 45 s; a second call returns at once.
	stop := func() {
		endLoad()
		endChurn()
		waitFor(loadDone, 45*time.Second, cut)
	}

	// Sample until the end, or an interrupt, or the churn failing.
	var samples []sample
	var problems []string
	interrupted := false
	t := time.NewTicker(sampleEvery)
	minutes := 0
sampling:
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			interrupted = true
			break sampling
		case err := <-churnErr:
			churnErr <- err          // for the wait below
			interrupted = err == nil // the churn ends early only on an error, or on ctx's end
			break sampling
		case <-t.C:
		}
		at := time.Duration(i) * sampleEvery
		s, _, err := scrape(ctx, adminC, admin+"/metrics")
		if err != nil {
			rec.send(outcome{client: adminCall, fail: failHarness, detail: err.Error(), start: time.Now(), end: time.Now()})
		} else {
			s.at = at
			samples = append(samples, s)
		}
		if at%time.Minute == 0 && at < o.d {
			minutes++
			printRow(out, rec, minutes-1, label(at), s, err)
		}
		if at >= o.d {
			// The last row: sampled now, counted once the requests still
			// running have ended.
			stop()
			printRow(out, rec, rec.minutes-1, label(o.d), s, err)
			break
		}
	}
	t.Stop()
	if interrupted {
		cut() // whoever pressed Ctrl-C wants it over
	}
	stop()
	if err := <-churnErr; err != nil {
		problems = append(problems, fmt.Sprintf("the soak stopped: %v", err))
	}
	ld.closeIdle()
	if o.samplesFile != "" {
		if err := writeSamples(o.samplesFile, base, samples); err != nil {
			problems = append(problems, err.Error())
		}
	}
	rep, _ := rec.report()
	printTotals(out, rep)
	if interrupted {
		fmt.Fprintln(out, "\nsoak: interrupted; no verdict")
		return 1
	}

	// Idle again: how far the proxy comes back towards where it started.
	after, codes := settle(ctx, adminC, admin, base, o.settle)
	printCodes(out, codes)
	fmt.Fprintln(out)
	problems = append(problems, verdict(out, samples, base, after, o.d)...)
	problems = append(problems, idlePool(adminC, admin, len(o.pool))...)
	if n := sumUnexpected(rep); n > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected errors (listed above)", n))
	}
	if len(problems) > 0 {
		fmt.Fprintln(out, "\nsoak: FAIL")
		for _, p := range problems {
			fmt.Fprintln(out, "  -", p)
		}
		return 1
	}
	fmt.Fprintln(out, "\nsoak: PASS")
	return 0
}

// writeSamples writes the idle sample before the load (at 0) and every
// sample of the run as CSV.
func writeSamples(path string, base sample, samples []sample) error {
	var b strings.Builder
	b.WriteString("seconds,goroutines,heap_inuse_bytes,rss_bytes,open_fds\n")
	for _, s := range append([]sample{base}, samples...) {
		fmt.Fprintf(&b, "%.0f,%.0f,%.0f,%.0f,%.0f\n", s.at.Seconds(), s.goroutines, s.heapInuse, s.rss, s.fds)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	return nil
}

// pause waits for d, or until ctx is done; it says whether it waited the
// whole time.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// label names a time of the run for the table: 1m, 2m, ... or 2m30s.
func label(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.Round(time.Second).String()
}

func harness(err error) int {
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// waitFor waits for done up to d, then calls cut and waits for done.
func waitFor(done <-chan struct{}, d time.Duration, cut func()) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cut()
		<-done
	}
}

// waitReady waits until the admin API answers and every pool member is
// in rotation, and returns the config generation in force.
func waitReady(ctx context.Context, c *http.Client, admin string, n int) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var st struct {
			ActiveBackends int `json:"active_backends"`
			Config         *struct {
				Generation int `json:"generation"`
			} `json:"config"`
		}
		res, err := c.Get(admin + "/status")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
		}
		switch {
		case err != nil:
			last = err.Error()
		case st.ActiveBackends != n || st.Config == nil:
			last = fmt.Sprintf("%d of %d backends active", st.ActiveBackends, n)
		default:
			return st.Config.Generation, nil
		}
		if !pause(ctx, 200*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("soak: the proxy is not ready after 20s: %s", last)
}

// idleFloor reads /metrics n times a second apart and returns the least
// reading of each resource: the idle proxy without the health checks'
// connections that come and go.
func idleFloor(ctx context.Context, c *http.Client, admin string, n int) (sample, map[string]float64, error) {
	var floor sample
	var codes map[string]float64
	for i := range n {
		if i > 0 && !pause(ctx, time.Second) {
			return sample{}, nil, ctx.Err()
		}
		s, cs, err := scrape(ctx, c, admin+"/metrics")
		if err != nil {
			return sample{}, nil, err
		}
		codes = cs
		if i == 0 {
			floor = s
			continue
		}
		floor.goroutines = min(floor.goroutines, s.goroutines)
		floor.heapInuse = min(floor.heapInuse, s.heapInuse)
		floor.rss = min(floor.rss, s.rss)
		floor.fds = min(floor.fds, s.fds)
	}
	return floor, codes, nil
}

// settle gives the idle proxy d/2 to close its idle connections, then reads
// its idle floor (idleFloor) until the goroutines and fds are within their
// idle tolerance of base, or d has passed; it returns the last floor and
// the proxy's count of requests by status.
func settle(ctx context.Context, c *http.Client, admin string, base sample, d time.Duration) (sample, map[string]float64) {
	deadline := time.Now().Add(d)
	pause(ctx, d/2)
	for {
		s, codes, err := idleFloor(ctx, c, admin, 3)
		back := err == nil
		for _, r := range resources {
			if back && r.idle > 0 && r.get(s) > r.get(base)+r.idle {
				back = false
			}
		}
		if back || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				s.goroutines, s.heapInuse, s.rss, s.fds = math.NaN(), math.NaN(), math.NaN(), math.NaN()
			}
			return s, codes
		}
	}
}

// idlePool checks the pool once the load is over: exactly the config's
// backends, all in rotation, none draining, and no request in flight on any
// (a pick not paired with a release would show here).
func idlePool(c *http.Client, admin string, n int) []string {
	var st struct {
		ActiveBackends   int `json:"active_backends"`
		TotalBackends    int `json:"total_backends"`
		DrainingBackends int `json:"draining_backends"`
		Backends         []struct {
			URL                string `json:"url"`
			CurrentConnections int64  `json:"current_connections"`
		} `json:"backends"`
	}
	res, err := c.Get(admin + "/status")
	if err != nil {
		return []string{"idle pool: " + err.Error()}
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return []string{"idle pool: /status: " + err.Error()}
	}
	var problems []string
	if st.ActiveBackends != n || st.TotalBackends != n || st.DrainingBackends != 0 {
		problems = append(problems, fmt.Sprintf("idle pool: %d active, %d in the pool, %d draining; want %d, %d, 0",
			st.ActiveBackends, st.TotalBackends, st.DrainingBackends, n, n))
	}
	for _, b := range st.Backends {
		if b.CurrentConnections != 0 {
			problems = append(problems, fmt.Sprintf("idle pool: %s has %d requests in flight with no load", b.URL, b.CurrentConnections))
		}
	}
	return problems
}

func resourceCells(s sample) string {
	return fmt.Sprintf("%.0f | %.1f | %.1f | %.0f", s.goroutines, s.heapInuse/mib, s.rss/mib, s.fds)
}

func printRow(out io.Writer, rec *recorder, m int, at string, s sample, scrapeErr error) {
	cells := resourceCells(s)
	if scrapeErr != nil {
		cells = "? | ? | ? | ?"
	}
	rep, ok := rec.report()
	if !ok || m >= len(rep.minutes) {
		fmt.Fprintf(out, "| %s | %s | | | | | | |\n", at, cells)
		return
	}
	mm := rep.minutes[m]
	fmt.Fprintf(out, "| %s | %s | %d | %d | %d | %d | %d | %d |\n", at, cells,
		mm.requests, mm.ok, mm.expected, mm.unexpected, mm.kills, mm.reloads)
}

func printTotals(out io.Writer, rep report) {
	fmt.Fprintln(out, "\n| load | requests | ok | expected errors | unexpected errors | cut by the end of the run |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	var all tally
	for c := range numClients {
		t := rep.clients[c]
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %d |\n", c, t.requests, t.ok, t.expected, t.unexpected, t.cancelled)
		all.requests += t.requests
		all.ok += t.ok
		all.expected += t.expected
		all.unexpected += t.unexpected
		all.cancelled += t.cancelled
	}
	fmt.Fprintf(out, "| **all** | %d | %d | %d | %d | %d |\n", all.requests, all.ok, all.expected, all.unexpected, all.cancelled)
	fmt.Fprintf(out, "\n%d echoes over upgraded connections; %d backend kills\n", rep.messages, rep.kills)
	if len(rep.fails) > 0 {
		keys := make([]failKey, 0, len(rep.fails))
		for k := range rep.fails {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b failKey) int {
			if a.expected != b.expected {
				if a.expected {
					return -1
				}
				return 1
			}
			if a.client != b.client {
				return int(a.client) - int(b.client)
			}
			return strings.Compare(a.fail, b.fail)
		})
		fmt.Fprintln(out, "\n| errors by kind | load | count | |")
		fmt.Fprintln(out, "|---|---|---|---|")
		for _, k := range keys {
			why := "UNEXPECTED"
			if k.expected {
				why = "expected: in flight at a kill of its backend"
			}
			fmt.Fprintf(out, "| %s | %s | %d | %s |\n", k.fail, k.client, rep.fails[k], why)
		}
	}
	if len(rep.unexpected) > 0 {
		fmt.Fprintf(out, "\nunexpected errors (the first %d; seconds since the load began):\n", maxLogged)
		for _, u := range rep.unexpected {
			fmt.Fprintln(out, " ", u)
		}
	}
}

func printCodes(out io.Writer, codes map[string]float64) {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %.0f", k, codes[k]))
	}
	fmt.Fprintf(out, "\nthe proxy's switchyard_requests_total by code: %s\n", strings.Join(parts, ", "))
}

func sumUnexpected(rep report) int {
	n := 0
	for _, t := range rep.clients {
		n += t.unexpected
	}
	return n
}

// verdict prints the judgement on each resource and returns the problems.
func verdict(out io.Writer, samples []sample, base, after sample, d time.Duration) []string {
	warm, window := windows(d)
	fmt.Fprintf(out, "| resource | idle before | median %v–%v | median last %v | growth | allowed | trend over %v–%v | idle after | verdict |\n",
		warm, warm+window, window, warm, d)
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|")
	var problems []string
	for _, r := range resources {
		j := judge(r, samples, d)
		u := func(v float64) string { return fmt.Sprintf("%.1f", v/r.unit) }
		if r.unit == 1 {
			u = func(v float64) string { return fmt.Sprintf("%.0f", v) }
		}
		idleAfter := u(r.get(after))
		stuck := r.idle > 0 && !(r.get(after) <= r.get(base)+r.idle) // NaN: stuck
		if r.idle > 0 {
			idleAfter += fmt.Sprintf(" (≤ %s)", u(r.get(base)+r.idle))
		}
		v := "ok"
		switch {
		case j.tooFew:
			v = "too few samples"
			problems = append(problems, fmt.Sprintf("%s: too few samples to judge", r.name))
		case j.grew:
			v = "GROWS"
			problems = append(problems, fmt.Sprintf("%s grows: median %s -> %s (+%s, allowed +%s), trend +%s over the run",
				r.name, u(j.early), u(j.late), u(j.growth), u(j.allowed), u(j.rise)))
		}
		if stuck {
			v = strings.TrimPrefix(v+", NOT BACK WHEN IDLE", "ok, ")
			problems = append(problems, fmt.Sprintf("%s: %s idle before the load, %s idle after it (allowed +%s)",
				r.name, u(r.get(base)), u(r.get(after)), u(r.idle)))
		}
		if j.tooFew {
			fmt.Fprintf(out, "| %s | %s | | | | | | %s | %s |\n", r.name, u(r.get(base)), idleAfter, v)
			continue
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %+.1f | %s | %+.1f | %s | %s |\n", r.name, u(r.get(base)),
			u(j.early), u(j.late), j.growth/r.unit, u(j.allowed), j.rise/r.unit, idleAfter, v)
	}
	return problems
}

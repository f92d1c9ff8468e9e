package admin_test

// The status page in a real browser: headless Chromium, driven through the
// DevTools protocol by chromedp. These tests need a Chromium binary; without
// one they skip, unless SWITCHYARD_REQUIRE_BROWSER is set (CI sets it, and
// installs Debian's chromium), and then they fail.
//
// SWITCHYARD_SCREENSHOT_DIR, when set, receives a copy of each screenshot,
// for CI to keep as an artifact.

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/health"
	"github.com/switchyard-proxy/switchyard/pool"
	"github.com/switchyard-proxy/switchyard/pool/pooltest"
	"github.com/switchyard-proxy/switchyard/proxy"
)

const (
	requireBrowserEnv = "SWITCHYARD_REQUIRE_BROWSER"
	chromiumEnv       = "SWITCHYARD_CHROMIUM"
	screenshotDirEnv  = "SWITCHYARD_SCREENSHOT_DIR"

	// browserTimeout bounds a whole browser session: a test that hangs
	// stops the browser with it.
	browserTimeout = 2 * time.Minute
	// stepTimeout bounds each step of a test.
	stepTimeout = 20 * time.Second
)

// chromiumPath finds the browser to drive: $SWITCHYARD_CHROMIUM, else
// chromium or Chrome on PATH. When there is none the test skips, or fails if
// SWITCHYARD_REQUIRE_BROWSER is set.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireBrowserEnv) != "" {
		t.Fatalf("no Chromium binary found (chromium, chromium-browser or google-chrome on PATH, or $%s), and $%s is set",
			chromiumEnv, requireBrowserEnv)
	}
	t.Skipf("no Chromium binary found: install one (Debian: apt-get install chromium) or set $%s to run the browser tests; "+
		"set $%s to make this a failure", chromiumEnv, requireBrowserEnv)
	return ""
}

// tab is one browser with one tab, for one test. It records every console
// error or warning, uncaught exception, browser log entry of level warning
// or error (CSP violations among them), and, through a listener the page
// cannot see past, every securitypolicyviolation event.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
	// expected says which log entries a test expects, such as the 401
	// that makes the page ask for the token.
	expected func(e *cdplog.Entry) bool
}

// cspRecorder runs in every document before the page's own script; the
// DevTools protocol injects it, so the page's CSP does not apply to it.
const cspRecorder = `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.effectiveDirective + ' refused ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

// newTab starts Chromium with a fresh profile for the length of the test.
// Cleanup closes it, waits for it, and checks that no process of it is left.
func newTab(t *testing.T) *tab {
	t.Helper()
	exe := chromiumPath(t)
	// Made first, so that its removal is the last cleanup, once the browser
	// is gone.
	profile := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		// No network here, and nothing to fetch: without these, Chromium
		// keeps dialling its update and sync services.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1400, 900),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b := &tab{t: t, ctx: tabCtx}
	t.Cleanup(func() {
		// Closing the first tab closes the browser; cancelAlloc waits for
		// its process.
		cancelTab()
		cancelAlloc()
		cancel()
		assertNoProcessUses(t, profile)
	})

	// The first call starts the browser.
	require.NoError(t, chromedp.Listen(tabCtx, b.record))
	_, err := chromedp.Call(tabCtx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder})
	require.NoError(t, err)
	if _, err := os.Stat("/proc/self/cmdline"); err == nil {
		// The check at the end finds the browser's processes by their
		// command line: make sure that it finds them while they run.
		require.NotEmpty(t, processesUsing(profile), "the browser's processes, found by their --user-data-dir")
	}
	return b
}

// record runs on chromedp's reading goroutine: it only appends, under the
// lock, and never touches t.
func (b *tab) record(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			var args []string
			for _, a := range ev.Args {
				if a.Description != "" {
					args = append(args, a.Description)
				} else {
					args = append(args, string(a.Value))
				}
			}
			p = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		p = "uncaught exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			p += " " + ev.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level != cdplog.EntryLevelError && e.Level != cdplog.EntryLevelWarning {
			return
		}
		b.mu.Lock()
		expected := b.expected
		b.mu.Unlock()
		if expected != nil && expected(e) {
			return
		}
		p = fmt.Sprintf("log %s %s: %s %s", e.Source, e.Level, e.Text, e.URL)
	}
	if p != "" {
		b.mu.Lock()
		b.problems = append(b.problems, p)
		b.mu.Unlock()
	}
}

// expect sets which browser log entries are not problems.
func (b *tab) expect(f func(e *cdplog.Entry) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = f
}

// assertClean checks that the browser reported nothing wrong: no console
// error or warning, no exception, no log entry of warning or error, and no
// CSP violation, whether reported by the browser or by the page's event.
func (b *tab) assertClean() {
	b.t.Helper()
	violations := evaluate[[]string](b, `window.__cspViolations`)
	assert.Empty(b.t, violations, "CSP violations")
	b.mu.Lock()
	problems := append([]string(nil), b.problems...)
	b.mu.Unlock()
	assert.Empty(b.t, problems, "console and log")
}

// do runs steps, each bounded by stepTimeout.
func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		err := chromedp.Do(ctx, s)
		cancel()
		require.NoError(b.t, err)
	}
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(b.t, err, "%s", js)
	return v
}

// waitFor waits until the JavaScript expression is truthy, for at most
// within; what says what was awaited when it never is.
func (b *tab) waitFor(js string, within time.Duration, what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(b.t, err, "waiting %s for %s (%s)", within, what, js)
}

// screenshot saves the viewport (or with full, the whole page) as a PNG in
// the test's directory, and in $SWITCHYARD_SCREENSHOT_DIR when set, and
// checks that it is one.
func (b *tab) screenshot(name string, full bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	capture := chromedp.CaptureScreenshot()
	if full {
		capture = chromedp.FullScreenshot(100) // 100: PNG
	}
	shot, err := chromedp.Run(ctx, capture)
	require.NoError(b.t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(b.t, err, "a PNG")
	assert.Positive(b.t, img.Bounds().Dx())
	assert.Positive(b.t, img.Bounds().Dy())
	file := filepath.Join(b.t.TempDir(), name+".png")
	require.NoError(b.t, os.WriteFile(file, shot, 0o644))
	b.t.Logf("screenshot %s: %s (%dx%d)", name, file, img.Bounds().Dx(), img.Bounds().Dy())
	if dir := os.Getenv(screenshotDirEnv); dir != "" {
		keep := filepath.Join(dir, name+".png")
		require.NoError(b.t, os.WriteFile(keep, shot, 0o644))
		b.t.Logf("screenshot %s kept: %s", name, keep)
	}
	return file
}

// processesUsing returns the processes that run with profile as their
// user data directory: Chromium passes it to every process it starts.
// Outside Linux there is no /proc to read, and it finds none.
func processesUsing(profile string) []int {
	want := []byte("--user-data-dir=" + profile)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// assertNoProcessUses checks that the browser left no process behind. One
// that is still there after a grace period is a failure; it is killed, as
// it is this test's own.
func assertNoProcessUses(t *testing.T, profile string) {
	t.Helper()
	var left []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if left = processesUsing(profile); len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if assert.Empty(t, left, "Chromium processes left behind") {
		return
	}
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// livePool is a pool of real backends with a real health checker and a
// real proxy in front, and the admin API over it.
type livePool struct {
	pool     *pool.Pool
	backends []*httptest.Server
	admin    string
	proxy    string
	checker  *health.Checker
}

// startLivePool runs n backends, a pool of them checked every 250 ms, the
// proxy, and the admin API with cfg (its Prober and Info filled in).
func startLivePool(t *testing.T, n int, cfg admin.Config) *livePool {
	t.Helper()
	lp := &livePool{}
	var urls []string
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fail" {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		t.Cleanup(srv.Close)
		lp.backends = append(lp.backends, srv)
		urls = append(urls, srv.URL)
	}
	lp.pool = pooltest.Start(t, pool.Config{Strategy: pool.LeastConnections,
		Passive: &pool.PassiveHealth{ConsecutiveFailures: 50, FailureStatuses: []int{502, 503, 504}, EjectionTime: 30 * time.Second, MaxEjectedPercent: 50}}, urls...)

	var err error
	lp.checker, err = health.New(lp.pool, health.Config{Interval: 250 * time.Millisecond, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lp.checker.Run(ctx) }() // waited for in Cleanup, which runs before the pool's
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})

	px, err := proxy.New(lp.pool, proxy.Config{})
	require.NoError(t, err)
	front := httptest.NewServer(px)
	t.Cleanup(func() {
		front.Close()
		px.CloseIdleConnections()
	})
	lp.proxy = front.URL

	cfg.Prober = lp.checker
	loaded := time.Now().Add(-90 * time.Second).UTC().Format(time.RFC3339)
	cfg.Info = func() admin.Info {
		return admin.Info{Config: &admin.ConfigStatus{Generation: 3, LoadedAt: loaded, LastReload: "ok"}}
	}
	lp.admin = serveAdmin(t, lp.pool, cfg)
	return lp
}

// traffic sends requests through the proxy, one every 20 ms, one in ten of
// them answered 500, until the test ends or 3,000 have been sent: enough
// for the sparklines and the error rates to show something.
func (lp *livePool) traffic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	var wg sync.WaitGroup
	// Waited for by wg.Wait in Cleanup; it stops when ctx is cancelled.
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 3000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			path := "/"
			if i%10 == 9 {
				path = "/fail"
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, lp.proxy+path, nil)
			if err != nil {
				return
			}
			if res, err := client.Do(req); err == nil {
				res.Body.Close()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
	})
}

// member returns the status of the backend at url, and whether it is in the
// pool's listing at all. It takes a require.TestingT so that a condition of
// assert.EventuallyWithT, which testify runs on another goroutine, can pass
// its *assert.CollectT: a failed Status then ends that condition's attempt
// rather than calling the test's FailNow off the test goroutine.
func member(t require.TestingT, p *pool.Pool, url string) (pool.BackendStatus, bool) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	st, err := p.Status(context.Background())
	require.NoError(t, err)
	for _, b := range st.Backends {
		if b.URL == url {
			return b, true
		}
	}
	return pool.BackendStatus{}, false
}

// setFilter replaces the text in the filter box, as typing would.
func (b *tab) setFilter(text string) {
	b.t.Helper()
	evaluate[bool](b, `(() => { const f = document.getElementById('filter'); f.value = `+strconv.Quote(text)+`;
		f.dispatchEvent(new Event('input')); return true; })()`)
}

// row is the selector of a backend's row.
func row(url string) string { return `#backends tbody tr[data-url="` + url + `"]` }

func rowState(url string) string {
	return `(document.querySelector('` + row(url) + `') || {dataset: {}}).dataset.state`
}

// The page over a live pool: it lists the backends, shows a backend killed
// during the test as down once the health check says so, and its buttons
// change the pool through the API.
func TestBrowserPageShowsTheLivePoolAndChangesIt(t *testing.T) {
	lp := startLivePool(t, 4, admin.Config{})
	lp.traffic(t)
	urls := []string{lp.backends[0].URL, lp.backends[1].URL, lp.backends[2].URL, lp.backends[3].URL}
	sorted := slices.Sorted(slices.Values(urls))
	b := newTab(t)

	b.do(chromedp.Navigate(lp.admin + "/"))
	b.waitFor(`document.querySelectorAll('#backends tbody tr').length === 4`, 10*time.Second, "the four backends")
	for _, u := range urls {
		b.waitFor(rowState(u)+` === 'up'`, 10*time.Second, u+" up")
	}
	assert.Equal(t, sorted, evaluate[[]string](b, `[...document.querySelectorAll('#backends tbody tr')].map(tr => tr.dataset.url)`),
		"sorted by URL")
	assert.Equal(t, "4", evaluate[string](b, `document.getElementById('active').textContent`))
	assert.Equal(t, "least-connections", evaluate[string](b, `document.getElementById('strategy').textContent`))
	assert.Equal(t, "3", evaluate[string](b, `document.getElementById('generation').textContent`))
	// Traffic shows: a rate, and the 500s as an error rate.
	b.waitFor(`[...document.querySelectorAll('#backends tbody tr')].some(tr => /5xx [1-9]/.test(tr.textContent))`, 10*time.Second,
		"responses by class")
	b.waitFor(`Number(document.getElementById('rate').textContent) > 0`, 10*time.Second, "a request rate")
	b.waitFor(`document.querySelector('`+row(urls[0])+` .spark polyline').getAttribute('points').split(' ').length >= 3`,
		10*time.Second, "a sparkline")
	b.assertClean()

	// A backend dies: the health check takes it down, and the page shows it
	// within 5 s of the kill.
	lp.backends[0].Close()
	b.waitFor(rowState(urls[0])+` === 'down'`, 5*time.Second, "the killed backend shown down")
	got, _ := member(t, lp.pool, urls[0])
	assert.Equal(t, pool.StateDown, got.State)
	assert.Equal(t, "3", evaluate[string](b, `document.getElementById('active').textContent`))
	b.screenshot("status-page", true)

	// Drain, through its button.
	b.do(chromedp.Click(chromedp.CSS(row(urls[1]) + ` button[data-action="admin"][data-state="drain"]`)))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		m, _ := member(c, lp.pool, urls[1])
		assert.Equal(c, pool.AdminDrain, m.AdminState)
	}, 5*time.Second, 20*time.Millisecond)
	b.waitFor(`document.querySelector('`+row(urls[1])+`').dataset.adminState === 'drain'`, 5*time.Second, "drain shown")
	b.waitFor(`document.querySelector('`+row(urls[1])+` button[data-state="drain"]').getAttribute('aria-pressed') === 'true'`,
		5*time.Second, "the drain button pressed")

	// And ready again.
	b.do(chromedp.Click(chromedp.CSS(row(urls[1]) + ` button[data-action="admin"][data-state="ready"]`)))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		m, _ := member(c, lp.pool, urls[1])
		assert.Equal(c, pool.AdminReady, m.AdminState)
	}, 5*time.Second, 20*time.Millisecond)

	// The weight.
	b.do(chromedp.SendKeys(chromedp.CSS(row(urls[2])+` input[name="weight"]`), "5"),
		chromedp.Click(chromedp.CSS(row(urls[2])+` form button[type="submit"]`)))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		m, _ := member(c, lp.pool, urls[2])
		assert.Equal(c, 5, m.Weight)
	}, 5*time.Second, 20*time.Millisecond)

	// Remove takes two clicks.
	remove := chromedp.CSS(row(urls[3]) + ` button[data-action="remove"]`)
	b.do(chromedp.Click(remove))
	assert.Equal(t, "confirm remove", evaluate[string](b, `document.querySelector('`+string(remove)+`').textContent`))
	_, listed := member(t, lp.pool, urls[3])
	assert.True(t, listed, "one click removes nothing")
	b.do(chromedp.Click(remove))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		_, listed := member(c, lp.pool, urls[3])
		assert.False(c, listed, "removed")
	}, 5*time.Second, 20*time.Millisecond)
	b.waitFor(`!document.querySelector('`+row(urls[3])+`')`, 5*time.Second, "the removed row gone")

	// Add one, through the form: the probe brings it up at once.
	extra := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(extra.Close)
	b.do(chromedp.SendKeys(chromedp.ID("add-url"), extra.URL), chromedp.SendKeys(chromedp.ID("add-weight"), "2"),
		chromedp.Click(chromedp.ID("add-button")))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		m, listed := member(c, lp.pool, extra.URL)
		assert.True(c, listed)
		assert.Equal(c, 2, m.Weight)
	}, 5*time.Second, 20*time.Millisecond)
	b.waitFor(rowState(extra.URL)+` === 'up'`, 5*time.Second, "the added backend shown up")

	// An error is shown as the API wrote it: adding it again is a 409.
	direct, err := send(lp.admin, http.MethodPost, "/backends", `{"url": "`+extra.URL+`"}`, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, direct.code)
	apiSays := errorOf(t, direct)
	// The 409 is expected in the browser's log; nothing else is.
	b.expect(func(e *cdplog.Entry) bool {
		return e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "409") && strings.HasSuffix(e.URL, "/backends")
	})
	b.do(chromedp.SendKeys(chromedp.ID("add-url"), extra.URL), chromedp.Click(chromedp.ID("add-button")))
	b.waitFor(`document.querySelector('#messages li.error')`, 5*time.Second, "the error shown")
	assert.Equal(t, apiSays, evaluate[string](b, `document.querySelector('#messages li.error .text').textContent`))
	assert.Contains(t, evaluate[string](b, `document.querySelector('#messages li.error .what').textContent`), "(409)")

	// Sorting and filtering.
	b.do(chromedp.Click(chromedp.CSS(`#backends th[data-key="state"] button`)))
	assert.Equal(t, urls[0], evaluate[string](b, `document.querySelector('#backends tbody tr').dataset.url`), "down sorts first")
	b.do(chromedp.SendKeys(chromedp.ID("filter"), "down"))
	assert.Equal(t, []string{urls[0]}, evaluate[[]string](b,
		`[...document.querySelectorAll('#backends tbody tr')].filter(tr => !tr.hidden).map(tr => tr.dataset.url)`))

	b.assertClean()

	// The detector detects: a script of the test's own, run in the page,
	// breaks the CSP four ways, and each is caught. Trusted Types refuse
	// even this script's string-to-HTML assignment.
	assert.True(t, evaluate[bool](b, `(() => {
		const img = document.createElement('img'); img.src = 'http://192.0.2.1/x.png'; document.body.append(img);
		let refused = false;
		try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); } catch (e) { refused = e instanceof TypeError; }
		const policy = trustedTypes.createPolicy('test', {createScript: (s) => s});
		const s = document.createElement('script'); s.textContent = policy.createScript('1'); document.body.append(s);
		document.body.setAttribute('style', 'color: red');
		return refused; })()`), "Trusted Types refuse an HTML string")
	b.waitFor(`window.__cspViolations.length >= 4`, 5*time.Second, "the CSP violations reported")
	v := strings.Join(evaluate[[]string](b, `window.__cspViolations`), "\n")
	for _, directive := range []string{"img-src", "script-src-elem", "style-src-attr", "require-trusted-types-for"} {
		assert.Contains(t, v, directive+" refused")
	}
}

// On a phone-width screen every backend is a card, and nothing is wider
// than the screen.
func TestBrowserPageOnAPhone(t *testing.T) {
	lp := startLivePool(t, 3, admin.Config{})
	b := newTab(t)
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(lp.admin+"/ui"))
	b.waitFor(`document.querySelectorAll('#backends tbody tr[data-state="up"]').length === 3`, 10*time.Second, "three backends up")
	assert.LessOrEqual(t, evaluate[int](b, `document.documentElement.scrollWidth`), 390, "no horizontal scrolling")
	assert.Equal(t, "grid", evaluate[string](b, `getComputedStyle(document.querySelector('#backends tbody tr')).display`),
		"a row is a card")
	b.screenshot("status-page-phone", true)
	b.assertClean()
}

// With a token, the page asks for it, keeps it for the tab, sends it as a
// Bearer token and never in a URL, and works.
func TestBrowserPageAsksForTheToken(t *testing.T) {
	const token = "s3cret-token"
	lp := startLivePool(t, 2, admin.Config{Token: token})
	b := newTab(t)
	// The 401s that make the page ask are expected; nothing else is.
	b.expect(func(e *cdplog.Entry) bool {
		return e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "401") && strings.HasSuffix(e.URL, "/status")
	})

	b.do(chromedp.Navigate(lp.admin + "/"))
	b.waitFor(`document.getElementById('token-dialog').open`, 10*time.Second, "the token asked for")
	assert.Zero(t, evaluate[int](b, `document.querySelectorAll('#backends tbody tr').length`), "no data without the token")
	assert.True(t, evaluate[bool](b, `document.getElementById('token-button').hidden`), "no second way in while the dialog is open")
	b.screenshot("status-page-token-dialog", false)

	// A wrong one is refused, and asked for again.
	b.do(chromedp.SendKeys(chromedp.ID("token-input"), "wrong"), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.waitFor(`document.getElementById('token-dialog').open && !document.getElementById('token-error').hidden`, 10*time.Second,
		"the wrong token refused")
	assert.Equal(t, "That token was refused.", evaluate[string](b, `document.getElementById('token-error').textContent`))

	b.do(chromedp.SendKeys(chromedp.ID("token-input"), token), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.waitFor(`document.querySelectorAll('#backends tbody tr[data-state="up"]').length === 2`, 10*time.Second, "the backends")
	assert.False(t, evaluate[bool](b, `document.getElementById('token-dialog').open`))
	assert.Equal(t, token, evaluate[string](b, `sessionStorage.getItem('switchyard.adminToken')`), "kept for the tab")
	assert.NotContains(t, evaluate[string](b, `location.href`), token, "never in a URL")
	resources := evaluate[[]string](b, `performance.getEntriesByType('resource').map(e => e.name)`)
	require.NotEmpty(t, resources)
	for _, r := range resources {
		assert.NotContains(t, r, token, "never in a URL")
	}

	// It works: drain through the page, with the token.
	u := lp.backends[0].URL
	b.do(chromedp.Click(chromedp.CSS(row(u) + ` button[data-action="admin"][data-state="drain"]`)))
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		m, _ := member(c, lp.pool, u)
		assert.Equal(c, pool.AdminDrain, m.AdminState)
	}, 5*time.Second, 20*time.Millisecond)

	// A reload of the tab does not ask again.
	b.do(chromedp.Reload())
	b.waitFor(`document.querySelectorAll('#backends tbody tr').length === 2`, 10*time.Second, "the backends after a reload")
	assert.False(t, evaluate[bool](b, `document.getElementById('token-dialog').open`))
	assert.Equal(t, "forget token", evaluate[string](b, `document.getElementById('token-button').textContent`))
	b.screenshot("status-page-token", false)
	b.assertClean()
}

// 200 backends, some discovered, some draining, some on drain or in
// maintenance: the page lists them all, filters and sorts them.
func TestBrowserPageWithTwoHundredBackends(t *testing.T) {
	var specs []pool.Spec
	for i := range 200 {
		s := pool.Spec{URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/100, i%100), Weight: 1 + i%7}
		switch {
		case i%50 == 0:
			s.Source = "dns:api.internal"
		case i%37 == 0:
			s.AdminState = pool.AdminMaintenance
		case i%23 == 0:
			s.AdminState = pool.AdminDrain
		}
		specs = append(specs, s)
	}
	p := pooltest.StartSpecs(t, pool.Config{}, specs...)
	// One removed while a request is in flight: it drains.
	draining := pooltest.BackendOf(t, p, specs[7].URL)
	draining.Acquire()
	t.Cleanup(draining.Release)
	_, err := p.Remove(context.Background(), specs[7].URL)
	require.NoError(t, err)
	base := serveAdmin(t, p, admin.Config{})

	b := newTab(t)
	b.do(chromedp.Navigate(base + "/"))
	b.waitFor(`document.querySelectorAll('#backends tbody tr').length === 200`, 15*time.Second, "200 rows")
	assert.Equal(t, "200 backends", evaluate[string](b, `document.getElementById('shown').textContent`))

	// Discovered and draining backends are marked.
	assert.Equal(t, 4, evaluate[int](b, `document.querySelectorAll('#backends .badge.source').length`))
	assert.Equal(t, "discovered: dns:api.internal", evaluate[string](b, `document.querySelector('`+row(specs[0].URL)+` .badge.source').textContent`))
	assert.Equal(t, "draining", evaluate[string](b, rowState(specs[7].URL)))
	assert.Equal(t, "removed, draining", evaluate[string](b, `document.querySelector('`+row(specs[7].URL)+` .badge.draining').textContent`))
	assert.Equal(t, 1, evaluate[int](b, `document.querySelectorAll('`+row(specs[7].URL)+` button[data-action="readd"]').length`),
		"a draining backend can be added back, not drained")

	b.do(chromedp.SendKeys(chromedp.ID("filter"), "10.0.1.4"))
	assert.Equal(t, "11 of 200 shown", evaluate[string](b, `document.getElementById('shown').textContent`)) // .4, .40-.49
	b.setFilter("discovered")
	assert.Equal(t, "4 of 200 shown", evaluate[string](b, `document.getElementById('shown').textContent`))
	b.setFilter("maintenance")
	assert.Equal(t, "5 of 200 shown", evaluate[string](b, `document.getElementById('shown').textContent`)) // 37, 74, 111, 148, 185

	// Sorted by weight, descending on the second click.
	b.setFilter("")
	b.do(chromedp.Click(chromedp.CSS(`#backends th[data-key="weight"] button`)),
		chromedp.Click(chromedp.CSS(`#backends th[data-key="weight"] button`)))
	weights := evaluate[[]int](b, `[...document.querySelectorAll('#backends tbody tr')].map(tr => Number(tr.querySelector('td.weight .weight-value').textContent))`)
	require.Len(t, weights, 200)
	for i := 1; i < len(weights); i++ {
		assert.GreaterOrEqual(t, weights[i-1], weights[i], "descending by weight at %d", i)
	}
	assert.Equal(t, "descending", evaluate[string](b, `document.querySelector('#backends th[data-key="weight"]').getAttribute('aria-sort')`))
	b.screenshot("status-page-200", false)
	b.assertClean()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/admin"
	"github.com/switchyard-proxy/switchyard/cmd/internal/statefile"
	"github.com/switchyard-proxy/switchyard/pool"
)

// control is the goroutine that owns the configuration in force and the
// state file. Every reload (SIGHUP, POST /reload) and every change to the
// running set made through the admin API goes through its one loop, in
// order, so that a reload never interleaves with an admin change and the
// state file and the pool never disagree: a change is written to the file
// first, and made in the pool only if the write worked.
//
// It is an actor like the pool's owner, but unlike it, it does I/O (it reads
// the config file, writes the state file, opens the access log): that is its
// job, and nothing on the request path waits for it.
type control struct {
	mb   *actor.Mailbox[controlMsg]
	prog *program
	path string // the config file
	env  func(string) string
	hup  <-chan os.Signal // SIGHUP; nil when none is wired
	log  *slog.Logger
	// fsys writes the state file; tests put failures in its place.
	fsys statefile.FS

	// info is what /status shows of the config, readable from any
	// goroutine; the reload counters are for /metrics.
	info               atomic.Pointer[admin.Info]
	reloadOK, reloadNo atomic.Uint64

	// The loop's state, touched only by run.
	cfg          Config
	fields       map[string]json.RawMessage // the file's fields in force
	fileBackends []pool.Spec                // the file's backend list as last loaded
	generation   int
	accessOut    accessLogFile // where the access log goes now
}

type controlMsg interface{ isControlMsg() }

// reloadMsg asks for a reload of the config file.
type reloadMsg struct {
	trigger string // "SIGHUP" or "POST /reload", for the log
	reply   chan reloadReply
}

type reloadReply struct {
	res admin.ReloadResult
	err error
}

// mutateMsg is a change to the running set made through the admin API:
// predict says what the running set becomes (for the state file), apply
// makes the change in the pool. Both run on the control loop.
type mutateMsg struct {
	predict func(running []statefile.Backend) []statefile.Backend
	apply   func(ctx context.Context) error
	reply   chan error
}

func (reloadMsg) isControlMsg() {}
func (mutateMsg) isControlMsg() {}

// errStateFile says that the state file could not be written, so that the
// change asked for was not made.
var errStateFile = errors.New("the state file could not be written; nothing was changed")

func newControl(prog *program, src source) *control {
	c := &control{
		mb: actor.NewMailbox[controlMsg](16), prog: prog, path: src.path, env: src.env, hup: src.hup,
		log: prog.log.With("component", "config"), fsys: statefile.OS,
		cfg: prog.cfg, fields: fileFields(src.data), fileBackends: src.backends, generation: 1,
	}
	c.publish("ok")
	return c
}

// publish makes what /status shows of the config true to the loop's state.
func (c *control) publish(lastReload string) {
	info := &admin.Info{StickyCookie: c.cfg.StickyCookie, Config: &admin.ConfigStatus{
		Generation: c.generation, LoadedAt: time.Now().Format(time.RFC3339), LastReload: lastReload}}
	if c.cfg.HashKey.Kind != "" {
		info.HashKey = c.cfg.HashKey.String()
	}
	if old := c.info.Load(); old != nil && old.Config.Generation == c.generation {
		info.Config.LoadedAt = old.Config.LoadedAt // a refused reload loaded nothing
	}
	c.info.Store(info)
}

// run is the loop. It stops when ctx ends.
func (c *control) run(ctx context.Context) error {
	defer c.mb.Stop()
	for {
		select {
		case m := <-c.mb.Inbox():
			switch m := m.(type) {
			case reloadMsg:
				res, err := c.reload(ctx, m.trigger)
				m.reply <- reloadReply{res, err}
			case mutateMsg:
				m.reply <- c.mutate(ctx, m)
			}
		case <-c.hup:
			// SIGHUP is also what logrotate sends: reopen the access log
			// whatever the reload says, unless the reload has just opened
			// it anew (it moved it elsewhere).
			before := c.accessOut.f
			_, _ = c.reload(ctx, "SIGHUP") // logged and counted by reload
			if c.accessOut.f == before {
				c.reopenAccessLog()
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// Reload makes the control loop reload the config file (admin.Reloader).
func (c *control) Reload(ctx context.Context) (admin.ReloadResult, error) {
	reply := make(chan reloadReply, 1)
	r, err := actor.Call(ctx, c.mb, controlMsg(reloadMsg{trigger: "POST /reload", reply: reply}), reply)
	if err != nil {
		return admin.ReloadResult{}, err
	}
	return r.res, r.err
}

// reload reads the file, checks it whole, and applies it, or nothing.
func (c *control) reload(ctx context.Context, trigger string) (admin.ReloadResult, error) {
	res, err := c.tryReload(ctx)
	if err != nil {
		c.reloadNo.Add(1)
		last := "error: " + err.Error()
		var rerr *admin.ReloadError
		if errors.As(err, &rerr) {
			for _, p := range rerr.Problems {
				c.log.Error("reload refused", "trigger", trigger, "file", c.path, "problem", p)
			}
			last = "error: " + strings.Join(rerr.Problems, "; ")
		} else {
			c.log.Error("reload failed", "trigger", trigger, "file", c.path, "err", err)
		}
		c.publish(last)
		return res, err
	}
	c.reloadOK.Add(1)
	c.log.Info("config reloaded", "trigger", trigger, "generation", res.Generation,
		"added", len(res.Added), "removed", len(res.Removed), "changed", len(res.Changed),
		"settings_changed", res.SettingsChanged, "restart_needed", res.RestartNeeded)
	for _, f := range res.RestartNeeded {
		c.log.Warn("reload left a field as it was: it takes a restart", "field", f)
	}
	return res, nil
}

func (c *control) tryReload(ctx context.Context) (admin.ReloadResult, error) {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return admin.ReloadResult{}, &admin.ReloadError{Problems: []string{err.Error()}}
	}
	cfg, err := loadConfig(data, c.env)
	if err != nil {
		return admin.ReloadResult{}, &admin.ReloadError{Problems: splitLines(err)}
	}
	// fields becomes the file as last loaded, but with the values in force
	// of what the reload leaves as it was: a later reload compares with
	// what runs, and says again what still takes a restart.
	fields := fileFields(data)
	res := admin.ReloadResult{Added: []string{}, Removed: []string{}, Changed: []string{},
		RestartNeeded: []string{}, SettingsChanged: []string{}}
	for _, f := range changedFields(c.fields, fields) {
		if f == "tls" {
			restart := len(res.RestartNeeded)
			res.RestartNeeded, res.SettingsChanged = tlsChange(c.cfg.TLS, cfg.TLS, res.RestartNeeded, res.SettingsChanged)
			if len(res.RestartNeeded) > restart {
				fields[f] = c.fields[f]
			}
			continue
		}
		if i := restartField(f); i >= 0 {
			res.RestartNeeded = append(res.RestartNeeded, f)
			restartFields[i].keep(&cfg, &c.cfg)
			fields[f] = c.fields[f]
		} else {
			res.SettingsChanged = append(res.SettingsChanged, f)
		}
	}
	// The discovery sources are part of "backends": their lookups were
	// started at start-up.
	if !slices.Equal(cfg.Sources, c.cfg.Sources) {
		res.RestartNeeded = append(res.RestartNeeded, sourcesField)
		cfg.Sources = c.cfg.Sources
	}
	cfg.TLS = keepTLSPort(c.cfg.TLS, cfg.TLS)

	// Everything that can fail is done before anything changes. (The
	// parts below check their config again; loadConfig has checked it
	// already, so their refusal would be a bug, and is reported as one.)
	out := c.accessOut
	if cfg.AccessLog != c.cfg.AccessLog {
		if out, err = openAccessLog(cfg.AccessLog, c.prog.stdout); err != nil {
			return res, &admin.ReloadError{Problems: []string{"access_log: " + err.Error()}}
		}
	}
	var running []statefile.Backend // the running set before, when there is a state file
	fail := func(err error) (admin.ReloadResult, error) {
		if out != c.accessOut {
			out.Close()
		}
		return res, err
	}
	diff := diffBackends(c.fileBackends, cfg.Backends)
	if cfg.StateFile != "" {
		if running, err = c.running(ctx); err != nil {
			return fail(err)
		}
		if err := c.writeState(cfg.StateFile, cfg.Backends, diff.apply(running)); err != nil {
			return fail(err)
		}
	}

	// Now all of it: the pool in one message, then the parts around it.
	pc := poolConfig(cfg, c.prog.log)
	applied, err := c.prog.pool.Apply(ctx, diff.delta(&pc))
	if err != nil {
		if cfg.StateFile != "" {
			_ = c.writeState(cfg.StateFile, c.fileBackends, running) // the pool did not change; logged if it fails
		}
		return fail(fmt.Errorf("the pool refused the new config: %w", err))
	}
	if err := c.prog.proxy.Reconfigure(c.prog.proxyConfig(cfg)); err != nil {
		return fail(fmt.Errorf("the proxy refused the new config: %w", err))
	}
	if err := c.prog.checker.Reconfigure(healthConfig(cfg, c.prog.log)); err != nil {
		return fail(fmt.Errorf("the health checker refused the new config: %w", err))
	}
	if err := c.prog.lns.setGuards(cfg); err != nil {
		return fail(fmt.Errorf("the connection guard refused the new config: %w", err))
	}
	c.applyTLS(cfg)
	if out != c.accessOut {
		c.switchAccessLog(out)
	}
	// The backends it added are probed at once, as POST /backends does, so
	// that healthy ones take requests without waiting for the next round.
	c.prog.checker.ProbeAll(ctx, applied.Added)

	c.cfg, c.fields, c.fileBackends = cfg, fields, cfg.Backends
	c.generation++
	c.publish("ok")
	res.Added, res.Removed, res.Changed = specURLs(diff.added), specURLs(diff.removed), specURLs(diff.changed)
	res.Unchanged, res.Generation = diff.same, c.generation
	return res, nil
}

// applyTLS puts a reload's certificates, loaded when the file was checked,
// in force (the files are read again at every reload, changed or not, as
// certbot's deploy hook expects of a SIGHUP), and its min_version and
// redirect_http.
func (c *control) applyTLS(cfg Config) {
	c.prog.setRedirect(cfg)
	if cfg.TLS == nil || c.prog.certs == nil {
		return
	}
	c.prog.certs.Install(cfg.TLS.Set)
	if cfg.TLS.MinVersion != c.cfg.TLS.MinVersion && c.prog.lns.tls != nil {
		// A new tls.Config has new session ticket keys: only when it must.
		c.prog.lns.tls.mux.SetConfig(c.prog.tlsConfig(cfg))
	}
}

// switchAccessLog sends the access log to out from now on and closes
// where it went before.
func (c *control) switchAccessLog(out accessLogFile) {
	old := c.accessOut
	c.accessOut = out
	w := out.w
	if w == nil {
		w = discardWriter{}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.prog.accessLog.SetOutput(sctx, w); err != nil {
		c.log.Warn("access log: the last lines to the old destination may be lost", "err", err)
	}
	old.Close()
}

// reopenAccessLog opens the access log file again, so that logrotate can
// move the old one away without copytruncate.
func (c *control) reopenAccessLog() {
	if c.accessOut.f == nil {
		return
	}
	out, err := openAccessLog(c.cfg.AccessLog, c.prog.stdout)
	if err != nil {
		c.log.Error("access log: cannot reopen; still writing to the file open before", "file", c.cfg.AccessLog, "err", err)
		return
	}
	c.switchAccessLog(out)
	c.log.Info("access log reopened", "file", c.cfg.AccessLog)
}

// running is the running set as the state file records it: every member
// that is not from discovery.
func (c *control) running(ctx context.Context) ([]statefile.Backend, error) {
	st, err := c.prog.pool.Status(ctx)
	if err != nil {
		return nil, err
	}
	var specs []pool.Spec
	for _, b := range st.Backends {
		if b.Source == "" && b.State != pool.StateDraining && b.State != pool.StateRemoved {
			specs = append(specs, pool.Spec{URL: b.URL, Weight: b.Weight, AdminState: b.AdminState})
		}
	}
	return stateBackends(specs), nil
}

func (c *control) writeState(path string, configBackends []pool.Spec, running []statefile.Backend) error {
	err := statefile.Write(c.fsys, path, statefile.State{ConfigBackends: stateBackends(configBackends), Backends: running})
	if err != nil {
		c.log.Error("state file not written", "file", path, "err", err)
		return fmt.Errorf("%w (%s: %v)", errStateFile, path, err)
	}
	return nil
}

// mutate makes an admin change: with a state file, the predicted running set
// is written first, and the change made only if that worked. A change the
// pool then refuses (a weight out of range, a URL it already has) changed
// nothing, so the file is put back to the running set.
func (c *control) mutate(ctx context.Context, m mutateMsg) error {
	path := c.cfg.StateFile
	if path == "" {
		return m.apply(ctx)
	}
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	next := m.predict(running)
	if slices.Equal(next, running) {
		return m.apply(ctx)
	}
	if err := c.writeState(path, c.fileBackends, next); err != nil {
		return err
	}
	err = m.apply(ctx)
	if err != nil {
		_ = c.writeState(path, c.fileBackends, running) // logged by writeState if it fails
	}
	return err
}

// call sends an admin change to the loop and waits for it to be made.
func (c *control) call(ctx context.Context, predict func([]statefile.Backend) []statefile.Backend, apply func(context.Context) error) error {
	reply := make(chan error, 1)
	err, callErr := actor.Call(ctx, c.mb, controlMsg(mutateMsg{predict: predict, apply: apply, reply: reply}), reply)
	if callErr != nil {
		return callErr
	}
	return err
}

// The admin API's view of the pool: changes to the running set go through
// the control loop, reads straight to the pool. It satisfies admin.Pool.

func (c *control) Add(ctx context.Context, s pool.Spec) (b *pool.Backend, st pool.BackendStatus, err error) {
	err = c.call(ctx, func(running []statefile.Backend) []statefile.Backend {
		u, perr := pool.ParseURL(s.URL)
		if perr != nil || slices.ContainsFunc(running, func(r statefile.Backend) bool { return r.URL == u.String() }) {
			return running // the pool will refuse it
		}
		return append(slices.Clone(running), statefile.Backend{URL: u.String(), Weight: max(s.Weight, 1)})
	}, func(ctx context.Context) error {
		var aerr error
		b, st, aerr = c.prog.pool.Add(ctx, s)
		return aerr
	})
	return b, st, err
}

func (c *control) Remove(ctx context.Context, raw string) (st pool.BackendStatus, err error) {
	err = c.call(ctx, func(running []statefile.Backend) []statefile.Backend {
		u, perr := pool.ParseURL(raw)
		if perr != nil {
			return running
		}
		return slices.DeleteFunc(slices.Clone(running), func(r statefile.Backend) bool { return r.URL == u.String() })
	}, func(ctx context.Context) error {
		var rerr error
		st, rerr = c.prog.pool.Remove(ctx, raw)
		return rerr
	})
	return st, err
}

func (c *control) Update(ctx context.Context, raw string, weight *int, adminState *pool.AdminState) (st pool.BackendStatus, err error) {
	err = c.call(ctx, func(running []statefile.Backend) []statefile.Backend {
		u, perr := pool.ParseURL(raw)
		if perr != nil {
			return running
		}
		out := slices.Clone(running)
		for i := range out {
			if out[i].URL != u.String() {
				continue
			}
			if weight != nil {
				out[i].Weight = *weight
			}
			if adminState != nil {
				out[i].AdminState = string(*adminState)
				if *adminState == pool.AdminReady {
					out[i].AdminState = ""
				}
			}
		}
		return out
	}, func(ctx context.Context) error {
		var uerr error
		st, uerr = c.prog.pool.Update(ctx, raw, weight, adminState)
		return uerr
	})
	return st, err
}

func (c *control) Status(ctx context.Context) (pool.Status, error) { return c.prog.pool.Status(ctx) }

// Describe and Collect make the reload counters Prometheus metrics.
var (
	reloadsDesc    = prometheus.NewDesc("switchyard_config_reloads_total", "Reloads of the config file, by result.", []string{"result"}, nil)
	generationDesc = prometheus.NewDesc("switchyard_config_generation", "Successful loads of the config file: 1 at start, one more per reload.", nil, nil)
)

func (c *control) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadsDesc
	ch <- generationDesc
}

func (c *control) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(c.reloadOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(c.reloadNo.Load()), "error")
	ch <- prometheus.MustNewConstMetric(generationDesc, prometheus.GaugeValue, float64(c.info.Load().Config.Generation))
}

// discardWriter is where the access log goes while it is off.
type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// churn is the soak's chaos: backends killed and restarted, and the admin
// API's changes and reloads, on a timeline that repeats every minute.
type churn struct {
	fleet  *fleet
	pool   []string // the config's backends, host:port, killed in turn
	spare  string   // host:port of the backend added and removed
	admin  string   // base URL of the admin API
	config string   // the proxy's config file, edited before each reload
	client *http.Client
	rec    *recorder
	t0     time.Time

	// The timeline's state, owned by run.
	killed     string // the backend down, "" if none
	drained    string // the backend on drain, "" if none
	spareIn    bool   // the spare is in the pool
	reloads    int
	generation int // the config generation in force
}

// step is one event of the minute's timeline, at its offset in the minute;
// m counts minutes from 0.
type step struct {
	at time.Duration
	do func(c *churn, ctx context.Context, m int) error
}

// timeline is the minute of churn. Kills and drains pick different pool
// members (m, m+1, m+2 of three), so that two backends always take
// requests: a request that fails for want of a backend is a bug, not
// noise. Nothing happens at the minute's turn, when the row is sampled.
var timeline = []step{
	{5 * time.Second, func(c *churn, _ context.Context, m int) error { return c.kill(c.pool[m%len(c.pool)]) }},
	{9 * time.Second, func(c *churn, _ context.Context, _ int) error { return c.restart() }},
	{15 * time.Second, func(c *churn, ctx context.Context, _ int) error { c.addSpare(ctx); return nil }},
	{20 * time.Second, func(c *churn, ctx context.Context, _ int) error {
		c.patch(ctx, map[string]any{"url": "http://" + c.spare, "weight": 3})
		return nil
	}},
	{25 * time.Second, func(c *churn, ctx context.Context, m int) error { c.drain(ctx, c.pool[(m+1)%len(c.pool)]); return nil }},
	{31 * time.Second, func(c *churn, ctx context.Context, _ int) error { c.ready(ctx); return nil }},
	{35 * time.Second, func(c *churn, _ context.Context, m int) error { return c.kill(c.pool[(m+2)%len(c.pool)]) }},
	{39 * time.Second, func(c *churn, _ context.Context, _ int) error { return c.restart() }},
	{42 * time.Second, func(c *churn, ctx context.Context, _ int) error { c.removeSpare(ctx); return nil }},
	{50 * time.Second, func(c *churn, ctx context.Context, _ int) error { return c.reload(ctx) }},
}

// run plays the timeline until ctx is done, then puts everything back (the
// killed backend started, the drained one ready, the spare removed), so that
// the proxy can be seen idle with the pool it started with. Its error is the
// soak's own failure (a backend that will not start, a config it cannot
// write); the proxy's wrong answers are recorded, not returned.
func (c *churn) run(ctx context.Context) error {
	err := c.play(ctx)
	tidy, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if c.killed != "" {
		if e := c.restart(); err == nil {
			err = e
		}
	}
	if c.drained != "" {
		c.ready(tidy)
	}
	if c.spareIn {
		c.removeSpare(tidy)
	}
	return err
}

func (c *churn) play(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for m := 0; ; m++ {
		for _, s := range timeline {
			t.Reset(time.Until(c.t0.Add(time.Duration(m)*time.Minute + s.at)))
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if err := s.do(c, ctx, m); err != nil {
				return err
			}
		}
	}
}

func (c *churn) kill(addr string) error {
	// Told before the signal: every error the kill causes reaches the
	// recorder after this does.
	c.rec.send(kill{backend: addr, at: time.Now()})
	c.rec.send(note{kills: 1})
	if err := c.fleet.kill(addr); err != nil {
		return err
	}
	c.killed = addr
	return nil
}

func (c *churn) restart() error {
	if c.killed == "" {
		return nil
	}
	if err := c.fleet.start(c.killed); err != nil {
		return err
	}
	c.killed = ""
	return nil
}

func (c *churn) addSpare(ctx context.Context) {
	if c.call(ctx, adminCall, http.MethodPost, "/backends", map[string]any{"url": "http://" + c.spare}, http.StatusCreated, nil) {
		c.spareIn = true
	}
}

func (c *churn) removeSpare(ctx context.Context) {
	if c.call(ctx, adminCall, http.MethodDelete, "/backends", map[string]any{"url": "http://" + c.spare}, http.StatusOK, nil) {
		c.spareIn = false
	}
}

func (c *churn) patch(ctx context.Context, req map[string]any) bool {
	return c.call(ctx, adminCall, http.MethodPatch, "/backends", req, http.StatusOK, nil)
}

func (c *churn) drain(ctx context.Context, addr string) {
	if c.patch(ctx, map[string]any{"url": "http://" + addr, "admin_state": "drain"}) {
		c.drained = addr
	}
}

func (c *churn) ready(ctx context.Context) {
	if c.drained != "" && c.patch(ctx, map[string]any{"url": "http://" + c.drained, "admin_state": "ready"}) {
		c.drained = ""
	}
}

// reloadAnswer is the part of POST /reload's answer the soak checks.
type reloadAnswer struct {
	Added, Removed, Changed []string
	RestartNeeded           []string `json:"restart_needed"`
	SettingsChanged         []string `json:"settings_changed"`
	Generation              int
}

// reload edits the config (the last pool member's weight 1 <-> 2 and
// request_timeout 30s <-> 29s), reloads it and checks that exactly that
// changed.
func (c *churn) reload(ctx context.Context) error {
	c.reloads++
	last := "http://" + c.pool[len(c.pool)-1]
	if err := editConfig(c.config, c.reloads%2 == 1, last); err != nil {
		return err
	}
	c.rec.send(note{reloads: 1})
	c.call(ctx, reloadCall, http.MethodPost, "/reload", nil, http.StatusOK, func(b []byte) string {
		var a reloadAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			return "answer: " + err.Error()
		}
		prev := c.generation
		c.generation = a.Generation
		switch {
		case a.Generation != prev+1:
			return fmt.Sprintf("generation %d after %d", a.Generation, prev)
		case len(a.Added)+len(a.Removed) > 0 || !slices.Equal(a.Changed, []string{last}):
			return "backends changed other than the weight of " + last
		case len(a.RestartNeeded) > 0 || !slices.Equal(a.SettingsChanged, []string{"request_timeout"}):
			return "settings changed other than request_timeout"
		}
		return ""
	})
	return nil
}

// call makes one admin call and records its outcome: ok when the status is
// want and check (if not nil) finds nothing wrong with the body.
func (c *churn) call(ctx context.Context, kind client, method, path string, req any, want int, check func([]byte) string) bool {
	start := time.Now()
	var body io.Reader
	if req != nil {
		b, _ := json.Marshal(req) // maps of strings and ints
		body = bytes.NewReader(b)
	}
	what := method + " " + path
	if req != nil {
		what += fmt.Sprint(" ", req)
	}
	fail := func(detail string) bool {
		c.rec.send(outcome{client: kind, fail: failAdmin, detail: what + ": " + detail, start: start, end: time.Now()})
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, method, c.admin+path, body)
	if err != nil {
		return fail(err.Error())
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := c.client.Do(r)
	if err != nil {
		return fail(err.Error())
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fail(err.Error())
	}
	if res.StatusCode != want {
		return fail(fmt.Sprintf("%s, want %d: %s", res.Status, want, bytes.TrimSpace(b)))
	}
	if check != nil {
		if problem := check(b); problem != "" {
			return fail(problem + ": " + string(bytes.TrimSpace(b)))
		}
	}
	c.rec.send(outcome{client: kind, start: start, end: time.Now()})
	return true
}

// editConfig rewrites the config file with last's weight 2 and
// request_timeout 29s when odd, else weight 1 and 30s; atomically, so that
// the proxy never reads half a file.
func editConfig(path string, odd bool, last string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("soak: %s: %w", path, err)
	}
	backends, _ := cfg["backends"].([]any)
	i := slices.IndexFunc(backends, func(b any) bool {
		switch b := b.(type) {
		case string:
			return b == last
		case map[string]any:
			return b["url"] == last
		}
		return false
	})
	if i < 0 {
		return fmt.Errorf("soak: %s: no backend %s to edit", path, last)
	}
	backends[i], cfg["request_timeout"] = any(last), "30s"
	if odd {
		backends[i], cfg["request_timeout"] = map[string]any{"url": last, "weight": 2}, "29s"
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".soak-config-*")
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing to remove
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("soak: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	return nil
}

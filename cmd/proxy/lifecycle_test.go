package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateDocs = flag.Bool("update", false, "rewrite the README's lifecycle tables from the code")

// fullProgram builds a program with every optional part on (the access log,
// tls, -demo), so that the lists hold every task, server and stage there is.
func fullProgram(t *testing.T) *program {
	t.Helper()
	f := writeTLSFiles(t)
	cfg, err := loadConfig(fmt.Appendf(nil, `{"port": 8080, "backends": ["http://localhost:8082"], "access_log": "stdout",
		"tls": {"port": 8443, "certificates": [{"cert_file": %q, "key_file": %q}]}}`, f.cert, f.key), noEnv)
	require.NoError(t, err)
	p, err := build(cfg, slog.New(slog.DiscardHandler), io.Discard, accessLogFile{w: io.Discard}, source{backends: cfg.Backends, env: noEnv})
	require.NoError(t, err)
	cfg.TLS.Port = 0 // any free port: the TLS server needs its listeners, though nothing is served
	tlsLns, err := listenTLS(cfg, p.tlsConfig(cfg))
	require.NoError(t, err)
	t.Cleanup(func() { tlsLns.mux.Close() })
	p.attach(listeners{tls: tlsLns, demoAddrs: []string{"localhost:8082"}, demo: []net.Listener{nil}})
	return p
}

// The shutdown order is the one the design needs: announce before anything
// closes; the servers drain before the handlers they leave are ended; the
// access log after the last handler has logged; the health loop and the demo
// backends once no request needs them; the pool owner last, since every part
// above calls it.
func TestShutdownOrder(t *testing.T) {
	var names []string
	for _, s := range fullProgram(t).stages() {
		names = append(names, s.name)
	}
	assert.Equal(t, []string{"announce", "servers", "handlers", "config control", "certificates", "discovery", "access log", "health loop",
		"demo backends", "pool owner", "backend connections"}, names)
}

// Every task and server is stopped by a stage that exists and comes after
// the stages that stop what calls it: the pool owner's stage is after every
// other task's and server's.
func TestEveryGoroutineHasItsStage(t *testing.T) {
	p := fullProgram(t)
	order := map[string]int{}
	for i, s := range p.stages() {
		order[s.name] = i
	}
	owner := order[stageOf(p, p.poolTask)]
	for _, tk := range p.tasks {
		i, ok := order[stageOf(p, tk)]
		require.True(t, ok, "task %s: no stage stops it", tk.name)
		if tk != p.poolTask {
			assert.Less(t, i, owner, "task %s stops after the pool owner", tk.name)
		}
	}
	for _, s := range p.servers {
		i, ok := order[s.stage]
		require.True(t, ok, "server %s: no stage %q", s.name, s.stage)
		assert.Less(t, i, owner, "server %s stops after the pool owner", s.name)
	}
}

// stageOf is the name of the shutdown stage that stops tk, or "".
func stageOf(p *program, tk *task) string {
	for _, s := range p.stages() {
		if s.stops == tk {
			return s.name
		}
	}
	return ""
}

// renderLifecycle writes the lists as the README's tables.
func renderLifecycle(p *program) (goroutines, shutdown string) {
	var g strings.Builder
	g.WriteString("| goroutine | what it does | stopped by stage |\n|---|---|---|\n")
	for _, tk := range p.tasks {
		fmt.Fprintf(&g, "| %s (task) | %s | %s |\n", tk.name, tk.doc, stageOf(p, tk))
	}
	seen := map[string]bool{}
	for _, s := range p.servers {
		if !seen[s.name] {
			seen[s.name] = true
			fmt.Fprintf(&g, "| %s (`Serve`) | %s | %s |\n", s.name, s.doc, s.stage)
		}
	}
	var st strings.Builder
	st.WriteString("| # | stage | when | how it stops | then waits for |\n|---|---|---|---|---|\n")
	for i, s := range p.stages() {
		when := s.when
		if when == "" {
			when = "always"
		}
		fmt.Fprintf(&st, "| %d | %s | %s | %s | %s |\n", i+1, s.name, when, s.how, s.waits)
	}
	return g.String(), st.String()
}

// The README's tables are the code's lists: run with -update to rewrite
// them after changing the lists.
func TestReadmeLifecycleTablesMatchTheCode(t *testing.T) {
	goroutines, shutdown := renderLifecycle(fullProgram(t))
	const path = "../../README.md"
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(data)
	for _, block := range []struct{ name, body string }{{"goroutines", goroutines}, {"shutdown", shutdown}} {
		re := regexp.MustCompile(`(?s)(<!-- lifecycle:` + block.name + ` -->\n).*?(<!-- /lifecycle:` + block.name + ` -->)`)
		require.Regexp(t, re, readme, "the README has no %s block", block.name)
		want := re.ReplaceAllString(readme, "${1}"+strings.ReplaceAll(block.body, "$", "$$")+"${2}")
		if *updateDocs {
			readme = want
			continue
		}
		assert.Equal(t, want, readme, "the README's %s table is not the code's; run go test ./cmd/proxy -run TestReadmeLifecycle -update", block.name)
	}
	if *updateDocs {
		require.NoError(t, os.WriteFile(path, []byte(readme), 0o644))
	}
}

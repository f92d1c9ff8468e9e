package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/switchyard-proxy/switchyard/cmd/internal/statefile"
	"github.com/switchyard-proxy/switchyard/pool"
)

// The pure part of a reload: what changed between two loads of the file.
// control.go applies it.

// backendDiff is how the file's backend list changed between two loads,
// by normalised URL.
type backendDiff struct {
	added   []pool.Spec // in the new list only
	removed []pool.Spec // in the old list only
	changed []pool.Spec // in both, with another weight (the new one here)
	same    int         // in both, alike
}

func diffBackends(old, new []pool.Spec) backendDiff {
	var d backendDiff
	before := make(map[string]pool.Spec, len(old))
	for _, s := range old {
		before[s.URL] = s
	}
	after := make(map[string]bool, len(new))
	for _, s := range new {
		after[s.URL] = true
		o, ok := before[s.URL]
		switch {
		case !ok:
			d.added = append(d.added, s)
		case o.Weight != s.Weight:
			d.changed = append(d.changed, s)
		default:
			d.same++
		}
	}
	for _, s := range old {
		if !after[s.URL] {
			d.removed = append(d.removed, s)
		}
	}
	return d
}

// delta is the pool's share of d: a member the file adds that an operator
// removed meanwhile comes back, one the file removes that an operator
// removed already stays gone, and the rest of the running set is left as it
// is.
func (d backendDiff) delta(cfg *pool.Config) pool.Delta {
	return pool.Delta{Config: cfg, Add: d.added, Remove: specURLs(d.removed), Update: d.changed}
}

// apply predicts the running set after d, from the running set before it:
// what the state file will say once the pool has made the delta.
func (d backendDiff) apply(running []statefile.Backend) []statefile.Backend {
	out := slices.Clone(running)
	index := func(url string) int {
		return slices.IndexFunc(out, func(b statefile.Backend) bool { return b.URL == url })
	}
	for _, s := range d.added {
		if i := index(s.URL); i >= 0 {
			out[i].Weight = s.Weight
		} else {
			out = append(out, statefile.Backend{URL: s.URL, Weight: s.Weight})
		}
	}
	for _, s := range d.removed {
		if i := index(s.URL); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
	}
	for _, s := range d.changed {
		if i := index(s.URL); i >= 0 {
			out[i].Weight = s.Weight
		}
	}
	return out
}

func specURLs(specs []pool.Spec) []string {
	urls := make([]string, len(specs))
	for i, s := range specs {
		urls[i] = s.URL
	}
	return urls
}

// restartFields are the fields a reload cannot change: they need new
// sockets, a new registry of metrics or admin routes, or are read by parts
// built once at start-up (net/http's server as it runs, the admin handler,
// the shutdown stages), which could not take a change without a data race.
// keep puts the value in force back into a newly loaded config, so that
// the config in force is what runs.
var restartFields = []struct {
	name string
	keep func(cfg *Config, old *Config)
}{
	{"port", func(c, o *Config) { c.Port = o.Port }},
	{"admin_addr", func(c, o *Config) { c.AdminAddr = o.AdminAddr }},
	{"admin_token", func(c, o *Config) { c.AdminToken = o.AdminToken }},
	{"metrics", func(c, o *Config) { c.Metrics = o.Metrics }},
	{"pprof", func(c, o *Config) { c.Pprof = o.Pprof }},
	{"max_header_bytes", func(c, o *Config) { c.MaxHeaderBytes = o.MaxHeaderBytes }},
	{"read_header_timeout", func(c, o *Config) { c.ReadHeaderTimeout = o.ReadHeaderTimeout }},
	{"idle_timeout", func(c, o *Config) { c.IdleTimeout = o.IdleTimeout }},
	{"h2c", func(c, o *Config) { c.H2C = o.H2C }},
	{"dns_resolver", func(c, o *Config) { c.DNSResolver = o.DNSResolver }},
	{"dns_refresh", func(c, o *Config) { c.DNSRefresh = o.DNSRefresh }},
	{"shutdown_timeout", func(c, o *Config) { c.ShutdownTimeout = o.ShutdownTimeout }},
	{"shutdown_delay", func(c, o *Config) { c.ShutdownDelay = o.ShutdownDelay }},
}

// restartField returns the index of name in restartFields, or -1.
func restartField(name string) int {
	for i, f := range restartFields {
		if f.name == name {
			return i
		}
	}
	return -1
}

// tlsChange sorts a change of "tls" into the lists of a reload's result:
// turning TLS on or off, or moving it to another port, needs a restart
// (a socket to bind or close); certificates, min_version and
// redirect_http change live.
func tlsChange(old, new *TLSConfig, restart, changed []string) ([]string, []string) {
	switch {
	case (old == nil) != (new == nil):
		return append(restart, "tls"), changed
	case old.Port != new.Port:
		restart = append(restart, "tls.port")
		if !slices.Equal(old.Certificates, new.Certificates) || old.MinVersion != new.MinVersion || old.RedirectHTTP != new.RedirectHTTP {
			changed = append(changed, "tls")
		}
		return restart, changed
	}
	return restart, append(changed, "tls")
}

// keepTLSPort is what a reload puts in force of "tls": new, on the port
// the TLS socket is bound to; or, when the reload turns TLS on or off,
// what was in force (the old certificates keep serving until a restart).
func keepTLSPort(old, new *TLSConfig) *TLSConfig {
	if (old == nil) != (new == nil) {
		return old
	}
	if new != nil && new.Port != old.Port {
		kept := *new
		kept.Port = old.Port
		return &kept
	}
	return new
}

// sourcesField is what restart_needed names when a reload changes the
// discovery sources among the backends: the lookups started at start-up.
const sourcesField = "backends (discovery sources)"

// fileFields returns every top-level field of a config file with its value
// in effect, the file's own or the default, for comparing two loads field
// by field. data has been loaded already, so it is a JSON object.
func fileFields(data []byte) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	defaults, _ := json.Marshal(defaultConfig())
	_ = json.Unmarshal(defaults, &fields)
	var file map[string]json.RawMessage
	_ = json.Unmarshal(data, &file)
	maps.Copy(fields, file)
	for k, v := range fields {
		var compact bytes.Buffer
		if json.Compact(&compact, v) == nil {
			fields[k] = compact.Bytes()
		}
	}
	return fields
}

// changedFields lists the fields whose value differs between two loads,
// the backend list apart, sorted. Both hold every field (fileFields fills
// in the defaults), so the keys of new are all there is to compare.
func changedFields(old, new map[string]json.RawMessage) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(new)) {
		if k != "backends" && !bytes.Equal(old[k], new[k]) {
			out = append(out, k)
		}
	}
	return out
}

// restore is the running set at start-up with a state file: the backends as
// they ran, and on top of them what changed in the config file's list while
// the proxy was down, with the same rules as a reload.
func restore(st statefile.State, cfg []pool.Spec) []pool.Spec {
	var saved []pool.Spec
	for _, b := range st.ConfigBackends {
		saved = append(saved, pool.Spec{URL: b.URL, Weight: b.Weight})
	}
	running := diffBackends(saved, cfg).apply(st.Backends)
	specs := make([]pool.Spec, len(running))
	for i, b := range running {
		specs[i] = pool.Spec{URL: b.URL, Weight: b.Weight, AdminState: pool.AdminState(b.AdminState)}
	}
	return specs
}

// stateBackends is the file's form of a list of specs.
func stateBackends(specs []pool.Spec) []statefile.Backend {
	out := make([]statefile.Backend, len(specs))
	for i, s := range specs {
		out[i] = statefile.Backend{URL: s.URL, Weight: max(s.Weight, 1)}
		if s.AdminState != "" && s.AdminState != pool.AdminReady {
			out[i].AdminState = string(s.AdminState)
		}
	}
	return out
}

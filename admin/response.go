package admin

import (
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// StatusResponse is the body of GET /status. The first three keys and the
// backends' url, alive and current_connections are the original proxy's and
// must not change: operators' scripts read them. The rest add detail.
type StatusResponse struct {
	// ActiveBackends counts the backends that take new requests: up and
	// ready.
	ActiveBackends int `json:"active_backends"`
	// TotalBackends counts the backends in the pool, whatever their state;
	// draining ones have left it.
	TotalBackends    int    `json:"total_backends"`
	DrainingBackends int    `json:"draining_backends"`
	EjectedBackends  int    `json:"ejected_backends"`
	Strategy         string `json:"strategy"`
	// StrategyDetails are the settings that shape the choice.
	StrategyDetails StrategyDetails `json:"strategy_details"`
	// WhenAllDown is "fail" or "try_all"; WhenAllDownInEffect is true while
	// try_all sends requests to backends whatever their health.
	WhenAllDown         string      `json:"when_all_down"`
	WhenAllDownInEffect bool        `json:"when_all_down_in_effect"`
	Queue               QueueStatus `json:"queue"`
	// Config is the config file as loaded, absent when not known.
	Config *ConfigStatus `json:"config,omitempty"`
	// Sources are the discovery sources (DNS), empty when none.
	Sources  []SourceStatus  `json:"sources"`
	Backends []BackendStatus `json:"backends"`
}

// SourceStatus is one discovery source.
type SourceStatus struct {
	// ID is how the pool knows the source: its kind, scheme, name and port.
	ID       string `json:"id"`
	Name     string `json:"name"`
	Discover string `json:"discover"` // "a" or "srv"
	// LastRefresh is the last lookup, RFC 3339; empty before the first.
	LastRefresh string `json:"last_refresh"`
	Failing     bool   `json:"failing"`
	// LastError is empty when the last lookup worked.
	LastError string   `json:"last_error"`
	Backends  []string `json:"backends"`
}

// ConfigStatus says which load of the config file is in force.
type ConfigStatus struct {
	// Generation counts successful loads: 1 at start, one more per reload.
	Generation int    `json:"generation"`
	LoadedAt   string `json:"loaded_at"`
	// LastReload is "ok", or "error: ..." when the last reload was refused
	// (the config in force is then still generation's).
	LastReload string `json:"last_reload"`
}

// StrategyDetails describe how the strategy chooses.
type StrategyDetails struct {
	HashKey      string `json:"hash_key,omitempty"`      // with the hash strategy
	StickyCookie string `json:"sticky_cookie,omitempty"` // when sticky sessions are on
	SlowStart    string `json:"slow_start"`
	// PassiveHealth is the outlier-ejection policy, null when off.
	PassiveHealth *PassiveHealth `json:"passive_health"`
}

// PassiveHealth is the config's passive_health, as in effect.
type PassiveHealth struct {
	ConsecutiveFailures int    `json:"consecutive_failures"`
	FailureStatuses     []int  `json:"failure_statuses"`
	EjectionTime        string `json:"ejection_time"`
	MaxEjectedPercent   int    `json:"max_ejected_percent"`
}

// QueueStatus is the queue for a backend slot, when max_requests_per_backend
// limits them.
type QueueStatus struct {
	MaxRequestsPerBackend int    `json:"max_requests_per_backend"` // 0: no limit, no queue
	Length                int    `json:"length"`
	Max                   int    `json:"max"`
	Timeout               string `json:"timeout"`
}

// BackendStatus describes one backend, in GET /status and as the answer to
// POST, PATCH and DELETE /backends.
type BackendStatus struct {
	URL   string `json:"url"`
	Alive bool   `json:"alive"`
	// CurrentConnections is the number of requests in flight to the backend.
	CurrentConnections int64 `json:"current_connections"`
	// State is up, down, ejected, draining or removed.
	State string `json:"state"`
	// Reason and Since describe the last change of State; Since is RFC 3339.
	Reason string `json:"reason"`
	Since  string `json:"since"`
	// AdminState is ready, drain or maintenance.
	AdminState      string  `json:"admin_state"`
	Weight          int     `json:"weight"`
	EffectiveWeight float64 `json:"effective_weight"`
	// Source names the discovery source of a discovered backend.
	Source             string            `json:"source,omitempty"`
	TotalRequests      uint64            `json:"total_requests"`
	Failures           uint64            `json:"failures"`
	Ejections          uint64            `json:"ejections"`
	Responses          map[string]uint64 `json:"responses"`
	Retries            uint64            `json:"retries"`
	ConnectionFailures uint64            `json:"connection_failures"`
	Truncated          uint64            `json:"truncated_responses"`
	// LastCheck is the last health check, absent before the first.
	LastCheck *Check `json:"last_check,omitempty"`
}

// Check is a health check's outcome.
type Check struct {
	Time       string  `json:"time"`
	DurationMS float64 `json:"duration_ms"`
	OK         bool    `json:"ok"`
	Reason     string  `json:"reason"`
}

// Info is what the status shows that the pool does not know: settings of
// the proxy around it. Config.Info supplies it.
type Info struct {
	HashKey      string
	StickyCookie string
	Config       *ConfigStatus
	Sources      []SourceStatus
}

func newStatusResponse(st pool.Status, info Info) StatusResponse {
	out := StatusResponse{
		ActiveBackends:   st.Up,
		TotalBackends:    st.Members,
		DrainingBackends: st.Draining,
		EjectedBackends:  st.Ejected,
		Strategy:         string(st.Strategy),
		StrategyDetails: StrategyDetails{
			StickyCookie: info.StickyCookie,
			SlowStart:    st.SlowStart.String(),
		},
		Config:              info.Config,
		WhenAllDown:         string(st.WhenAllDown),
		WhenAllDownInEffect: st.AllDown,
		Queue: QueueStatus{MaxRequestsPerBackend: st.Queue.Limit, Length: st.Queue.Length,
			Max: st.Queue.Max, Timeout: st.Queue.Timeout.String()},
		// Made, not nil, so that an empty pool shows "backends": [] as the
		// original did, not null.
		Backends: make([]BackendStatus, 0, len(st.Backends)),
	}
	if st.Strategy == pool.Hash {
		out.StrategyDetails.HashKey = info.HashKey
	}
	if ph := st.Passive; ph != nil {
		out.StrategyDetails.PassiveHealth = &PassiveHealth{ConsecutiveFailures: ph.ConsecutiveFailures,
			FailureStatuses: append([]int{}, ph.FailureStatuses...), EjectionTime: ph.EjectionTime.String(),
			MaxEjectedPercent: ph.MaxEjectedPercent}
	}
	out.Sources = append([]SourceStatus{}, info.Sources...)
	names := sourceNames(info.Sources)
	for _, b := range st.Backends {
		bs := newBackendStatus(b)
		if name, ok := names[b.Source]; ok {
			bs.Source = name // the source's name, as "sources" shows it
		}
		out.Backends = append(out.Backends, bs)
	}
	return out
}

// sourceNames maps each source's id (what pool.BackendStatus.Source holds)
// to its name.
func sourceNames(sources []SourceStatus) map[string]string {
	names := make(map[string]string, len(sources))
	for _, src := range sources {
		names[src.ID] = src.Name
	}
	return names
}

func newBackendStatus(b pool.BackendStatus) BackendStatus {
	out := BackendStatus{
		URL:                b.URL,
		Alive:              b.Alive(),
		CurrentConnections: b.InFlight,
		State:              string(b.State),
		Reason:             b.Reason,
		Since:              b.Since.Format(time.RFC3339),
		AdminState:         string(b.AdminState),
		Weight:             b.Weight,
		EffectiveWeight:    b.EffectiveWeight,
		Source:             b.Source,
		TotalRequests:      b.Requests,
		Failures:           b.Failures,
		Ejections:          b.Ejections,
		Responses:          make(map[string]uint64, len(b.Responses)),
		Retries:            b.Retries,
		ConnectionFailures: b.ConnectionFailures,
		Truncated:          b.Truncated,
	}
	for i, n := range b.Responses {
		out.Responses[classNames[i]] = n
	}
	if c := b.LastCheck; !c.At.IsZero() {
		out.LastCheck = &Check{Time: c.At.Format(time.RFC3339), DurationMS: float64(c.Duration.Microseconds()) / 1000,
			OK: c.OK, Reason: c.Reason}
	}
	return out
}

// classNames names the status classes of pool.BackendStatus.Responses, by
// index, as the JSON status and the metrics' class label both spell them.
var classNames = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

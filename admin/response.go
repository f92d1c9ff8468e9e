package admin

import (
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// StatusResponse is the body of GET /status. The first three keys and the
// backends' url, alive and current_connections are the original proxy's and
// must not change: operators' scripts read them. The rest add detail.
type StatusResponse struct {
	// ActiveBackends counts the backends in rotation.
	ActiveBackends int `json:"active_backends"`
	// TotalBackends counts the backends in the pool, up or down; draining
	// ones have left it.
	TotalBackends    int             `json:"total_backends"`
	DrainingBackends int             `json:"draining_backends"`
	Strategy         string          `json:"strategy"`
	Backends         []BackendStatus `json:"backends"`
}

// BackendStatus describes one backend, in GET /status and as the answer to
// POST and DELETE /backends.
type BackendStatus struct {
	URL   string `json:"url"`
	Alive bool   `json:"alive"`
	// CurrentConnections is the number of requests in flight to the backend.
	CurrentConnections int64 `json:"current_connections"`
	// State is up, down, draining or removed.
	State string `json:"state"`
	// Reason and Since describe the last change of State; Since is RFC 3339.
	Reason        string `json:"reason"`
	Since         string `json:"since"`
	TotalRequests uint64 `json:"total_requests"`
	Failures      uint64 `json:"failures"`
}

func newStatusResponse(st pool.Status) StatusResponse {
	out := StatusResponse{
		ActiveBackends:   st.Up,
		TotalBackends:    st.Members,
		DrainingBackends: st.Draining,
		Strategy:         string(st.Strategy),
		// Made, not nil, so that an empty pool shows "backends": [] as the
		// original did, not null.
		Backends: make([]BackendStatus, 0, len(st.Backends)),
	}
	for _, b := range st.Backends {
		out.Backends = append(out.Backends, newBackendStatus(b))
	}
	return out
}

func newBackendStatus(b pool.BackendStatus) BackendStatus {
	return BackendStatus{
		URL:                b.URL,
		Alive:              b.Alive(),
		CurrentConnections: b.InFlight,
		State:              string(b.State),
		Reason:             b.Reason,
		Since:              b.Since.Format(time.RFC3339),
		TotalRequests:      b.Requests,
		Failures:           b.Failures,
	}
}

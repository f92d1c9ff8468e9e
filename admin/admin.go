// Package admin is the operators' HTTP API: the pool's status, adding and
// removing backends at runtime, and a health endpoint for whatever sits in
// front of the proxy; a status page over that API for a browser (GET / and
// GET /ui); and Go's profiler under /debug/pprof/.
//
// Every route of the API answers JSON, errors included ({"error": "..."}).
// Input is checked strictly and a request that is refused changes nothing.
// The page's files and the profiles are the only answers that are not JSON.
//
// A browser cannot be turned against the API (guard.go): a change sent from
// another origin is refused (403), a body must be declared as JSON (415),
// and without a token only requests addressed to a loopback name are
// answered (403), which stops DNS rebinding. The page and its files are
// served without the token, so that the page can load and ask for it; the
// data it shows needs the token like any other client.
//
// Goroutines: the package starts none. Handler runs in the goroutines of the
// http.Server that serves it, which belongs to cmd/proxy. Its reads of the
// pool are bounded by a timeout and by the request's context; a change, once
// sent, is waited for to the end, so that the answer says what happened.
// /debug/pprof/profile and /debug/pprof/trace hold their request for the
// seconds asked (30 by default), and end early when the request does.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/actor"
	"github.com/switchyard-proxy/switchyard/pool"
)

// maxBody bounds a request body: a backend URL needs a few hundred bytes.
const maxBody = 64 << 10

// callTimeout bounds each call to the pool. The owner loop answers in
// microseconds, so a call that waits this long finds it wedged or flooded,
// and the operator is better served by a 503 than by a hung curl.
const callTimeout = 5 * time.Second

// Pool is what the admin API needs from the pool. *pool.Pool satisfies it.
type Pool interface {
	Add(ctx context.Context, s pool.Spec) (*pool.Backend, pool.BackendStatus, error)
	Remove(ctx context.Context, raw string) (pool.BackendStatus, error)
	Update(ctx context.Context, raw string, weight *int, admin *pool.AdminState) (pool.BackendStatus, error)
	Status(ctx context.Context) (pool.Status, error)
}

// A Prober checks one backend now and reports the result to the pool.
// *health.Checker satisfies it.
type Prober interface {
	Probe(ctx context.Context, b *pool.Backend) (bool, error)
}

// A Reloader reloads the config file, as SIGHUP does: POST /reload.
type Reloader interface {
	Reload(ctx context.Context) (ReloadResult, error)
}

// ReloadResult is the body of a 200 answer to POST /reload: what changed.
type ReloadResult struct {
	// Added, Removed and Changed are the backends the file's list added,
	// removed, or kept with another weight; Unchanged counts the rest.
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged int      `json:"unchanged"`
	// RestartNeeded are the fields that changed but need a restart (new
	// sockets): the reload left them as they were and applied the rest.
	RestartNeeded []string `json:"restart_needed"`
	// SettingsChanged are the other fields that changed and are now in force.
	SettingsChanged []string `json:"settings_changed"`
	Generation      int      `json:"generation"`
}

// ReloadError is a reload refused because the file has problems; nothing
// changed. POST /reload answers it with 400 and the problems, one each.
type ReloadError struct {
	Problems []string
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("the config file has %d problem(s); nothing was changed", len(e.Problems))
}

// Config says how the admin API behaves.
type Config struct {
	// Token, when set, must come with every request as
	// "Authorization: Bearer <token>"; a request without it gets 401. The
	// status page's files (GET / and /ui, and /ui/...) are the exception:
	// they hold no data, and the page asks for the token.
	// Empty means no authentication, which cmd/proxy allows only on a
	// loopback address; the Handler then answers only requests whose Host
	// is localhost or a loopback address (403 otherwise), so that a hostile
	// name resolving to 127.0.0.1 cannot reach it from a browser.
	Token string
	// Prober checks a backend as soon as POST /backends has added it, so that
	// a healthy one enters rotation at once rather than at the next round of
	// checks. Nil means no probe: the backend waits for the next round.
	Prober Prober
	// ShuttingDown is closed when the proxy begins to shut down; from then on
	// GET /healthz answers 503, so that a load balancer in front stops
	// sending before the listeners close. Nil means never.
	ShuttingDown <-chan struct{}
	// Metrics serves GET /metrics, the Prometheus exposition. Nil means the
	// route answers 404.
	Metrics http.Handler
	// Info supplies what /status shows beyond the pool's own snapshot. Nil
	// means nothing more.
	Info func() Info
	// Reloader serves POST /reload. Nil means the route answers 404.
	Reloader Reloader
	// Logger receives each change to the pool made through the API at Info,
	// with the client's address. Nil means no logging.
	Logger *slog.Logger
	// DisablePprof turns off /debug/pprof/ (net/http/pprof's index,
	// cmdline, profile, symbol, trace and the named profiles), which then
	// answers 404. The zero value serves it: Go operators expect it, and it
	// is behind the same token and cross-origin rules as the rest of the
	// API, on an address that is loopback unless a token is set. A CPU
	// profile or trace costs a few percent of CPU while it runs.
	DisablePprof bool
}

// A Handler serves the admin API. It is safe for concurrent use.
type Handler struct {
	pool         Pool
	prober       Prober
	shuttingDown <-chan struct{}
	metrics      http.Handler
	info         func() Info
	reloader     Reloader
	log          *slog.Logger
	pprof        bool
	// tokenHash is the SHA-256 of Config.Token, nil when there is none.
	// Comparing hashes keeps the comparison constant-time in the token's
	// length too: subtle.ConstantTimeCompare returns at once on a length
	// mismatch.
	tokenHash []byte
}

// New returns the admin API over p.
func New(p Pool, cfg Config) (*Handler, error) {
	if p == nil {
		return nil, errors.New("admin: Pool is nil")
	}
	h := &Handler{
		pool:         p,
		prober:       cfg.Prober,
		shuttingDown: cfg.ShuttingDown,
		metrics:      cfg.Metrics,
		info:         cfg.Info,
		reloader:     cfg.Reloader,
		log:          cfg.Logger,
		pprof:        !cfg.DisablePprof,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		h.tokenHash = sum[:]
	}
	return h, nil
}

// ServeHTTP routes by exact path. A ServeMux is not used because it answers
// unknown paths and wrong methods in plain text and redirects unclean paths;
// the API answers JSON, and only 2xx or 4xx for anything a client sends.
//
// The checks run in this order: the Host (without a token) and the
// cross-origin rule, which say whether the request comes from a browser
// that was tricked into sending it; then the page's public files; then the
// token; then the body's Content-Type; then the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w, r)
	if h.refuseForeignHost(w, r) || refuseCrossOrigin(w, r) {
		h.log.Info("admin: browser request refused", "method", r.Method, "path", r.URL.Path,
			"host", r.Host, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		return
	}
	if a, ok := pageAsset(r); ok {
		serveAsset(w, a)
		return
	}
	if !h.authorized(r) {
		// RFC 6750, section 3: a 401 names the scheme the client should use.
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		h.log.Info("admin: unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return
	}
	profiling := h.pprof && strings.HasPrefix(r.URL.Path, pprofPrefix)
	// go tool pprof sends its symbol lookups as application/octet-stream.
	if !profiling && refuseNonJSON(w, r) {
		return
	}
	switch r.URL.Path {
	case "/status":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			h.status(w, r)
		}
	case "/backends":
		if allow(w, r, http.MethodPost, http.MethodDelete, http.MethodPatch) {
			switch r.Method {
			case http.MethodPost:
				h.add(w, r)
			case http.MethodDelete:
				h.remove(w, r)
			default:
				h.update(w, r)
			}
		}
	case "/healthz":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			h.healthz(w)
		}
	case "/reload":
		if h.reloader == nil {
			writeError(w, http.StatusNotFound, "reloading is not available")
		} else if allow(w, r, http.MethodPost) {
			h.reload(w, r)
		}
	case "/metrics":
		if h.metrics == nil {
			writeError(w, http.StatusNotFound, "metrics are disabled")
		} else if allow(w, r, http.MethodGet, http.MethodHead) {
			h.metrics.ServeHTTP(w, r)
		}
	default:
		_, isPage := pageRoutes[r.URL.Path]
		switch {
		case isPage:
			allow(w, r, http.MethodGet, http.MethodHead) // GET and HEAD were served above
		case profiling:
			servePprof(w, r)
		case strings.HasPrefix(r.URL.Path, pprofPrefix):
			writeError(w, http.StatusNotFound, "profiling is disabled")
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s; the routes are /status, /backends, /reload, /healthz, /metrics, /debug/pprof/ and the page at /", r.URL.Path))
		}
	}
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.tokenHash == nil {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	// RFC 9110, section 11.1: the scheme is case-insensitive.
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], h.tokenHash) == 1
}

// allow reports whether r's method is among methods, and answers 405 with an
// Allow header if it is not.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	list := strings.Join(methods, ", ")
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, list))
	return false
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	st, err := h.pool.Status(ctx)
	if err != nil {
		h.poolError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newStatusResponse(st, h.currentInfo()))
}

// currentInfo is what the program adds to the pool's status, or nothing.
func (h *Handler) currentInfo() Info {
	if h.info == nil {
		return Info{}
	}
	return h.info()
}

// backendStatus is b as the admin API shows it: a discovered backend's
// source by name, as in /status.
func (h *Handler) backendStatus(b pool.BackendStatus) BackendStatus {
	bs := newBackendStatus(b)
	if name, ok := sourceNames(h.currentInfo().Sources)[b.Source]; ok {
		bs.Source = name
	}
	return bs
}

// mutation is the context for a call that changes the pool. It is not
// bounded by the client or a timeout: once the owner has the message it will
// apply it, and a client told "503" would believe nothing changed. The owner
// answers in microseconds, and if it stops the call returns ErrStopped.
func mutation(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	req, ok := readBody[addRequest](w, r)
	if !ok {
		return
	}
	if req.Weight != nil && *req.Weight == 0 {
		writeError(w, http.StatusBadRequest, pool.ErrInvalidWeight.Error())
		return
	}
	b, st, err := h.pool.Add(mutation(r), pool.Spec{URL: req.URL, Weight: deref(req.Weight)})
	if err != nil {
		h.poolError(w, r, err)
		return
	}
	h.log.Info("admin: backend added", "backend", st.URL, "remote", r.RemoteAddr, "weight", st.Weight)

	if h.prober != nil {
		// The prober bounds its own probe; the admin adds no deadline of
		// its own, so that a longer configured health timeout is honoured.
		if _, err := h.prober.Probe(r.Context(), b); err != nil {
			// The backend has been added all the same; the next round of
			// checks will bring it in.
			h.log.Warn("admin: probe of new backend not delivered", "backend", st.URL, "err", err)
		}
		// The probe's report went into the pool's mailbox before this call,
		// from this goroutine, so the status seen here includes it.
		statusCtx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		all, err := h.pool.Status(statusCtx)
		if err != nil {
			h.poolError(w, r, err)
			return
		}
		for _, s := range all.Backends {
			if s.URL == st.URL {
				st = s
				break
			}
		}
		// Not found means another request removed it meanwhile: answer
		// with the status it was added with, which is what this one did.
	}
	writeJSON(w, http.StatusCreated, h.backendStatus(st))
}

func (h *Handler) remove(w http.ResponseWriter, r *http.Request) {
	req, ok := readBody[removeRequest](w, r)
	if !ok {
		return
	}
	st, err := h.pool.Remove(mutation(r), req.URL)
	if err != nil {
		h.poolError(w, r, err)
		return
	}
	h.log.Info("admin: backend removed", "backend", st.URL, "state", string(st.State),
		"in_flight", st.InFlight, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, h.backendStatus(st))
}

// update is PATCH /backends: the weight, the admin state, or both at once.
func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	req, ok := readBody[updateRequest](w, r)
	if !ok {
		return
	}
	if req.Weight == nil && req.AdminState == nil {
		writeError(w, http.StatusBadRequest, `nothing to change; send "weight" (1 to 1000), "admin_state" ("ready", "drain" or "maintenance"), or both`)
		return
	}
	var admin *pool.AdminState
	if req.AdminState != nil {
		a, err := pool.ParseAdminState(*req.AdminState)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		admin = &a
	}
	st, err := h.pool.Update(mutation(r), req.URL, req.Weight, admin)
	if err != nil {
		h.poolError(w, r, err)
		return
	}
	h.log.Info("admin: backend changed", "backend", st.URL, "weight", st.Weight,
		"admin_state", string(st.AdminState), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, h.backendStatus(st))
}

// reload is POST /reload. Like a change to the pool, once asked for it is
// carried to the end whatever the client does.
func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	res, err := h.reloader.Reload(mutation(r))
	var rerr *ReloadError
	switch {
	case errors.As(err, &rerr):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": rerr.Error(), "problems": rerr.Problems})
	case errors.Is(err, actor.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "the proxy is shutting down")
	case err != nil:
		// The reloader words its errors for operators (a state file that
		// cannot be written, say); the admin API is theirs.
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		h.log.Info("admin: config reloaded", "generation", res.Generation, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, res)
	}
}

func (h *Handler) healthz(w http.ResponseWriter) {
	select {
	case <-h.shuttingDown:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// The bodies of the /backends routes. Each route accepts exactly its own
// fields: anything else is refused, so that a typo never goes unnoticed.
type (
	removeRequest struct {
		URL string `json:"url"`
	}
	addRequest struct {
		URL    string `json:"url"`
		Weight *int   `json:"weight"`
	}
	updateRequest struct {
		URL        string  `json:"url"`
		Weight     *int    `json:"weight"`
		AdminState *string `json:"admin_state"`
	}
)

func (r removeRequest) url() string { return r.URL }
func (r addRequest) url() string    { return r.URL }
func (r updateRequest) url() string { return r.URL }

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// readBody decodes the body of a /backends request, which must name a url.
// On bad input it answers 400 or 413 itself and returns false. ServeHTTP has
// already refused a body not sent as application/json (415), as the
// original README's curl lines send it: a cross-site form cannot.
func readBody[T interface{ url() string }](w http.ResponseWriter, r *http.Request) (T, bool) {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var req T
	err := dec.Decode(&req)
	if err == nil {
		// Anything after the value, even a second object, is refused: a
		// body is one request, and nothing is half-applied.
		if _, terr := dec.Token(); terr != io.EOF {
			err = terr
			if err == nil {
				err = errors.New("unexpected data after the JSON object")
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
		return req, false
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, `empty body; send {"url": "http://host:port"}`)
		return req, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return req, false
	case req.url() == "":
		writeError(w, http.StatusBadRequest, `missing url; send {"url": "http://host:port"}`)
		return req, false
	}
	return req, true
}

// poolError answers for an error from the pool. Input errors say what was
// wrong; anything else gets a fixed message, never the internal error text.
func (h *Handler) poolError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, pool.ErrInvalidURL), errors.Is(err, pool.ErrInvalidWeight), errors.Is(err, pool.ErrInvalidAdminState):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, pool.ErrExists), errors.Is(err, pool.ErrDiscovered):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, pool.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, actor.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "the backend pool is not running")
	case r.Context().Err() != nil:
		// The client has gone; nobody will read the answer, and the error
		// is theirs, not the proxy's.
		writeError(w, http.StatusServiceUnavailable, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("admin: the pool did not answer in time", "method", r.Method, "path", r.URL.Path)
		writeError(w, http.StatusServiceUnavailable, "the backend pool did not answer in time")
	default:
		h.log.Error("admin: unexpected pool error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	// Indented, because the usual client is an operator with curl.
	enc.SetIndent("", "  ")
	// An error here means the client has gone; there is no one to tell.
	_ = enc.Encode(v)
}

package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/switchyard-proxy/switchyard/pool"
)

// Defaults and limits of Config and of the config file's fields.
const (
	// DefaultRefresh is the time between two lookups of a source when
	// Config.Refresh is zero, and config.json's "dns_refresh" when it is
	// left out.
	DefaultRefresh = 30 * time.Second
	// MinRefresh is the least "dns_refresh" ParseRefresh accepts: more often
	// than that, a thousand SRV targets would ask the DNS server thousands
	// of questions a second for answers that rarely change.
	MinRefresh = time.Second
	// MaxLookupTimeout bounds one refresh of a source: all its lookups
	// together, SRV targets included. A refresh is also bounded by Refresh,
	// so that it always ends before the next one is due.
	MaxLookupTimeout = 5 * time.Second
	// GraceRefreshes is how many refresh periods a name must answer "no such
	// host" or "no records", without a success in between, before the
	// answer is believed and its backends removed.
	GraceRefreshes = 3
	// MinWeight and MaxWeight are the pool's range of weights; an SRV
	// record's weight is clamped to it.
	MinWeight = 1
	MaxWeight = pool.MaxWeight
)

// ErrConfig is wrapped by the errors of New, ParseResolver and ParseRefresh
// about a setting.
var ErrConfig = errors.New("discovery: invalid config")

// Config says what to look up, where and how often.
type Config struct {
	// Sources are the names to look up. Each is checked as ParseSource
	// checks an Entry; two equal sources (same String) are an error. No
	// sources is fine: Run then waits for its context.
	Sources []Source
	// Resolver is the host:port of the DNS server to ask, such as a Consul
	// agent's "127.0.0.1:8600". Empty means the system's resolvers, from
	// /etc/resolv.conf.
	Resolver string
	// Refresh is the time between the starts of two lookups of a source.
	// Zero means DefaultRefresh; a negative value is an error. New takes any
	// positive value so that tests can refresh in milliseconds; the
	// config file's floor of MinRefresh is ParseRefresh's rule.
	Refresh time.Duration
	// Logger receives changes of each source's backends and of its failing
	// state, at Info. Nil means no logging.
	Logger *slog.Logger
}

// ParseResolver checks config.json's "dns_resolver": empty (the system's
// resolver) or host:port with a port from 1 to 65535. It returns it with the
// port in canonical form. A host that is a name is resolved by the system's
// resolver each time a query is sent, so an IP address is the better choice.
func ParseResolver(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", fmt.Errorf("%w: resolver must be host:port such as %q, got %q", ErrConfig, "127.0.0.1:8600", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%w: resolver port must be between 1 and 65535, got %q", ErrConfig, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// ParseRefresh checks config.json's "dns_refresh": empty means
// DefaultRefresh; otherwise a Go duration of at least MinRefresh.
func ParseRefresh(s string) (time.Duration, error) {
	if s == "" {
		return DefaultRefresh, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinRefresh {
		return 0, fmt.Errorf("%w: refresh must be a duration of at least %v such as %q, got %q", ErrConfig, MinRefresh, "30s", s)
	}
	return d, nil
}

package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/sync/errgroup"
)

// targetLookups bounds the SRV targets looked up at once. One at a time,
// a thousand targets at a millisecond each would take a second; all at once,
// they would open a thousand sockets and flood the server. Sixteen keeps a
// refresh of a thousand targets well inside MaxLookupTimeout on any network
// where DNS answers in tens of milliseconds.
const targetLookups = 16

// errNotFound stands for "no such host" and "no records": an answer, not a
// failure, but one to believe only when it lasts.
var errNotFound = errors.New("no such host or no records")

// answer is the outcome of one refresh of a source.
type answer struct {
	targets []Target // sorted by URL, one per URL; never nil
	// missing names the names that answered errNotFound: the source's own
	// name, or SRV targets. targets holds what the rest gave.
	missing []string
	err     error // a failure: targets and missing mean nothing
}

func (w *Watcher) resolve(ctx context.Context, s *source) answer {
	if s.src.Discover == KindSRV {
		return w.resolveSRV(ctx, s)
	}
	addrs, err := w.lookupIP(ctx, s, s.fqdn)
	switch {
	case errors.Is(err, errNotFound):
		return answer{targets: []Target{}, missing: []string{s.fqdn}}
	case err != nil:
		return answer{err: err}
	}
	targets := make([]Target, 0, len(addrs))
	for _, a := range addrs {
		targets = append(targets, Target{URL: targetURL(s.src.Scheme, a, uint16(s.src.Port)), Weight: MinWeight})
	}
	return answer{targets: dedupe(targets)}
}

func (w *Watcher) resolveSRV(ctx context.Context, s *source) answer {
	s.lookups.Add(1)
	_, recs, err := s.res.LookupSRV(ctx, "", "", s.fqdn)
	if err = s.classify(s.fqdn, err); errors.Is(err, errNotFound) {
		return answer{targets: []Target{}, missing: []string{s.fqdn}}
	} else if err != nil {
		return answer{err: err}
	}

	// RFC 2782: a client must try the lowest priority first, and a target
	// of "." means the service is not offered there. Falling back to a
	// higher priority is left to health checks: the records of the lowest
	// are the backends, and if they are all down, that is what the pool
	// shows.
	var best []*net.SRV
	for _, r := range recs {
		if r.Target == "." || r.Target == "" || r.Port == 0 {
			continue
		}
		switch {
		case len(best) == 0 || r.Priority < best[0].Priority:
			best = append(best[:0], r)
		case r.Priority == best[0].Priority:
			best = append(best, r)
		}
	}
	if len(best) == 0 {
		return answer{targets: []Target{}, missing: []string{s.fqdn}}
	}

	// Records often share a target (one node, several ports): it is looked
	// up once. Targets come back absolute, with their trailing dot.
	var names []string
	index := make(map[string]int)
	nameOf := make([]int, len(best)) // best[i]'s target is names[nameOf[i]]
	for i, r := range best {
		n := absolute(r.Target)
		j, ok := index[n]
		if !ok {
			j = len(names)
			index[n] = j
			names = append(names, n)
		}
		nameOf[i] = j
	}
	addrs := make([][]netip.Addr, len(names))
	found := make([]bool, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(targetLookups)
	for i, n := range names {
		// One goroutine per target, at most targetLookups at once, all
		// waited for by g.Wait below. The first failure cancels the rest:
		// the refresh has failed whatever they answer.
		g.Go(func() error {
			a, err := w.lookupIP(gctx, s, n)
			if errors.Is(err, errNotFound) {
				return nil
			}
			addrs[i], found[i] = a, err == nil
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return answer{err: err}
	}

	var missing []string
	for i, n := range names {
		if !found[i] {
			missing = append(missing, n)
		}
	}
	targets := make([]Target, 0, len(best))
	for i, r := range best {
		for _, a := range addrs[nameOf[i]] {
			targets = append(targets, Target{URL: targetURL(s.src.Scheme, a, r.Port), Weight: int(max(r.Weight, 1))})
		}
	}
	return answer{targets: dedupe(targets), missing: missing}
}

// lookupIP asks for the A and AAAA records of fqdn, counting the lookup on s.
func (w *Watcher) lookupIP(ctx context.Context, s *source, fqdn string) ([]netip.Addr, error) {
	s.lookups.Add(1)
	addrs, err := s.res.LookupNetIP(ctx, "ip", fqdn)
	if err = s.classify(fqdn, err); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		s.notFoundLookups.Add(1)
		return nil, errNotFound
	}
	return addrs, nil
}

// classify counts a lookup's outcome and turns its error into errNotFound
// or into a failure worded for operators.
func (s *source) classify(fqdn string, err error) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		s.notFoundLookups.Add(1)
		return errNotFound
	}
	s.failedLookups.Add(1)
	if de != nil {
		// DNSError's own text names a server from resolv.conf, which is
		// not the one asked when Config.Resolver is set.
		return fmt.Errorf("lookup %s: %s", trimDot(fqdn), de.Err)
	}
	return fmt.Errorf("lookup %s: %w", trimDot(fqdn), err)
}

// targetURL writes a backend's URL in pool.ParseURL's normal form. It runs
// for every backend at every refresh, so it builds the string in one
// allocation.
func targetURL(scheme string, a netip.Addr, port uint16) string {
	// An AAAA record may hold an IPv4-mapped address; it is the same
	// backend as the A record with that address.
	a = a.Unmap().WithZone("")
	var buf [64]byte // "https://[" + 39 for IPv6 + "]:65535"
	b := append(append(buf[:0], scheme...), "://"...)
	switch {
	case (scheme == SchemeHTTP && port == 80) || (scheme == SchemeHTTPS && port == 443):
		if a.Is6() {
			b = append(a.AppendTo(append(b, '[')), ']')
		} else {
			b = a.AppendTo(b)
		}
	default:
		b = netip.AddrPortFrom(a, port).AppendTo(b)
	}
	return string(b)
}

// dedupe sorts targets by URL and merges those with the same URL, adding
// their weights: two SRV records for one address and port are one backend
// with both shares. Weights are then clamped to the pool's range.
func dedupe(targets []Target) []Target {
	slices.SortFunc(targets, func(a, b Target) int { return cmp.Compare(a.URL, b.URL) })
	out := targets[:0]
	for _, t := range targets {
		if n := len(out); n > 0 && out[n-1].URL == t.URL {
			out[n-1].Weight += t.Weight
			continue
		}
		out = append(out, t)
	}
	for i := range out {
		out[i].Weight = min(max(out[i].Weight, MinWeight), MaxWeight)
	}
	return out
}

func trimDot(name string) string { return strings.TrimSuffix(name, ".") }

// absolute returns name lower case with one trailing dot, without
// allocating when it is so already, as resolvers' answers are.
func absolute(name string) string {
	if strings.HasSuffix(name, ".") && !strings.ContainsFunc(name, unicode.IsUpper) {
		return name
	}
	return strings.ToLower(trimDot(name)) + "."
}

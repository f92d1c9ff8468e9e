package pool

import "fmt"

// Strategy names a way of choosing among the backends that are up.
type Strategy string

const (
	// RoundRobin takes the backends that are up in turn.
	RoundRobin Strategy = "round-robin"
	// LeastConnections takes the backend that is up with the fewest requests in
	// flight, and breaks ties by rotation.
	LeastConnections Strategy = "least-connections"
)

// ParseStrategy returns the Strategy named s, or an error listing the names
// it knows.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case RoundRobin, LeastConnections:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("%w %q: want %q or %q", ErrUnknownStrategy, s, RoundRobin, LeastConnections)
}

// A selector is a strategy as a pure function. It sees the pool's members in
// their stable order and the rotation cursor (the index to consider first) and
// returns the index of the chosen member, or -1 if none may be chosen. A member
// may be chosen when it is up and its backend is not in skip. Selectors keep no
// state: the owner loop moves the cursor past whatever was chosen, which is what
// makes the rotation survive adds and removes (see removeAt).
type selector func(members []*member, cursor int, skip []*Backend) int

func (s Strategy) selector() selector {
	if s == LeastConnections {
		return leastConnections
	}
	return roundRobin
}

func eligible(m *member, skip []*Backend) bool {
	if m.state != StateUp {
		return false
	}
	for _, b := range skip {
		if b == m.b {
			return false
		}
	}
	return true
}

// roundRobin returns the first eligible member at or after cursor, wrapping.
func roundRobin(members []*member, cursor int, skip []*Backend) int {
	n := len(members)
	for k := range n {
		i := (cursor + k) % n
		if eligible(members[i], skip) {
			return i
		}
	}
	return -1
}

// leastConnections returns the eligible member with the fewest requests in
// flight. Scanning from the cursor and keeping the first of equals breaks ties
// by rotation, so that requests arriving one at a time, with nothing in
// flight, still spread over every backend.
func leastConnections(members []*member, cursor int, skip []*Backend) int {
	n := len(members)
	best, bestLoad := -1, int64(0)
	for k := range n {
		i := (cursor + k) % n
		m := members[i]
		if !eligible(m, skip) {
			continue
		}
		if load := m.b.InFlight(); best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	return best
}

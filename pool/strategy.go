package pool

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Strategy names a way of choosing among the backends that take requests.
type Strategy string

const (
	// RoundRobin takes the backends in turn; with unequal weights, by
	// nginx's smooth weighted round-robin, so that over every run of
	// sum-of-weights picks each backend gets exactly its weight, spread out
	// rather than in bursts.
	RoundRobin Strategy = "round-robin"
	// LeastConnections takes the backend with the fewest requests in flight
	// per unit of weight, and breaks ties by rotation.
	LeastConnections Strategy = "least-connections"
	// RandomTwo is the power of two choices: of two distinct backends
	// chosen at random, the one with fewer requests in flight per unit of
	// weight (Envoy's least_request, HAProxy's random(2)).
	RandomTwo Strategy = "random-two"
	// Hash is consistent hashing on a key of the request (PickRequest.Hash):
	// a ring of points, each backend holding a number of them in proportion
	// to its weight, built when the members or their weights change. A key
	// goes to the first point at or after it whose backend may take the
	// request, so that removing one backend of N moves only the keys that
	// were on it. A request without a key is picked as RoundRobin does.
	Hash Strategy = "hash"
)

// Strategies lists every strategy, in the order the docs give them.
var Strategies = []Strategy{RoundRobin, LeastConnections, RandomTwo, Hash}

// ParseStrategy returns the Strategy named s, or an error listing the names
// it knows.
func ParseStrategy(s string) (Strategy, error) {
	if slices.Contains(Strategies, Strategy(s)) {
		return Strategy(s), nil
	}
	return "", fmt.Errorf("%w %q: want %q, %q, %q or %q", ErrUnknownStrategy, s, RoundRobin, LeastConnections, RandomTwo, Hash)
}

// A view is what a strategy sees for one pick: the members in their stable
// order, which of them it may choose (ok), and the state that the owner
// keeps for strategies between picks (the rotation cursor, the random
// source, the hash ring). Strategies are functions of a view: they keep
// nothing themselves, so that the rotation survives adds and removes (the
// owner moves the cursor, see removeAt) and a test can drive them with plain
// data.
type view struct {
	members []*member
	req     PickRequest
	md      mode
	limit   int64 // max_requests_per_backend, 0 for none (or to ignore it)

	cursor    int
	now       time.Time
	slowStart time.Duration
	// uniform: every weight is the same and nothing ramps, so that plain
	// rotation is exact and cheaper than the weighted kind.
	uniform bool
	rng     *rand.Rand
	o       *owner // builds the hash ring on first use after a change; nil in tests of other strategies
}

// mode is what a pick is for: which members it may choose.
type mode int

const (
	modeNew    mode = iota // a request no sticky session sends
	modeSticky             // a request its sticky session sends
	modePanic              // when_all_down try_all: any ready member, whatever its health
)

// ok reports whether the pick may choose m.
func (v *view) ok(m *member) bool {
	switch v.md {
	case modeNew:
		if !m.takesNew {
			return false
		}
	case modeSticky:
		if !m.takesSticky {
			return false
		}
	case modePanic:
		if m.admin != AdminReady {
			return false
		}
	}
	return (len(v.req.Skip) == 0 || !slices.Contains(v.req.Skip, m.b)) && !m.full(v.limit)
}

func (v *view) weight(m *member) int64 { return m.effective(v.now, v.slowStart) }

// A selector returns the index of the chosen member, or -1 if none may be
// chosen.
type selector func(v *view) int

func (s Strategy) selector() selector {
	switch s {
	case LeastConnections:
		return leastConnections
	case RandomTwo:
		return randomTwo
	case Hash:
		return hashed
	}
	return roundRobin
}

// roundRobin returns the first member it may choose at or after the cursor,
// wrapping, when weights are uniform; otherwise the smooth weighted choice.
func roundRobin(v *view) int {
	if !v.uniform {
		return smoothWeighted(v)
	}
	n := len(v.members)
	for k := range n {
		i := (v.cursor + k) % n
		if v.ok(v.members[i]) {
			return i
		}
	}
	return -1
}

// smoothWeighted is nginx's smooth weighted round-robin: every member that
// may be chosen adds its weight to its running total; the largest total
// wins and gives back the sum of the weights. Over sum-of-weights picks each
// member wins exactly its weight's share, interleaved (5/1/1 gives
// a a b a c a a). Members that may not be chosen sit out, as nginx's down
// peers do.
func smoothWeighted(v *view) int {
	if v.plain() {
		return smoothWeightedPlain(v.members)
	}
	best := -1
	var total int64
	for i, m := range v.members {
		if !v.ok(m) {
			continue
		}
		w := v.weight(m)
		m.current += w
		total += w
		if best < 0 || m.current > v.members[best].current {
			best = i
		}
	}
	if best >= 0 {
		v.members[best].current -= total
	}
	return best
}

// plain reports whether the pick is the common one: a new request, with
// nothing to skip, no limit on backends and no slow start under way. Then
// the strategies' passes over the members reduce to one boolean and the
// members' own fields, which keeps a pass over a thousand members within a
// few microseconds.
func (v *view) plain() bool {
	return v.md == modeNew && len(v.req.Skip) == 0 && v.limit <= 0 && v.now.IsZero()
}

// smoothWeightedPlain is smoothWeighted for a plain pick: the same choice,
// without the per-member checks that cannot apply.
func smoothWeightedPlain(members []*member) int {
	best, bestCurrent := -1, int64(0)
	var total int64
	for i, m := range members {
		if !m.takesNew {
			continue
		}
		w := m.fullWeight()
		c := m.current + w
		m.current = c
		total += w
		if best < 0 || c > bestCurrent {
			best, bestCurrent = i, c
		}
	}
	if best >= 0 {
		members[best].current -= total
	}
	return best
}

// lighter reports whether a has less in flight per unit of weight than b,
// comparing a/wa with b/wb without dividing.
func (v *view) lighter(a, b *member) bool {
	return a.b.InFlight()*v.weight(b) < b.b.InFlight()*v.weight(a)
}

// leastConnections returns the member with the fewest requests in flight per
// unit of weight. Scanning from the cursor and keeping the first of equals
// breaks ties by rotation, so that requests arriving one at a time, with
// nothing in flight, still spread over every backend.
func leastConnections(v *view) int {
	if v.uniform && v.plain() {
		return leastConnectionsPlain(v.members, v.cursor)
	}
	n := len(v.members)
	best, bestLoad := -1, int64(0)
	for k := range n {
		i := v.cursor + k
		if i >= n {
			i -= n
		}
		m := v.members[i]
		if !v.ok(m) {
			continue
		}
		if v.uniform { // the common case: no division by weight needed
			if load := m.b.InFlight(); best < 0 || load < bestLoad {
				best, bestLoad = i, load
			}
		} else if best < 0 || v.lighter(m, v.members[best]) {
			best = i
		}
	}
	return best
}

// leastConnectionsPlain is leastConnections for a plain pick among equal
// weights.
func leastConnectionsPlain(members []*member, cursor int) int {
	best, bestLoad := -1, int64(0)
	scan := func(from, to int) {
		for i := from; i < to; i++ {
			m := members[i]
			if !m.takesNew {
				continue
			}
			if load := m.b.InFlight(); best < 0 || load < bestLoad {
				best, bestLoad = i, load
			}
		}
	}
	// From the cursor to the end, then from the start: the first of equals
	// after the cursor wins, as in leastConnections.
	scan(cursor, len(members))
	scan(0, min(cursor, len(members)))
	return best
}

// randomTwo draws two distinct members it may choose and returns the
// lighter. A few random draws find them when most members may be chosen;
// when few may, it lists those that may and draws from the list.
func randomTwo(v *view) int {
	n := len(v.members)
	if n == 0 {
		return -1
	}
	draw := func(not int) int {
		for range 8 {
			if i := v.rng.IntN(n); i != not && v.ok(v.members[i]) {
				return i
			}
		}
		return -1
	}
	a := draw(-1)
	b := -1
	if a >= 0 {
		b = draw(a)
	}
	if a < 0 || b < 0 {
		var may []int
		for i, m := range v.members {
			if v.ok(m) {
				may = append(may, i)
			}
		}
		switch len(may) {
		case 0:
			return -1
		case 1:
			return may[0]
		}
		j := v.rng.IntN(len(may))
		k := v.rng.IntN(len(may) - 1)
		if k >= j {
			k++
		}
		a, b = may[j], may[k]
	}
	if v.lighter(v.members[b], v.members[a]) {
		return b
	}
	return a
}

// hashed walks the ring from the request's key to the first member it may
// choose.
func hashed(v *view) int {
	if !v.req.HasHash {
		return roundRobin(v)
	}
	return v.o.hashRing().walk(v)
}

// ring is the Hash strategy's table: points on a circle of uint64, sorted,
// each owned by a member, named by its index in the members the ring was
// built from, so that a pick needs no search for it. The owner builds the
// ring anew (reweigh) whenever members join, leave or change weight, before
// it picks again, so that the indexes always name the members they did.
type ring struct {
	points []uint64
	owners []int32 // index in members; half the size of an int or a pointer
}

// ringPoints bounds the size of the ring, so that building it after a
// change stays in milliseconds at a thousand backends of any weight: each
// unit of weight gets up to 100 points, fewer when the weights add up to
// more than ringPoints/100.
const ringPoints = 160_000

func buildRing(members []*member) *ring {
	var sum int
	for _, m := range members {
		sum += m.weight
	}
	per := min(100.0, float64(ringPoints)/float64(max(sum, 1)))
	r := &ring{}
	for j, m := range members {
		n := max(1, int(float64(m.weight)*per+0.5))
		base := HashKey(m.b.key)
		for i := range n {
			r.points = append(r.points, mix(base+uint64(i)*0x9e3779b97f4a7c15))
			r.owners = append(r.owners, int32(j))
		}
	}
	idx := make([]int, len(r.points))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case r.points[a] < r.points[b]:
			return -1
		case r.points[a] > r.points[b]:
			return 1
		}
		return 0
	})
	points, owners := make([]uint64, len(idx)), make([]int32, len(idx))
	for j, i := range idx {
		points[j], owners[j] = r.points[i], r.owners[i]
	}
	r.points, r.owners = points, owners
	return r
}

// walk returns the index in v.members of the owner of the first point at
// or after the request's key, going round, that the view may choose; -1 if
// none. v.members must be the members the ring was built from.
func (r *ring) walk(v *view) int {
	h := v.req.Hash
	n := len(r.points)
	if n == 0 {
		return -1
	}
	start, _ := slices.BinarySearch(r.points, h)
	last := int32(-1) // a member seen refused is not asked again at once
	for k := range n {
		i := r.owners[(start+k)%n]
		if i == last {
			continue
		}
		if v.ok(v.members[i]) {
			return int(i)
		}
		last = i
	}
	return -1
}

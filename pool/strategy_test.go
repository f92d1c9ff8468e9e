package pool

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testMembers builds a pool's member list from a spec such as "u0 d1 u3w2":
// one entry per member, its state (u up, d down), its in-flight count and,
// after w, its weight (1 if not given).
func testMembers(spec ...string) []*member {
	ms := make([]*member, len(spec))
	sh := newShared()
	for i, s := range spec {
		u := &url.URL{Scheme: "http", Host: fmt.Sprintf("b%d:80", i)}
		m := &member{b: newBackend(u, sh), state: StateUp, admin: AdminReady, weight: 1}
		if s[0] == 'd' {
			m.state = StateDown
		}
		m.refresh()
		load, weight, _ := strings.Cut(s[1:], "w")
		var n int64
		fmt.Sscan(load, &n)
		m.b.inflight.Store(n)
		if weight != "" {
			fmt.Sscan(weight, &m.weight)
		}
		ms[i] = m
	}
	return ms
}

// testView is a view of ms for a pick of a request no sticky session sends.
func testView(ms []*member, cursor int, skip []*Backend) *view {
	uniform := true
	for _, m := range ms {
		uniform = uniform && m.weight == ms[0].weight
	}
	return &view{members: ms, req: PickRequest{Skip: skip}, cursor: cursor, uniform: uniform,
		rng: rand.New(rand.NewPCG(1, 2))}
}

func TestStrategies(t *testing.T) {
	tests := []struct {
		name   string
		spec   []string
		cursor int
		skip   []int
		rr, lc int
	}{
		{name: "empty pool", spec: nil, rr: -1, lc: -1},
		{name: "all down", spec: []string{"d0", "d0", "d0"}, rr: -1, lc: -1},
		{name: "first at cursor", spec: []string{"u0", "u0", "u0"}, cursor: 1, rr: 1, lc: 1},
		{name: "wraps past the end", spec: []string{"u0", "d0", "d0"}, cursor: 1, rr: 0, lc: 0},
		{name: "skips down", spec: []string{"u5", "d0", "u9"}, cursor: 1, rr: 2, lc: 0},
		{name: "least loaded wins", spec: []string{"u3", "u1", "u2"}, cursor: 0, rr: 0, lc: 1},
		{name: "tie broken by rotation", spec: []string{"u1", "u2", "u1", "u1"}, cursor: 1, rr: 1, lc: 2},
		{name: "tie wraps", spec: []string{"u1", "u2", "u2", "u1"}, cursor: 1, rr: 1, lc: 3},
		{name: "down never least", spec: []string{"d0", "u4"}, cursor: 0, rr: 1, lc: 1},
		{name: "skip tried", spec: []string{"u0", "u0", "u0"}, cursor: 0, skip: []int{0, 1}, rr: 2, lc: 2},
		{name: "skip all", spec: []string{"u0", "u0"}, skip: []int{0, 1}, rr: -1, lc: -1},
		// Least-connections divides by weight: 4 in flight at weight 4 is
		// lighter than 2 at weight 1.
		{name: "load per weight", spec: []string{"u2", "u4w4"}, cursor: 0, rr: 1, lc: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := testMembers(tt.spec...)
			var skip []*Backend
			for _, i := range tt.skip {
				skip = append(skip, ms[i].b)
			}
			if tt.name != "load per weight" { // the weighted round-robin is tested below
				assert.Equal(t, tt.rr, roundRobin(testView(ms, tt.cursor, skip)), "round-robin")
			}
			assert.Equal(t, tt.lc, leastConnections(testView(ms, tt.cursor, skip)), "least-connections")
		})
	}
}

// sequence picks n times from ms with the smooth weighted round-robin and
// names each pick by its index's letter.
func sequence(ms []*member, n int) string {
	var b strings.Builder
	for range n {
		i := smoothWeighted(testView(ms, 0, nil))
		b.WriteByte(byte('a' + i))
	}
	return b.String()
}

// nginx's smooth weighted round-robin over weights 5, 1, 1 gives the
// sequence its documentation gives, and over any window of sum-of-weights
// picks each backend gets exactly its weight: never a burst beyond it.
func TestSmoothWeightedRoundRobin(t *testing.T) {
	ms := testMembers("u0w5", "u0w1", "u0w1")
	assert.Equal(t, "aabacaa", sequence(ms, 7))

	ms = testMembers("u0w5", "u0w3", "u0w2", "u0w1")
	seq := sequence(ms, 11*20)
	for start := 0; start+11 <= len(seq); start++ {
		window := seq[start : start+11]
		for i, w := range []int{5, 3, 2, 1} {
			assert.Equal(t, w, strings.Count(window, string(rune('a'+i))), "window %d %q", start, window)
		}
	}

	// A member that may not be chosen sits out without disturbing the
	// others' shares.
	ms = testMembers("u0w2", "d0w5", "u0w1")
	assert.Equal(t, "aca", sequence(ms, 3))
}

// Random-two picks the lighter of two distinct members, so that the
// heaviest never wins while another may be chosen, and every member that
// may be chosen is chosen sometimes.
func TestRandomTwo(t *testing.T) {
	ms := testMembers("u9", "u0", "u1", "d0")
	v := testView(ms, 0, nil)
	counts := map[int]int{}
	for range 3000 {
		counts[randomTwo(v)]++
	}
	assert.Zero(t, counts[0], "the heaviest of three never wins")
	assert.Zero(t, counts[3], "a down member is never chosen")
	assert.Positive(t, counts[1])
	assert.Positive(t, counts[2])
	assert.Greater(t, counts[1], counts[2], "the lightest wins most")

	assert.Equal(t, 2, randomTwo(testView(testMembers("d0", "d0", "u7"), 0, nil)), "the only one")
	assert.Equal(t, -1, randomTwo(testView(testMembers("d0", "d0"), 0, nil)))
}

// keysOn maps 10,000 keys to the members the ring sends them to.
func keysOn(r *ring, ms []*member) map[int]*member {
	v := testView(ms, 0, nil)
	out := make(map[int]*member, 10000)
	for k := range 10000 {
		v.req.Hash, v.req.HasHash = HashKey(fmt.Sprintf("client-%d", k)), true
		if i := r.walk(v); i >= 0 {
			out[k] = ms[i]
		} else {
			out[k] = nil
		}
	}
	return out
}

// Removing one backend of N moves only the keys that were on it; a down
// backend's keys go to their next backends on the ring, and come back when
// it does; weights share the keys out in proportion.
func TestHashRingIsConsistent(t *testing.T) {
	const n = 10
	specs := make([]string, n)
	for i := range specs {
		specs[i] = "u0"
	}
	ms := testMembers(specs...)
	before := keysOn(buildRing(ms), ms)
	removed := ms[3]
	rest := append(append([]*member{}, ms[:3]...), ms[4:]...)
	after := keysOn(buildRing(rest), rest)
	moved, own := 0, 0
	for k, m := range before {
		if m == removed {
			own++
			continue
		}
		if after[k] != m {
			moved++
		}
	}
	assert.Zero(t, moved, "no key that was on another backend moves")
	assert.InDelta(t, 10000/n, own, 10000/n*0.5, "the removed backend held about 1/N of the keys")

	ms[5].state = StateDown
	ms[5].refresh()
	down := keysOn(buildRing(ms), ms)
	for k, m := range before {
		if m != ms[5] {
			assert.Same(t, m, down[k], "a key not on the down backend stays put")
		} else {
			assert.NotSame(t, ms[5], down[k])
		}
	}

	weighted := testMembers("u0w1", "u0w3")
	counts := map[*member]int{}
	for _, m := range keysOn(buildRing(weighted), weighted) {
		counts[m]++
	}
	assert.InDelta(t, 7500, counts[weighted[1]], 600, "weight 3 of 4 holds about three quarters")
}

// Sequential requests with nothing in flight must spread over every backend
// (the original program sent 9 of 9 to the first).
func TestLeastConnectionsSpreadsSequentialRequests(t *testing.T) {
	o := testOwner(t, Config{Strategy: LeastConnections}, "http://a", "http://b", "http://c")
	counts := map[*Backend]int{}
	for range 9 {
		r := o.pick(PickRequest{})
		require.NoError(t, r.err)
		counts[r.val]++
	}
	for _, m := range o.members {
		assert.Equal(t, 3, counts[m.b])
	}
}

func TestParseStrategy(t *testing.T) {
	for _, s := range []string{"round-robin", "least-connections", "random-two", "hash"} {
		got, err := ParseStrategy(s)
		assert.NoError(t, err)
		assert.Equal(t, Strategy(s), got)
	}
	for _, s := range []string{"", "roundrobin", "Round-Robin", "random"} {
		_, err := ParseStrategy(s)
		assert.ErrorIs(t, err, ErrUnknownStrategy, s)
	}
}

// The plain passes (a new request, nothing skipped, no limit, no slow
// start) choose exactly as the general ones: the same members, in the same
// order, over random pools and many picks. A Skip of a backend outside the
// pool sends a view down the general path without changing its choice.
func TestPlainPassesChooseAsTheGeneralOnes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	outside := testMembers("u0")[0].b
	for round := range 200 {
		n := 1 + rng.IntN(40)
		spec := make([]string, n)
		for i := range spec {
			state := "u"
			if rng.IntN(4) == 0 {
				state = "d"
			}
			spec[i] = fmt.Sprintf("%s%dw%d", state, rng.IntN(5), 1+rng.IntN(3*(round%2)+1))
		}
		plain, general := testMembers(spec...), testMembers(spec...)
		for pick := range 3 * n {
			cursor := pick % n
			pv, gv := testView(plain, cursor, nil), testView(general, cursor, []*Backend{outside})
			require.True(t, pv.plain())
			require.False(t, gv.plain())
			assert.Equal(t, smoothWeighted(gv), smoothWeighted(pv), "round %d pick %d %v", round, pick, spec)
			if pv.uniform {
				assert.Equal(t, leastConnections(gv), leastConnections(pv), "round %d pick %d %v", round, pick, spec)
			}
		}
	}
}

// The ring names members by index: after members leave and join, a hash
// pick through the owner is what a ring built afresh chooses, never a
// member gone or one in another's place.
func TestHashPicksFollowMemberChanges(t *testing.T) {
	o := testOwner(t, Config{Strategy: Hash}, "http://a", "http://b", "http://c", "http://d")
	check := func() {
		t.Helper()
		fresh := buildRing(o.members)
		for k := range 1000 {
			req := PickRequest{Hash: HashKey(fmt.Sprintf("client-%d", k)), HasHash: true}
			r := o.pick(req)
			require.NoError(t, r.err)
			v := o.view(req, modeNew, false, o.rampNow())
			i := fresh.walk(&v)
			require.GreaterOrEqual(t, i, 0)
			assert.Same(t, o.members[i].b, r.val)
		}
	}
	check()
	_, err := o.removeURL("http://b")
	require.NoError(t, err)
	check()
	e := o.addURL(t, "http://e")
	o.handle(probeMsg{b: e, r: ProbeResult{OK: true, Reason: "test"}})
	check()
	_, err = o.removeURL("http://a")
	require.NoError(t, err)
	check()
}

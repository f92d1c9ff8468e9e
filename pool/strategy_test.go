package pool

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

// members builds a pool's member list from a spec such as "u0 d1 u3": one
// entry per member, its state (u up, d down) and its in-flight count.
func testMembers(spec ...string) []*member {
	ms := make([]*member, len(spec))
	for i, s := range spec {
		u := &url.URL{Scheme: "http", Host: fmt.Sprintf("b%d:80", i)}
		m := &member{b: newBackend(u), state: StateUp}
		if s[0] == 'd' {
			m.state = StateDown
		}
		var n int64
		fmt.Sscan(s[1:], &n)
		m.b.inflight.Store(n)
		ms[i] = m
	}
	return ms
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := testMembers(tt.spec...)
			var skip []*Backend
			for _, i := range tt.skip {
				skip = append(skip, ms[i].b)
			}
			assert.Equal(t, tt.rr, roundRobin(ms, tt.cursor, skip), "round-robin")
			assert.Equal(t, tt.lc, leastConnections(ms, tt.cursor, skip), "least-connections")
		})
	}
}

// Sequential requests with nothing in flight must spread over every backend
// (the original program sent 9 of 9 to the first).
func TestLeastConnectionsSpreadsSequentialRequests(t *testing.T) {
	o := &owner{sel: leastConnections, members: testMembers("u0", "u0", "u0"), log: discard()}
	counts := map[*Backend]int{}
	for range 9 {
		r := o.pick(nil)
		counts[r.val]++
	}
	for _, m := range o.members {
		assert.Equal(t, 3, counts[m.b])
	}
}

func TestParseStrategy(t *testing.T) {
	for _, s := range []string{"round-robin", "least-connections"} {
		got, err := ParseStrategy(s)
		assert.NoError(t, err)
		assert.Equal(t, Strategy(s), got)
	}
	for _, s := range []string{"", "roundrobin", "Round-Robin", "random"} {
		_, err := ParseStrategy(s)
		assert.ErrorIs(t, err, ErrUnknownStrategy, s)
	}
}

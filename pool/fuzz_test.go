package pool

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is the pool as a test would describe it: plain data, no rotation
// cursor, no messages.
type model struct {
	members  []*modelBackend
	draining []*modelBackend
}

type modelBackend struct {
	key           string
	state         State
	admin         AdminState
	weight        int
	inflight      int64
	passes, fails int
}

func (b *modelBackend) takesNew() bool { return b.state == StateUp && b.admin == AdminReady }

func (m *model) find(list []*modelBackend, key string) int {
	return slices.IndexFunc(list, func(b *modelBackend) bool { return b.key == key })
}

// FuzzPoolAgainstModel applies random operations to the owner's state and to
// the model and checks after each that they agree. The thresholds are 2, so
// that streaks matter.
func FuzzPoolAgainstModel(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 6, 0, 3, 0, 6, 0, 1, 0, 7, 0})
	f.Add([]byte{1, 0, 2, 5, 2, 5, 2, 6, 2, 6, 2, 6, 2, 8, 2, 2, 2, 7, 2})
	f.Add([]byte{0, 1, 1, 5, 1, 4, 1, 4, 1, 6, 1, 7, 1, 0, 1, 8, 1})
	f.Add([]byte{2, 0, 0, 0, 1, 9, 0, 6, 0, 10, 1, 6, 1, 5, 1, 11, 6, 6, 0, 9, 0, 9, 0, 7, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		strategy := []Strategy{RoundRobin, LeastConnections, RandomTwo, Hash}[ops[0]%4]
		o := testOwner(t, Config{Strategy: strategy, HealthyThreshold: 2, UnhealthyThreshold: 2, Seed: 1,
			Passive: &PassiveHealth{ConsecutiveFailures: 1, EjectionTime: time.Hour, MaxEjectedPercent: 100}})
		var m model
		// held are the backends the test has acquired, by key, to release later.
		held := map[string][]*Backend{}
		key := func(i byte) string { return fmt.Sprintf("http://b%d.test", i%5) }

		for i := 1; i+1 < len(ops); i += 2 {
			op, k := ops[i]%12, key(ops[i+1])
			mi := m.find(m.members, k)
			switch op {
			case 0: // add
				u, _ := ParseURL(k)
				reply := make(chan result[added], 1)
				o.handle(addMsg{s: spec{u: u, weight: 1, admin: AdminReady}, reply: reply})
				r := <-reply
				m.draining = slices.DeleteFunc(m.draining, func(b *modelBackend) bool { return b.inflight == 0 })
				if mi >= 0 {
					require.ErrorIs(t, r.err, ErrExists)
					break
				}
				require.NoError(t, r.err)
				nb := &modelBackend{key: k, state: StateDown, admin: AdminReady, weight: 1}
				if di := m.find(m.draining, k); di >= 0 {
					nb.inflight = m.draining[di].inflight
					m.draining = slices.Delete(m.draining, di, di+1)
				}
				m.members = append(m.members, nb)
			case 1: // remove
				_, err := o.removeURL(k)
				m.draining = slices.DeleteFunc(m.draining, func(b *modelBackend) bool { return b.inflight == 0 })
				if mi < 0 {
					require.ErrorIs(t, err, ErrNotFound)
					break
				}
				require.NoError(t, err)
				if b := m.members[mi]; b.inflight > 0 {
					b.state = StateDraining
					m.draining = append(m.draining, b)
				}
				m.members = slices.Delete(m.members, mi, mi+1)
			case 2, 3: // mark down (the proxy could not connect)
				if mi < 0 {
					break
				}
				o.handle(markDownMsg{b: o.members[mi].b, reason: "connection refused"})
				if mb := m.members[mi]; mb.state != StateDown {
					mb.state, mb.passes, mb.fails = StateDown, 0, 0
				}
			case 4, 5: // probe fails, probe passes
				if mi < 0 {
					break
				}
				ok := op == 5
				o.handle(probeMsg{b: o.members[mi].b, r: ProbeResult{OK: ok}})
				mb := m.members[mi]
				if ok {
					mb.passes, mb.fails = mb.passes+1, 0
					if (mb.state == StateDown && mb.passes >= 2) || mb.state == StateEjected {
						mb.state, mb.passes = StateUp, 0
					}
				} else {
					mb.passes, mb.fails = 0, mb.fails+1
					if (mb.state == StateUp || mb.state == StateEjected) && mb.fails >= 2 {
						mb.state, mb.fails = StateDown, 0
					}
				}
			case 6, 7: // pick, and with 7 hold the backend
				r := o.pick(PickRequest{Hash: HashKey(k), HasHash: true})
				var up []*modelBackend
				for _, b := range m.members {
					if b.takesNew() {
						up = append(up, b)
					}
				}
				if len(up) == 0 {
					require.ErrorIs(t, r.err, ErrNoBackend)
					break
				}
				require.NoError(t, r.err)
				pi := m.find(m.members, r.val.key)
				require.GreaterOrEqual(t, pi, 0, "picked a backend outside the pool")
				picked := m.members[pi]
				require.True(t, picked.takesNew(), "picked a backend that takes no new requests")
				if strategy == LeastConnections {
					for _, b := range up {
						require.LessOrEqual(t, picked.inflight*int64(b.weight), b.inflight*int64(picked.weight), "not the least loaded")
					}
				}
				if op == 7 {
					r.val.Acquire()
					picked.inflight++
					held[r.val.key] = append(held[r.val.key], r.val)
				}
			case 8: // release one request held against k
				h := held[k]
				if len(h) == 0 {
					break
				}
				h[0].Release()
				held[k] = h[1:]
				if di := m.find(m.draining, k); di >= 0 && m.draining[di].inflight > 0 {
					m.draining[di].inflight--
				} else {
					m.members[mi].inflight--
				}
			case 9: // the admin state goes round: ready, drain, maintenance
				if mi < 0 {
					break
				}
				mb := m.members[mi]
				next := map[AdminState]AdminState{AdminReady: AdminDrain, AdminDrain: AdminMaintenance, AdminMaintenance: AdminReady}[mb.admin]
				u, _ := ParseURL(k)
				reply := make(chan result[BackendStatus], 1)
				o.handle(updateMsg{u: u, admin: &next, reply: reply})
				require.NoError(t, (<-reply).err)
				mb.admin = next
			case 10: // live traffic failed: eject
				if mi < 0 {
					break
				}
				o.handle(ejectMsg{b: o.members[mi].b, reason: "passive"})
				if mb := m.members[mi]; mb.state == StateUp {
					mb.state, mb.passes, mb.fails = StateEjected, 0, 0
				}
			case 11: // a new weight
				if mi < 0 {
					break
				}
				w := 1 + int(ops[i+1]/5)%4
				u, _ := ParseURL(k)
				reply := make(chan result[BackendStatus], 1)
				o.handle(updateMsg{u: u, weight: &w, reply: reply})
				require.NoError(t, (<-reply).err)
				m.members[mi].weight = w
			}

			// The snapshot agrees with the model.
			st := o.status()
			m.draining = slices.DeleteFunc(m.draining, func(b *modelBackend) bool { return b.inflight == 0 })
			want := append(slices.Clone(m.members), m.draining...)
			require.Len(t, st.Backends, len(want))
			for j, b := range want {
				got := st.Backends[j]
				assert.Equal(t, b.key, got.URL)
				assert.Equal(t, b.state, got.State, b.key)
				assert.Equal(t, b.inflight, got.InFlight, b.key)
				if got.State != StateDraining {
					assert.Equal(t, b.admin, got.AdminState, b.key)
					assert.Equal(t, b.weight, got.Weight, b.key)
				}
			}
			require.Equal(t, len(m.members), st.Members)
			require.Equal(t, len(m.draining), st.Draining)
		}
	})
}

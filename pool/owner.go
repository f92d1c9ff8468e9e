package pool

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"time"
)

// owner is the state of the loop that Pool.Run runs. Only that goroutine
// touches it; everything else asks through the messages in messages.go.
type owner struct {
	cfg    Config
	sel    selector
	log    *slog.Logger
	shared *shared
	// members are the backends in the pool, in the order they were added,
	// which is the rotation order.
	members []*member
	// cursor is the index in members that the next pick considers first.
	cursor int
	// draining are removed backends with requests still in flight.
	draining []*member

	// sticky finds a member by the value of its session cookie.
	sticky map[string]*member
	// uniform is true while every member has the same weight; ramping
	// counts the members in slow start.
	uniform bool
	ramping int
	// rampsEnd is when the earliest slow start ends, so that picks between
	// skip the scan for ramps that are over; zero when not known, which
	// has the next pick scan and find it.
	rampsEnd time.Time
	// ring is the Hash strategy's table, nil when it must be built anew.
	ring *ring
	rng  *rand.Rand
	// pickView is the view chooseIn hands the strategy, kept here because
	// a view passed through the selector's function value escapes: one
	// allocation per pick saved.
	pickView view

	// queue holds the requests waiting for a backend slot, oldest first.
	queue []waiter
	// ejections fires when the earliest ejection ends.
	ejections *time.Timer
}

// waiter is a request in the queue.
type waiter struct {
	req PickRequest
	t   *ticket
}

// newOwner builds the loop's state: the configured backends, up, as
// HAProxy and nginx start them. Pool.Run and the tests both build it here,
// so that a test drives exactly the state the loop starts from.
func newOwner(cfg Config, initial []spec, sh *shared, log *slog.Logger) *owner {
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	o := &owner{cfg: cfg, sel: cfg.Strategy.selector(), log: log, shared: sh,
		sticky: make(map[string]*member), rng: rand.New(rand.NewPCG(seed, seed>>1|1))}
	o.publish()
	for _, s := range initial {
		mem := o.newMember(s)
		o.enter(mem, StateUp, "configured", CauseConfigured)
		o.members = append(o.members, mem)
	}
	o.reweigh()
	return o
}

// run serves messages until ctx ends. It never does I/O and never blocks
// on anything but its inbox: every reply goes on a channel with room for it,
// and a grant to a queued request is an atomic and a close.
func (o *owner) run(ctx context.Context, inbox <-chan message) {
	defer func() {
		if o.ejections != nil {
			o.ejections.Stop()
		}
	}()
	for {
		select {
		case m := <-inbox:
			o.handle(m)
		case <-o.shared.bell:
			o.serveQueue()
		case <-o.ejectionsC():
			o.endEjections()
			if len(o.queue) > 0 {
				o.serveQueue() // a member back from an ejection has free slots
			}
		case <-ctx.Done():
			return
		}
	}
}

// handle applies one message. The switch is the whole of what can happen
// to the pool's state.
func (o *owner) handle(msg message) {
	switch m := msg.(type) {
	case pickMsg:
		// With requests queued, pick refuses at once and changes nothing;
		// with none queued, there is nothing to serve.
		m.reply <- o.pick(m.req)
		return
	case queueMsg:
		m.reply <- o.enqueue(m)
	case markDownMsg:
		if mem := o.find(m.b); mem != nil {
			mem.failures++
			o.set(mem, StateDown, m.reason, CauseConnectionFailure)
		}
	case ejectMsg:
		if mem := o.find(m.b); mem != nil {
			o.eject(mem, m.reason)
		}
	case recoveredMsg:
		if mem := o.find(m.b); mem != nil {
			mem.ejectStreak = 0
		}
		return // the end of a run of ejections frees no slot
	case probeMsg:
		if mem := o.find(m.b); mem != nil {
			o.probe(mem, m.r)
		}
	case addMsg:
		m.reply <- o.add(m.s)
	case removeMsg:
		if i := o.index(m.u.String()); m.operator && i >= 0 && o.members[i].source != "" {
			m.reply <- result[BackendStatus]{err: fmt.Errorf("%w (%s): a lookup would bring it back; set its admin_state to maintenance to take it out", ErrDiscovered, o.members[i].source)}
			break
		}
		m.reply <- o.remove(m.u)
	case sourceMsg:
		m.reply <- o.setSource(m)
	case updateMsg:
		m.reply <- o.update(m)
	case applyMsg:
		m.reply <- o.apply(m)
	case statusMsg:
		m.reply <- o.status()
		return // a snapshot: it frees no slot
	case backendsMsg:
		var bs []*Backend
		for _, mem := range o.members {
			if mem.admin != AdminMaintenance && (!m.downOnly || mem.state != StateUp) {
				bs = append(bs, mem.b)
			}
		}
		m.reply <- bs
		return // a read: it frees no slot
	default:
		panic(fmt.Sprintf("pool: unknown message %T", msg))
	}
	// Whatever changed may have made room for a queued request: a member
	// added, brought up or made ready, a limit raised, or one member going
	// down, which under when_all_down try_all can open every ready member.
	// The messages that cannot free a slot have returned above, sparing a
	// strategy pass per message while requests wait.
	if len(o.queue) > 0 {
		o.serveQueue()
	}
}

// publish writes the settings the request path reads into the shared
// atomics.
func (o *owner) publish() {
	o.shared.limit.Store(int64(o.cfg.MaxRequestsPerBackend))
	o.shared.queueTimeout.Store(int64(o.cfg.QueueTimeout))
	o.shared.passive.Store(newPassivePolicy(o.cfg.Passive))
}

// reweigh notes a change of members or weights: whether plain rotation is
// still exact, and that the hash ring must be built again.
func (o *owner) reweigh() {
	o.uniform = true
	for _, m := range o.members {
		if m.weight != o.members[0].weight {
			o.uniform = false
			break
		}
	}
	o.ring = nil
}

// view returns what a strategy sees for a pick of req in md at now, the
// time rampNow gave. With ignoreLimit it leaves out
// max_requests_per_backend, to tell "none may" from "all are busy".
func (o *owner) view(req PickRequest, md mode, ignoreLimit bool, now time.Time) view {
	v := view{members: o.members, req: req, md: md, limit: o.shared.limit.Load(), cursor: o.cursor,
		now: now, slowStart: o.cfg.SlowStart, rng: o.rng, o: o}
	if ignoreLimit {
		v.limit = 0
	}
	v.uniform = o.uniform && o.ramping == 0
	return v
}

// rampNow returns the time the weights of a pick are taken at, zero when
// no member is in slow start (then the weights do not depend on it), and
// ends the slow starts that are over. One pick asks once, however many
// views it builds, and the scan of the members runs only when the earliest
// slow start is due to end.
func (o *owner) rampNow() time.Time {
	if o.ramping == 0 {
		return time.Time{}
	}
	now := time.Now()
	if !now.Before(o.rampsEnd) {
		o.endRamps(now)
	}
	if o.ramping == 0 {
		return time.Time{} // the last ended: a plain pick again
	}
	return now
}

// hashRing returns the Hash strategy's ring, built anew after a change.
func (o *owner) hashRing() *ring {
	if o.ring == nil {
		o.ring = buildRing(o.members)
	}
	return o.ring
}

// endRamps ends the slow starts that are over and notes when the earliest
// of the others ends.
func (o *owner) endRamps(now time.Time) {
	o.rampsEnd = time.Time{}
	for _, m := range o.members {
		if m.rampFrom.IsZero() {
			continue
		}
		end := m.rampFrom.Add(o.cfg.SlowStart)
		if !now.Before(end) {
			m.rampFrom = time.Time{}
			o.ramping--
		} else if o.rampsEnd.IsZero() || end.Before(o.rampsEnd) {
			o.rampsEnd = end
		}
	}
}

// choose finds a member for req: its sticky backend if that may take it,
// else the strategy's choice among the members that take new requests,
// else, with when_all_down try_all and no member alive, any ready member.
// The error says why there is none: ErrBusy when some could take it but
// every one is at its limit, ErrNoBackend otherwise.
func (o *owner) choose(req PickRequest) (*member, error) {
	now := o.rampNow()
	if req.Sticky != "" {
		if m := o.sticky[req.Sticky]; m != nil {
			if v := o.view(req, modeSticky, false, now); v.ok(m) {
				return m, nil
			}
		}
	}
	if m := o.chooseIn(req, modeNew, now); m != nil {
		return m, nil
	}
	md := o.lastMode()
	if md == modePanic {
		if m := o.chooseIn(req, modePanic, now); m != nil {
			return m, nil
		}
	}
	if o.shared.limit.Load() > 0 && o.anyIgnoringLimit(req, md, now) {
		return nil, ErrBusy
	}
	return nil, ErrNoBackend
}

// lastMode is the mode of choose's last resort: modePanic when
// when_all_down try_all is on and no member takes new requests.
func (o *owner) lastMode() mode {
	if o.cfg.WhenAllDown == TryAll && o.alive() == 0 {
		return modePanic
	}
	return modeNew
}

// anyIgnoringLimit reports whether a member could be chosen for req in md but for
// the limit. A scan, not the strategy: the weighted round-robin moves its
// totals when it chooses.
func (o *owner) anyIgnoringLimit(req PickRequest, md mode, now time.Time) bool {
	v := o.view(req, md, true, now)
	return slices.ContainsFunc(o.members, v.ok)
}

// couldTake reports whether choose would find a member for req, or find
// them all at their limit, rather than fail with ErrNoBackend; unlike
// choose, it moves neither the cursor nor the weighted round-robin's totals,
// so that asking does not distort the shares. The sticky backend counts
// only under its limit, as choose has it.
func (o *owner) couldTake(req PickRequest) bool {
	now := o.rampNow()
	if req.Sticky != "" {
		if m := o.sticky[req.Sticky]; m != nil {
			if v := o.view(req, modeSticky, false, now); v.ok(m) {
				return true
			}
		}
	}
	return o.anyIgnoringLimit(req, o.lastMode(), now)
}

func (o *owner) chooseIn(req PickRequest, md mode, now time.Time) *member {
	o.pickView = o.view(req, md, false, now)
	i := o.sel(&o.pickView)
	o.pickView = view{} // keep no request's Skip list alive
	if i < 0 {
		return nil
	}
	o.cursor = (i + 1) % len(o.members)
	return o.members[i]
}

func (o *owner) alive() int {
	n := 0
	for _, m := range o.members {
		if m.takesNew {
			n++
		}
	}
	return n
}

func (o *owner) pick(req PickRequest) result[*Backend] {
	if len(o.queue) > 0 {
		// Requests already wait: a new one queues behind them rather than
		// take the next free slot before them.
		return result[*Backend]{err: ErrBusy}
	}
	mem, err := o.choose(req)
	if err != nil {
		return result[*Backend]{err: err}
	}
	mem.requests++
	return result[*Backend]{val: mem.b}
}

// enqueue queues a request that found every backend busy, unless the queue
// is full, or there is nothing to wait for (no limit, or no backend that
// could take it even when free), or a slot has freed meanwhile (then it is
// granted at once, by serveQueue after this message).
func (o *owner) enqueue(m queueMsg) error {
	if o.shared.limit.Load() <= 0 {
		return ErrNoBackend
	}
	o.pruneQueue()
	if len(o.queue) >= o.cfg.MaxQueue {
		return ErrQueueFull
	}
	if !o.couldTake(m.req) {
		return ErrNoBackend
	}
	o.queue = append(o.queue, waiter{req: m.req, t: m.t})
	o.shared.queued.Store(int64(len(o.queue)))
	return nil
}

// serveQueue grants waiting requests, oldest first, as long as a backend
// each may use has a free slot. The slot is taken here, by the owner, with
// the same atomic the request path uses, so that a grant cannot overfill a
// backend.
func (o *owner) serveQueue() {
	for len(o.queue) > 0 {
		w := o.queue[0]
		if w.t.abandoned() {
			o.queue = o.queue[1:]
			continue
		}
		mem, err := o.choose(w.req)
		if err != nil {
			break // still busy: the next ring will say when a slot frees
		}
		if !mem.b.TryAcquire() {
			break // a request not queued took it first; another ring will come
		}
		o.queue = o.queue[1:]
		if w.t.grant(mem.b) {
			mem.requests++
		} else {
			mem.b.Release() // its request gave up as we granted it
		}
	}
	if len(o.queue) == 0 {
		o.queue = nil // let the backing array go after a burst
	}
	o.shared.queued.Store(int64(len(o.queue)))
}

// pruneQueue drops the requests that have given up.
func (o *owner) pruneQueue() {
	o.queue = slices.DeleteFunc(o.queue, func(w waiter) bool { return w.t.abandoned() })
	o.shared.queued.Store(int64(len(o.queue)))
}

func (o *owner) probe(mem *member, r ProbeResult) {
	mem.observeCheck(r, time.Now())
	reason := r.Reason
	if r.OK {
		mem.checksPassed++
		mem.passes, mem.fails = mem.passes+1, 0
		switch {
		case mem.state == StateDown && mem.passes >= o.cfg.HealthyThreshold:
			o.set(mem, StateUp, reason, CauseHealthCheck)
		case mem.state == StateEjected:
			// An active check that passes ends an ejection early; the run
			// of ejections goes on until live traffic succeeds.
			o.set(mem, StateUp, reason, CauseHealthCheck)
		}
		return
	}
	mem.checksFailed++
	mem.passes, mem.fails = 0, mem.fails+1
	mem.failures++
	switch {
	case (mem.state == StateUp || mem.state == StateEjected) && mem.fails >= o.cfg.UnhealthyThreshold:
		o.set(mem, StateDown, reason, CauseHealthCheck)
	case mem.state == StateDown:
		// Still down, perhaps for a new reason: an operator looking at a
		// backend that never came up wants the latest, not "added".
		mem.reason = reason
	}
}

// eject takes mem out for passive health, unless it is not up or as many
// members are ejected as max_ejected_percent allows.
func (o *owner) eject(mem *member, reason string) {
	mem.b.consecutiveFailures.Store(0) // count the next run afresh, whatever happens
	ph := o.cfg.Passive
	if ph == nil || mem.state != StateUp {
		return
	}
	ejected := 0
	for _, m := range o.members {
		if m.state == StateEjected {
			ejected++
		}
	}
	if limit := max(1, len(o.members)*ph.MaxEjectedPercent/100); ejected >= limit {
		o.log.Warn("backend not ejected: max_ejected_percent reached", "backend", mem.b.key,
			"ejected", ejected, "members", len(o.members), "reason", reason)
		return
	}
	mem.ejections++
	mem.ejectStreak++
	d := ph.EjectionTime * time.Duration(min(mem.ejectStreak, 10))
	mem.ejectUntil = time.Now().Add(d)
	mem.b.probation.Store(false)
	o.set(mem, StateEjected, fmt.Sprintf("%s; ejected for %v", reason, d), CausePassiveHealth)
}

// endEjections brings back the members whose ejection is over.
func (o *owner) endEjections() {
	now := time.Now()
	for _, m := range o.members {
		if m.state == StateEjected && !now.Before(m.ejectUntil) {
			// On probation: its first success ends the run of ejections.
			m.b.probation.Store(true)
			o.set(m, StateUp, "ejection over", CauseEjectionOver)
		}
	}
	// Set again even when none was over (enter sets it when one is): the
	// timer has fired and must not be left spent while others are out.
	o.scheduleEjections()
}

// scheduleEjections sets the timer for the earliest ejection to end.
func (o *owner) scheduleEjections() {
	var next time.Time
	for _, m := range o.members {
		if m.state == StateEjected && (next.IsZero() || m.ejectUntil.Before(next)) {
			next = m.ejectUntil
		}
	}
	if next.IsZero() {
		if o.ejections != nil {
			o.ejections.Stop()
		}
		return
	}
	d := max(time.Until(next), 0)
	if o.ejections == nil {
		o.ejections = time.NewTimer(d)
		return
	}
	o.ejections.Reset(d)
}

// ejectionsC is the ejection timer's channel, nil (a case that never fires)
// when there is none.
func (o *owner) ejectionsC() <-chan time.Time {
	if o.ejections == nil {
		return nil
	}
	return o.ejections.C
}

// set moves mem to state, logging a change. The streak restarts so that the
// thresholds count from the change. A member that comes back up after
// being down or ejected starts its slow start.
func (o *owner) set(mem *member, state State, reason string, cause Cause) {
	if mem.state == state {
		return
	}
	o.log.Info("backend state changed", "backend", mem.b.key,
		"from", string(mem.state), "to", string(state), "reason", reason)
	from := mem.state
	o.enter(mem, state, reason, cause)
	if state == StateUp && (from == StateDown || from == StateEjected) && o.cfg.SlowStart > 0 {
		if mem.rampFrom.IsZero() {
			o.ramping++
		}
		mem.rampFrom = mem.since
		o.rampsEnd = time.Time{} // found again by the next pick
	}
}

// enter puts mem in state and counts the change. An ejection begun or
// ended, or a member removed while ejected, sets the timer for the earliest
// end again: every way into or out of StateEjected comes here, so none is
// missed. A member removed is out of o.members before it enters draining,
// so that its ejection no longer counts.
func (o *owner) enter(mem *member, state State, reason string, cause Cause) {
	from := mem.state
	mem.state, mem.reason, mem.since = state, reason, time.Now()
	if from == StateEjected || state == StateEjected {
		o.scheduleEjections()
	}
	mem.refresh()
	mem.passes, mem.fails = 0, 0
	if mem.changes == nil {
		mem.changes = make(map[changeKey]uint64)
	}
	mem.changes[changeKey{state, cause}]++
}

// newMember makes the record of a backend joining the pool, with its sticky
// identity.
func (o *owner) newMember(s spec) *member {
	mem := &member{b: newBackend(s.u, o.shared), weight: s.weight, source: s.source, admin: s.admin}
	o.join(mem)
	return mem
}

// join gives mem its sticky identity, if sticky sessions are on.
func (o *owner) join(mem *member) {
	if len(o.cfg.StickySecret) == 0 {
		return
	}
	id := stickyID(o.cfg.StickySecret, mem.b.key)
	mem.b.stickyID.Store(&id)
	o.sticky[id] = mem
}

// leave takes mem out of the members' lookups.
func (o *owner) leave(mem *member) {
	if id := mem.b.StickyID(); id != "" && o.sticky[id] == mem {
		delete(o.sticky, id)
	}
	if !mem.rampFrom.IsZero() {
		mem.rampFrom = time.Time{}
		o.ramping--
	}
}

func (o *owner) add(s spec) result[added] {
	mem, err := o.addMember(s)
	if err != nil {
		return result[added]{err: err}
	}
	o.reweigh()
	return result[added]{val: added{b: mem.b, st: o.statusOf(mem)}}
}

// addMember makes s a member, down until a health check passes. The caller
// reweighs.
func (o *owner) addMember(s spec) (*member, error) {
	o.prune()
	key := s.u.String()
	if o.index(key) >= 0 {
		return nil, fmt.Errorf("%w: %s", ErrExists, key)
	}
	var mem *member
	// A backend that is draining comes back as the same record, so that its
	// in-flight requests are still counted against it.
	for i, d := range o.draining {
		if d.b.key == key {
			mem = d
			o.draining = slices.Delete(o.draining, i, i+1)
			break
		}
	}
	if mem == nil {
		mem = o.newMember(s)
	} else {
		mem.weight, mem.source, mem.admin = s.weight, s.source, s.admin
		mem.refresh()
		o.join(mem)
	}
	mem.b.removed.Store(false)
	o.enter(mem, StateDown, "added; waiting for a health check to pass", CauseAdded)
	o.members = append(o.members, mem)
	o.log.Info("backend added", "backend", key, "weight", mem.weight)
	return mem, nil
}

func (o *owner) remove(u *url.URL) result[BackendStatus] {
	o.prune()
	key := u.String()
	i := o.index(key)
	if i < 0 {
		return result[BackendStatus]{err: fmt.Errorf("%w: %s", ErrNotFound, key)}
	}
	mem := o.removeAt(i)
	o.leave(mem)
	o.reweigh()
	mem.b.removed.Store(true) // before reading the count: see Backend.Removed
	o.log.Info("backend removed", "backend", key, "in_flight", mem.b.InFlight())
	o.enter(mem, StateDraining, "removed", CauseRemoved)
	if mem.b.InFlight() > 0 {
		o.draining = append(o.draining, mem)
	} else {
		mem.state = StateRemoved
	}
	return result[BackendStatus]{val: o.statusOf(mem)}
}

func (o *owner) update(m updateMsg) result[BackendStatus] {
	key := m.u.String()
	i := o.index(key)
	if i < 0 {
		return result[BackendStatus]{err: fmt.Errorf("%w: %s", ErrNotFound, key)}
	}
	mem := o.members[i]
	if m.weight != nil {
		o.setWeight(mem, *m.weight)
	}
	if m.admin != nil && *m.admin != mem.admin {
		o.log.Info("backend admin state changed", "backend", key, "from", string(mem.admin), "to", string(*m.admin))
		mem.admin = *m.admin
		mem.refresh()
	}
	return result[BackendStatus]{val: o.statusOf(mem)}
}

// apply makes a reload's change: the settings first, so that the backends
// added join under the new ones.
func (o *owner) apply(m applyMsg) Applied {
	if m.cfg != nil {
		o.reconfigure(*m.cfg)
	}
	var out Applied
	for _, s := range m.add {
		if i := o.index(s.u.String()); i >= 0 {
			o.setWeight(o.members[i], s.weight)
			continue
		}
		if mem, err := o.addMember(s); err == nil {
			out.Added = append(out.Added, mem.b)
		}
	}
	o.reweigh()
	for _, u := range m.remove {
		o.remove(u) // not a member: left alone
	}
	for _, s := range m.update {
		if i := o.index(s.u.String()); i >= 0 {
			o.setWeight(o.members[i], s.weight)
		}
	}
	return out
}

// setSource makes the members of source be m.specs.
func (o *owner) setSource(m sourceMsg) Applied {
	want := make(map[string]spec, len(m.specs))
	for _, s := range m.specs {
		want[s.u.String()] = s
	}
	var gone []*url.URL
	for _, mem := range o.members {
		if mem.source != m.source {
			continue
		}
		if s, ok := want[mem.b.key]; ok {
			o.setWeight(mem, s.weight)
			delete(want, mem.b.key)
		} else {
			gone = append(gone, mem.b.url)
		}
	}
	for _, u := range gone {
		o.remove(u)
	}
	var out Applied
	for _, s := range m.specs {
		if _, new := want[s.u.String()]; !new || o.index(s.u.String()) >= 0 {
			continue // kept above, or another's: the first claimant owns it
		}
		if mem, err := o.addMember(s); err == nil {
			out.Added = append(out.Added, mem.b)
		}
	}
	o.reweigh()
	return out
}

// reconfigure puts the settings of cfg in force.
func (o *owner) reconfigure(cfg Config) {
	cfg.Logger, cfg.Seed = o.cfg.Logger, o.cfg.Seed
	old := o.cfg
	o.cfg = cfg
	o.sel = cfg.Strategy.selector()
	if string(cfg.StickySecret) != string(old.StickySecret) {
		o.sticky = make(map[string]*member)
		for _, mem := range o.members {
			mem.b.stickyID.Store(nil)
			o.join(mem)
		}
	}
	if cfg.SlowStart <= 0 {
		for _, mem := range o.members {
			mem.rampFrom = time.Time{}
		}
		o.ramping = 0
	}
	o.rampsEnd = time.Time{} // a new slow_start moves the ends
	if cfg.Passive == nil && old.Passive != nil {
		// Ejected under a policy no longer in force: back at once.
		for _, mem := range o.members {
			if mem.state == StateEjected {
				o.set(mem, StateUp, "passive health turned off", CauseEjectionOver)
			}
		}
	}
	o.publish()
	o.log.Info("pool settings changed", "strategy", string(cfg.Strategy))
}

// setWeight gives mem a new weight.
func (o *owner) setWeight(mem *member, w int) {
	if mem.weight == w {
		return
	}
	o.log.Info("backend weight changed", "backend", mem.b.key, "from", mem.weight, "to", w)
	mem.weight = w
	o.reweigh()
}

// removeAt deletes members[i] and keeps the cursor on the member it pointed
// at, so that removing a backend neither skips nor repeats any other in the
// rotation.
func (o *owner) removeAt(i int) *member {
	mem := o.members[i]
	o.members = slices.Delete(o.members, i, i+1)
	if i < o.cursor {
		o.cursor--
	}
	if o.cursor >= len(o.members) {
		o.cursor = 0
	}
	return mem
}

func (o *owner) statusOf(mem *member) BackendStatus {
	return mem.status(time.Now(), o.cfg.SlowStart)
}

func (o *owner) status() Status {
	o.prune()
	o.pruneQueue()
	now := time.Now()
	st := Status{
		Strategy:    o.cfg.Strategy,
		SlowStart:   o.cfg.SlowStart,
		Sticky:      len(o.cfg.StickySecret) > 0,
		Passive:     o.cfg.Passive,
		WhenAllDown: o.cfg.WhenAllDown,
		Backends:    make([]BackendStatus, 0, len(o.members)+len(o.draining)),
		Members:     len(o.members),
		Draining:    len(o.draining),
		Queue: QueueStatus{Limit: o.cfg.MaxRequestsPerBackend, Length: len(o.queue),
			Max: o.cfg.MaxQueue, Timeout: o.cfg.QueueTimeout},
	}
	for _, mem := range o.members {
		if mem.takesNew {
			st.Up++
		}
		if mem.state == StateEjected {
			st.Ejected++
		}
		st.Backends = append(st.Backends, mem.status(now, o.cfg.SlowStart))
	}
	for _, mem := range o.draining {
		st.Backends = append(st.Backends, mem.status(now, o.cfg.SlowStart))
	}
	st.AllDown = o.cfg.WhenAllDown == TryAll && st.Up == 0 && len(o.members) > 0
	return st
}

// prune forgets draining backends whose last request has finished. It runs
// whenever the list is about to be read or searched, rather than on a timer:
// nobody can observe a drained backend in between.
func (o *owner) prune() {
	o.draining = slices.DeleteFunc(o.draining, func(m *member) bool { return m.b.InFlight() <= 0 })
}

func (o *owner) index(key string) int {
	for i, mem := range o.members {
		if mem.b.key == key {
			return i
		}
	}
	return -1
}

// find returns the member holding b, or nil if b has been removed (a report
// about it arrived late) or belongs to another pool.
func (o *owner) find(b *Backend) *member {
	for _, mem := range o.members {
		if mem.b == b {
			return mem
		}
	}
	return nil
}

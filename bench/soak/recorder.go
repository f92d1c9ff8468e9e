package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// client is one kind of load, or one kind of churn.
type client int

const (
	keepAlive  client = iota // GETs over a few keep-alive connections
	newConn                  // GETs, each on a connection of its own
	upload                   // POSTs of a few hundred KiB, sized or chunked
	upgraded                 // upgraded connections that echo messages
	slowStream               // GETs of a body the backend sends slowly
	slowReader               // GETs of a large body read a few KiB at a time
	hangUp                   // GETs of a large body abandoned half-way
	adminCall                // POST, PATCH and DELETE on the admin API
	reloadCall               // POST /reload of an edited config
	numClients
)

var clientNames = [numClients]string{
	keepAlive:  "keep-alive GET",
	newConn:    "new conn per GET",
	upload:     "upload POST",
	upgraded:   "upgraded (ws-like)",
	slowStream: "slow stream GET",
	slowReader: "slow reader GET",
	hangUp:     "reader hanging up",
	adminCall:  "admin churn",
	reloadCall: "config reload",
}

func (c client) String() string { return clientNames[c] }

// The ways a request can fail, as the load tells them apart.
const (
	failNoResponse = "no response"    // no answer at all: refused, reset, timed out
	failCut        = "body cut"       // the answer began and broke off
	failWrongBody  = "wrong body"     // bytes that are not the pattern, or short without an error
	failHandshake  = "no upgrade"     // the upgrade was not answered with 101
	failEchoCut    = "echo cut"       // an upgraded connection broke off
	failAdmin      = "admin answer"   // the admin API answered something other than what the call should get
	failHarness    = "soak's own end" // the soak could not do its part (start a backend, scrape)
)

// killGrace is how long after a kill a request may still have been sent to
// the killed backend: on a connection to it that the proxy had not yet seen
// close.
const killGrace = time.Second

// The recorder's messages: a closed set, all here.
type event interface{ isEvent() }

// outcome is the end of one request, or of one upgraded connection.
type outcome struct {
	client     client
	fail       string // "" when all went as it should; else a fail* constant or "status N"
	status     int    // the status received, 0 if none
	detail     string // for the log of unexpected errors
	backend    string // the backendHeader of the answer, "" if no headers came
	start, end time.Time
	messages   int  // echoes that came back right, on an upgraded connection
	cancelled  bool // cut by the end of the run: neither ok nor an error
}

// kill says that backend is about to be killed, at.
type kill struct {
	backend string
	at      time.Time
}

// note counts a change of the churn that is not a request.
type note struct{ kills, reloads int }

// ask asks for the counts so far; the reply channel has capacity 1.
type ask struct{ reply chan report }

func (outcome) isEvent() {}
func (kill) isEvent()    {}
func (note) isEvent()    {}
func (ask) isEvent()     {}

// tally counts requests.
type tally struct {
	requests, ok, expected, unexpected, cancelled int
}

func (t *tally) add(o outcome, expected bool) {
	switch {
	case o.cancelled:
		t.cancelled++
		return
	case o.fail == "":
		t.ok++
	case expected:
		t.expected++
	default:
		t.unexpected++
	}
	t.requests++
}

// failKey is a row of the table of errors.
type failKey struct {
	client   client
	fail     string
	expected bool
}

// minute is what happened in one minute of the run.
type minute struct {
	tally
	kills, reloads int
}

// report is a copy of the recorder's counts.
type report struct {
	minutes    []minute
	clients    [numClients]tally
	messages   int // echoes over upgraded connections
	fails      map[failKey]int
	unexpected []string // the first maxLogged, for the log
	kills      int
}

const maxLogged = 40

// recorder owns every count of the run. Requests end on many goroutines;
// each sends its outcome here, so that the counts and the list of kills
// need no lock, and a kill sent before the signal is always seen before
// the errors it causes (one channel, in order).
type recorder struct {
	in      chan event
	done    chan struct{} // closed when run returns
	t0      time.Time
	minutes int // rows of the table; later outcomes count in the last
}

func newRecorder(t0 time.Time, d time.Duration) *recorder {
	return &recorder{
		in:      make(chan event, 4096),
		done:    make(chan struct{}),
		t0:      t0,
		minutes: max(1, int((d+time.Minute-1)/time.Minute)),
	}
}

// run is the recorder's loop; it returns when ctx is done.
func (r *recorder) run(ctx context.Context) {
	defer close(r.done)
	var kills []kill
	rep := report{minutes: make([]minute, r.minutes), fails: map[failKey]int{}}
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.in:
			switch e := e.(type) {
			case kill:
				kills = append(kills, e)
				rep.kills++
			case note:
				m := &rep.minutes[r.minuteOf(time.Now())]
				m.kills += e.kills
				m.reloads += e.reloads
			case outcome:
				exp := e.fail != "" && slices.ContainsFunc(kills, func(k kill) bool { return expectedAtKill(e, k) })
				rep.minutes[r.minuteOf(e.end)].add(e, exp)
				rep.clients[e.client].add(e, exp)
				rep.messages += e.messages
				if e.fail != "" && !e.cancelled {
					rep.fails[failKey{e.client, e.fail, exp}]++
					if !exp && len(rep.unexpected) < maxLogged {
						rep.unexpected = append(rep.unexpected, fmt.Sprintf("%8.1fs %s: %s (backend %q, took %v): %s",
							e.end.Sub(r.t0).Seconds(), e.client, e.fail, e.backend, e.end.Sub(e.start).Round(time.Millisecond), e.detail))
					}
				}
			case ask:
				c := rep
				c.minutes = slices.Clone(rep.minutes)
				c.fails = make(map[failKey]int, len(rep.fails))
				for k, v := range rep.fails {
					c.fails[k] = v
				}
				c.unexpected = slices.Clone(rep.unexpected)
				e.reply <- c
			}
		}
	}
}

func (r *recorder) minuteOf(t time.Time) int {
	return min(max(0, int(t.Sub(r.t0)/time.Minute)), r.minutes-1)
}

// send hands e to the loop; it gives up once the loop has stopped.
func (r *recorder) send(e event) {
	select {
	case r.in <- e:
	case <-r.done:
	}
}

// report returns the counts so far, or false once the loop has stopped.
func (r *recorder) report() (report, bool) {
	reply := make(chan report, 1)
	select {
	case r.in <- ask{reply}:
	case <-r.done:
		return report{}, false
	}
	select {
	case rep := <-reply:
		return rep, true
	case <-r.done:
		return report{}, false
	}
}

// expectedAtKill says whether o's failure is one the kill k may cause, as
// the proxy's README promises ("a backend dies under load"): GETs whose
// answer has not begun are sent again, so the client sees nothing; what can
// fail is
//   - an upload already sent to the killed backend: 502, or the connection
//     broken, promptly after the kill;
//   - an answer, or an upgraded connection, from the killed backend that was
//     under way at the kill: cut short (however late the client notices, a
//     slow reader being seconds behind the proxy).
//
// Anything else is unexpected: a GET that fails, a 503 (one backend at most
// is ever down), a body that is not the pattern, any failure outside a kill.
func expectedAtKill(o outcome, k kill) bool {
	switch {
	case o.client == upload && (o.status == 502 || o.fail == failNoResponse):
		return !o.start.After(k.at.Add(killGrace)) && !o.end.Before(k.at) && o.end.Before(k.at.Add(5*time.Second))
	case o.fail == failCut || o.fail == failEchoCut:
		return o.backend == k.backend && !o.start.After(k.at) && !o.end.Before(k.at)
	}
	return false
}

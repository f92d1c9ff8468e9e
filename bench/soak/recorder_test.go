package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpectedAtKill(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
	k := kill{backend: "b1", at: at}
	sec := func(s float64) time.Time { return at.Add(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		name string
		o    outcome
		want bool
	}{
		{"upload 502 in flight at the kill", outcome{client: upload, fail: "status 502", status: 502, start: sec(-0.5), end: sec(0.01)}, true},
		{"upload broken at the kill", outcome{client: upload, fail: failNoResponse, start: sec(-0.5), end: sec(0.01)}, true},
		{"upload 502 sent just after the kill", outcome{client: upload, fail: "status 502", status: 502, start: sec(0.5), end: sec(0.6)}, true},
		{"upload 502 long after the kill", outcome{client: upload, fail: "status 502", status: 502, start: sec(3), end: sec(3.1)}, false},
		{"upload 502 before the kill", outcome{client: upload, fail: "status 502", status: 502, start: sec(-2), end: sec(-1)}, false},
		{"upload 503", outcome{client: upload, fail: "status 503", status: 503, start: sec(-0.5), end: sec(0.01)}, false},
		{"GET 502 at the kill", outcome{client: keepAlive, fail: "status 502", status: 502, start: sec(-0.5), end: sec(0.01)}, false},
		{"GET with no response at the kill", outcome{client: keepAlive, fail: failNoResponse, start: sec(-0.5), end: sec(0.01)}, false},
		{"slow read cut, noticed late", outcome{client: slowReader, fail: failCut, backend: "b1", start: sec(-4), end: sec(8)}, true},
		{"cut from another backend", outcome{client: slowReader, fail: failCut, backend: "b2", start: sec(-4), end: sec(1)}, false},
		{"cut of an answer begun after the restart", outcome{client: slowReader, fail: failCut, backend: "b1", start: sec(5), end: sec(6)}, false},
		{"echo cut from the killed backend", outcome{client: upgraded, fail: failEchoCut, backend: "b1", start: sec(-3), end: sec(0.01)}, true},
		{"wrong body from the killed backend", outcome{client: keepAlive, fail: failWrongBody, backend: "b1", start: sec(-0.1), end: sec(0.01)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, expectedAtKill(tc.o, k))
		})
	}
}

func TestRecorderCounts(t *testing.T) {
	t0 := time.Now()
	r := newRecorder(t0, 2*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) }) // waited for below
	defer func() { cancel(); wg.Wait() }()

	r.send(outcome{client: keepAlive, start: t0, end: t0.Add(time.Second)})
	r.send(outcome{client: upload, fail: "status 502", status: 502, start: t0, end: t0.Add(time.Second)}) // no kill yet
	k := t0.Add(70 * time.Second)
	r.send(kill{backend: "b1", at: k})
	r.send(outcome{client: upload, fail: "status 502", status: 502, start: k.Add(-time.Second), end: k.Add(time.Millisecond)})
	r.send(outcome{client: slowReader, fail: failCut, backend: "b1", start: k.Add(-time.Second), end: k.Add(9 * time.Minute)}) // counts in the last row
	r.send(outcome{client: hangUp, fail: failCut, cancelled: true, start: k, end: k})
	r.send(outcome{client: upgraded, messages: 12, start: t0, end: t0})

	rep, ok := r.report()
	require.True(t, ok)
	assert.Equal(t, tally{requests: 3, ok: 2, unexpected: 1}, rep.minutes[0].tally)
	assert.Equal(t, tally{requests: 2, expected: 2, cancelled: 1}, rep.minutes[1].tally)
	assert.Equal(t, tally{requests: 2, ok: 0, expected: 1, unexpected: 1}, rep.clients[upload])
	assert.Equal(t, 1, rep.fails[failKey{upload, "status 502", false}])
	assert.Equal(t, 1, rep.fails[failKey{upload, "status 502", true}])
	assert.Equal(t, 1, rep.fails[failKey{slowReader, failCut, true}])
	assert.Equal(t, 12, rep.messages)
	assert.Equal(t, 1, rep.kills)
	assert.Len(t, rep.unexpected, 1)

	cancel()
	wg.Wait()
	_, ok = r.report()
	assert.False(t, ok, "a stopped recorder answers nothing")
	r.send(outcome{}) // and does not block a sender
}

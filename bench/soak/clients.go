package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// mixture is the load: how many workers of each kind, and how often each
// starts a request (a worker whose request takes longer starts the next
// one at once). About 230 requests a second in all, plus a dozen echoes a
// second over upgraded connections and some 6 MB/s of uploads: enough to
// make every path of the proxy busy, little enough that CPU 1 keeps up.
var mixture = []struct {
	client  client
	workers int
	every   time.Duration
}{
	{keepAlive, 8, 50 * time.Millisecond},
	{newConn, 4, 100 * time.Millisecond},
	{upload, 3, 250 * time.Millisecond},
	{upgraded, 4, time.Second},
	{slowStream, 2, time.Second},
	{slowReader, 3, time.Second},
	{hangUp, 2, time.Second},
}

// loader sends the load to the proxy.
type loader struct {
	base string // http://host:port of the proxy
	addr string // host:port of the proxy
	rec  *recorder
	// stop ends the workers: none starts a request once it is done. hard
	// cuts the requests still running; what it cuts is counted apart.
	stop, hard context.Context
	// fast skips the pauses that make slow readers slow and sessions long,
	// for the tests.
	fast bool

	keepAliveC, newConnC, uploadC, slowC, hangUpC *http.Client
}

func newLoader(addr string, rec *recorder, stop, hard context.Context) *loader {
	transport := func(keepAlive bool, idle int) *http.Transport {
		return &http.Transport{
			Proxy:               nil, // the proxy under test, never one from the environment
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableKeepAlives:   !keepAlive,
			MaxIdleConnsPerHost: idle,
			IdleConnTimeout:     time.Minute,
		}
	}
	return &loader{
		base: "http://" + addr, addr: addr, rec: rec, stop: stop, hard: hard,
		keepAliveC: &http.Client{Transport: transport(true, 8), Timeout: 20 * time.Second},
		newConnC:   &http.Client{Transport: transport(false, 0), Timeout: 20 * time.Second},
		uploadC:    &http.Client{Transport: transport(true, 3), Timeout: 30 * time.Second},
		// Slow readers take tens of seconds by design: the run's end (hard)
		// and a minute, below, bound them.
		slowC:   &http.Client{Transport: transport(true, 5)},
		hangUpC: &http.Client{Transport: transport(false, 0)},
	}
}

// run starts every worker and returns once they have all stopped, which is
// soon after stop is done (at worst when hard is).
func (l *loader) run() {
	var wg sync.WaitGroup
	n := 0
	for _, m := range mixture {
		for range m.workers {
			n++
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(n)))
			wg.Go(func() { l.worker(m.client, m.every, rng) }) // waited for by wg.Wait, below
		}
	}
	wg.Wait()
}

// closeIdle closes the load's idle connections, so that the proxy can be
// seen without them.
func (l *loader) closeIdle() {
	for _, c := range []*http.Client{l.keepAliveC, l.newConnC, l.uploadC, l.slowC, l.hangUpC} {
		c.CloseIdleConnections()
	}
}

func (l *loader) worker(c client, every time.Duration, rng *rand.Rand) {
	// Spread the workers' starts over their period.
	if !l.sleep(l.stop, time.Duration(rng.Int64N(int64(every)))) {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var o outcome
		switch c {
		case keepAlive:
			o = l.get(l.keepAliveC, c, rng, smallSize(rng), copyAll)
		case newConn:
			o = l.get(l.newConnC, c, rng, smallSize(rng), copyAll)
		case upload:
			o = l.upload(rng)
		case upgraded:
			o = l.echo(rng)
		case slowStream:
			o = l.slowStream(rng)
		case slowReader:
			o = l.get(l.slowC, c, rng, 4<<20, l.readSlowly(-1))
		case hangUp:
			o = l.get(l.hangUpC, c, rng, 16<<20, l.readSlowly(64<<10+rng.Int64N(960<<10)))
		}
		if o.fail != "" && l.hard.Err() != nil {
			o.cancelled = true
		}
		l.rec.send(o)
		select {
		case <-l.stop.Done():
			return
		case <-t.C:
		}
	}
}

// sleep waits for d, or until ctx is done; it says whether it slept the
// whole time.
func (l *loader) sleep(ctx context.Context, d time.Duration) bool {
	if l.fast {
		return ctx.Err() == nil
	}
	return pause(ctx, d)
}

func smallSize(rng *rand.Rand) int64 {
	return []int64{64, 1 << 10, 16 << 10, 64 << 10}[rng.IntN(4)]
}

// reader reads a response body into a checker; io.EOF at the end is not
// an error, and a body stopped on purpose returns errHungUp.
type reader func(body io.Reader, dst *checker) error

var errHungUp = errors.New("soak: hung up on purpose")

func copyAll(body io.Reader, dst *checker) error {
	_, err := io.Copy(dst, body)
	return err
}

// readSlowly reads 4 KiB every 10 ms, as a client on a slow link; with
// limit >= 0, it stops after limit bytes, leaves the body unread for two
// seconds (the proxy's writes back up) and hangs up.
func (l *loader) readSlowly(limit int64) reader {
	return func(body io.Reader, dst *checker) error {
		buf := make([]byte, 4<<10)
		for limit < 0 || dst.n < limit {
			n, err := body.Read(buf)
			if n > 0 {
				if _, err := dst.Write(buf[:n]); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if !l.sleep(l.hard, 10*time.Millisecond) {
				return l.hard.Err()
			}
		}
		l.sleep(l.hard, 2*time.Second)
		return errHungUp
	}
}

// get GETs size bytes of the pattern for a fresh seed and checks every byte.
func (l *loader) get(hc *http.Client, c client, rng *rand.Rand, size int64, read reader) outcome {
	seed := rng.Uint64()
	path := "/"
	if size > 64<<10 {
		path = "/big"
	}
	return l.fetch(hc, c, fmt.Sprintf("%s?size=%d&seed=%d", path, size, seed), seed, size, read)
}

// slowStream GETs 40 chunks of 16 KiB that the backend sends one every
// 100 ms, flushed: 640 KiB over 4 s, relayed as they come.
func (l *loader) slowStream(rng *rand.Rand) outcome {
	seed := rng.Uint64()
	const chunks, size = 40, 16 << 10
	return l.fetch(l.slowC, slowStream, fmt.Sprintf("/slow?chunks=%d&size=%d&every=100ms&seed=%d", chunks, size, seed), seed, chunks*size, copyAll)
}

func (l *loader) fetch(hc *http.Client, c client, path string, seed uint64, size int64, read reader) outcome {
	o := outcome{client: c, start: time.Now()}
	done := func(fail, detail string) outcome {
		o.fail, o.detail, o.end = fail, detail, time.Now()
		return o
	}
	ctx, cancel := context.WithTimeout(l.hard, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
	if err != nil {
		return done(failHarness, err.Error())
	}
	res, err := hc.Do(req)
	if err != nil {
		return done(failNoResponse, err.Error())
	}
	defer res.Body.Close() // before reading to the end: hangs up
	o.status, o.backend = res.StatusCode, res.Header.Get(backendHeader)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return done("status "+strconv.Itoa(res.StatusCode), string(bytes.TrimSpace(b)))
	}
	dst := newChecker(seed)
	switch err := read(res.Body, dst); {
	case errors.Is(err, errHungUp):
		return done("", "")
	case errors.Is(err, errMismatch):
		return done(failWrongBody, fmt.Sprintf("%s: bytes after %d are not the pattern", path, dst.n))
	case err != nil:
		return done(failCut, fmt.Sprintf("%s: after %d of %d bytes: %v", path, dst.n, size, err))
	case dst.n != size:
		// Short without an error: a cut answer passed off as complete.
		return done(failWrongBody, fmt.Sprintf("%s: %d of %d bytes, and no error", path, dst.n, size))
	}
	return done("", "")
}

// upload POSTs 200-600 KiB of the pattern, with a Content-Length or
// chunked in pieces of 4-64 KiB, and checks the backend's count and hash.
func (l *loader) upload(rng *rand.Rand) outcome {
	o := outcome{client: upload, start: time.Now()}
	done := func(fail, detail string) outcome {
		o.fail, o.detail, o.end = fail, detail, time.Now()
		return o
	}
	seed, size := rng.Uint64(), 200<<10+rng.Int64N(400<<10)
	h := sha256.New()
	io.Copy(h, body(seed, size))
	sum := hex.EncodeToString(h.Sum(nil))
	chunked := rng.IntN(2) == 0
	var src io.Reader = body(seed, size)
	if chunked {
		src = &pieces{r: src, rng: rng}
	}
	req, err := http.NewRequestWithContext(l.hard, http.MethodPost, l.base+"/upload", src)
	if err != nil {
		return done(failHarness, err.Error())
	}
	req.ContentLength = size
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	what := fmt.Sprintf("%d bytes, chunked %v", size, chunked)
	res, err := l.uploadC.Do(req)
	if err != nil {
		return done(failNoResponse, what+": "+err.Error())
	}
	defer res.Body.Close()
	o.status, o.backend = res.StatusCode, res.Header.Get(backendHeader)
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	switch {
	case res.StatusCode != http.StatusOK:
		return done("status "+strconv.Itoa(res.StatusCode), what+": "+string(bytes.TrimSpace(b)))
	case err != nil:
		return done(failCut, what+": answer: "+err.Error())
	}
	var a uploadAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Bytes != size || a.SHA256 != sum {
		return done(failWrongBody, fmt.Sprintf("%s: the backend got %s", what, bytes.TrimSpace(b)))
	}
	return done("", "")
}

// pieces hands out what r holds in reads of 4-64 KiB, which the transport
// sends as chunks of those sizes.
type pieces struct {
	r   io.Reader
	rng *rand.Rand
}

func (p *pieces) Read(b []byte) (int, error) {
	n := min(len(b), 4<<10+p.rng.IntN(60<<10))
	return p.r.Read(b[:n])
}

// echo opens an upgraded connection to /ws and exchanges 10-30 messages of
// 16 B to 4 KiB with the backend's echo, a few tenths of a second apart,
// checking each. The handshake is written and read with net/http's own
// Request.Write and ReadResponse, on a connection of the soak's own, so
// that every read has a deadline.
func (l *loader) echo(rng *rand.Rand) outcome {
	o := outcome{client: upgraded, start: time.Now()}
	done := func(fail, detail string) outcome {
		o.fail, o.detail, o.end = fail, detail, time.Now()
		return o
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(l.hard, "tcp", l.addr)
	if err != nil {
		return done(failNoResponse, err.Error())
	}
	defer conn.Close()
	// The end of the run cuts a session that is waiting.
	stopCut := context.AfterFunc(l.hard, func() { conn.Close() })
	defer stopCut()
	req, err := http.NewRequest(http.MethodGet, l.base+"/ws", nil)
	if err != nil {
		return done(failHarness, err.Error())
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", upgradeProto)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := req.Write(conn); err != nil {
		return done(failNoResponse, err.Error())
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return done(failNoResponse, err.Error())
	}
	o.status, o.backend = res.StatusCode, res.Header.Get(backendHeader)
	if res.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return done(failHandshake, res.Status+": "+string(bytes.TrimSpace(b)))
	}
	n := 10 + rng.IntN(21)
	seed := rng.Uint64()
	for i := range n {
		if l.stop.Err() != nil {
			break // a clean end: the session just stops early
		}
		size := 16 + rng.Int64N(4080)
		msg, _ := io.ReadAll(body(seed+uint64(i), size))
		got := make([]byte, size)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(msg); err != nil {
			return done(failEchoCut, fmt.Sprintf("message %d of %d: %v", i+1, n, err))
		}
		if _, err := io.ReadFull(br, got); err != nil {
			return done(failEchoCut, fmt.Sprintf("echo %d of %d: %v", i+1, n, err))
		}
		if !bytes.Equal(got, msg) {
			return done(failWrongBody, fmt.Sprintf("echo %d of %d differs", i+1, n))
		}
		o.messages++
		l.sleep(l.stop, time.Duration(100+rng.IntN(300))*time.Millisecond)
	}
	return done("", "")
}

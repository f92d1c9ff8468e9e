package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPatternIsTheSameWhateverTheReadSizes(t *testing.T) {
	want, err := io.ReadAll(body(7, 10000))
	require.NoError(t, err)
	p := &pattern{seed: 7}
	var got []byte
	for _, n := range []int{1, 3, 8, 13, 4096, 5879} {
		b := make([]byte, n)
		p.Read(b)
		got = append(got, b...)
	}
	assert.Equal(t, want, got)

	c := newChecker(7)
	_, err = io.Copy(c, bytes.NewReader(want))
	require.NoError(t, err)
	assert.EqualValues(t, 10000, c.n)

	other, _ := io.ReadAll(body(8, 100))
	_, err = newChecker(7).Write(other)
	assert.ErrorIs(t, err, errMismatch, "another request's bytes are caught")
}

func TestBackendAnswers(t *testing.T) {
	srv := httptest.NewServer(backendHandler("b1"))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/big?size=100000&seed=3")
	require.NoError(t, err)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	want, _ := io.ReadAll(body(3, 100000))
	assert.Equal(t, want, got)
	assert.Equal(t, "b1", res.Header.Get(backendHeader))
	assert.EqualValues(t, 100000, res.ContentLength)

	up, _ := io.ReadAll(body(9, 300000))
	res, err = http.Post(srv.URL+"/upload", "application/octet-stream", bytes.NewReader(up))
	require.NoError(t, err)
	var a uploadAnswer
	require.NoError(t, json.NewDecoder(res.Body).Decode(&a))
	res.Body.Close()
	sum := sha256.Sum256(up)
	assert.Equal(t, uploadAnswer{Bytes: 300000, SHA256: hex.EncodeToString(sum[:])}, a)

	for _, path := range []string{"/?size=-1", "/?size=x", "/?seed=-1", "/slow?chunks=0&every=1ms", "/slow?chunks=2"} {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, path)
	}
	res, err = http.Get(srv.URL + "/ws")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusBadRequest, res.StatusCode, "no upgrade without Upgrade")
}

// testLoader points a loader at srv, with no pauses.
func testLoader(t *testing.T, srv *httptest.Server) (*loader, *recorder) {
	t.Helper()
	rec := newRecorder(time.Now(), time.Minute)
	l := newLoader(strings.TrimPrefix(srv.URL, "http://"), rec, context.Background(), context.Background())
	l.fast = true
	t.Cleanup(l.closeIdle)
	return l, rec
}

func TestLoadAgainstTheBackendDirectly(t *testing.T) {
	srv := httptest.NewServer(backendHandler("b1"))
	defer srv.Close()
	l, _ := testLoader(t, srv)
	rng := rand.New(rand.NewPCG(1, 1))

	for _, o := range []outcome{
		l.get(l.keepAliveC, keepAlive, rng, 64<<10, copyAll),
		l.get(l.newConnC, newConn, rng, 1<<10, copyAll),
		l.get(l.slowC, slowReader, rng, 1<<20, l.readSlowly(-1)),
		l.get(l.hangUpC, hangUp, rng, 16<<20, l.readSlowly(100<<10)),
		l.fetch(l.slowC, slowStream, "/slow?chunks=5&size=1000&every=1ms&seed=4", 4, 5000, copyAll),
		l.upload(rng),
		l.upload(rng),
		l.echo(rng),
	} {
		assert.Empty(t, o.fail, "%s: %s", o.client, o.detail)
		assert.Equal(t, "b1", o.backend, o.client.String())
		if o.client == upgraded {
			assert.GreaterOrEqual(t, o.messages, 10)
		}
	}
}

func TestLoadTellsWhatWentWrong(t *testing.T) {
	// A server that cuts its answers short, sends the wrong bytes, or
	// refuses the upgrade.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(backendHeader, "bad")
		switch r.URL.Path {
		case "/": // the right bytes, but half of them
			seed, _ := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
			w.Header().Set("Content-Length", "1024")
			io.Copy(w, body(seed, 512))
		case "/big":
			io.Copy(w, body(99, 1<<20)) // another seed's bytes
		default:
			http.Error(w, "no", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	l, _ := testLoader(t, srv)
	rng := rand.New(rand.NewPCG(1, 1))

	assert.Equal(t, failCut, l.get(l.keepAliveC, keepAlive, rng, 1<<10, copyAll).fail)
	assert.Equal(t, failWrongBody, l.get(l.slowC, slowReader, rng, 1<<20, copyAll).fail)
	o := l.upload(rng)
	assert.Equal(t, "status 502", o.fail)
	assert.Equal(t, 502, o.status)
	assert.Equal(t, failHandshake, l.echo(rng).fail)
}

func TestEditConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	const orig = `{"port": 19100, "backends": ["http://127.0.0.1:19101", "http://127.0.0.1:19103"], "strategy": "least-connections"}`
	require.NoError(t, os.WriteFile(path, []byte(orig), 0o644))
	last := "http://127.0.0.1:19103"

	require.NoError(t, editConfig(path, true, last))
	var cfg map[string]any
	b, _ := os.ReadFile(path)
	require.NoError(t, json.Unmarshal(b, &cfg))
	assert.Equal(t, []any{"http://127.0.0.1:19101", map[string]any{"url": last, "weight": 2.0}}, cfg["backends"])
	assert.Equal(t, "29s", cfg["request_timeout"])
	assert.Equal(t, 19100.0, cfg["port"])
	assert.Equal(t, "least-connections", cfg["strategy"])

	require.NoError(t, editConfig(path, false, last))
	b, _ = os.ReadFile(path)
	require.NoError(t, json.Unmarshal(b, &cfg))
	assert.Equal(t, []any{"http://127.0.0.1:19101", last}, cfg["backends"])
	assert.Equal(t, "30s", cfg["request_timeout"])

	assert.Error(t, editConfig(path, true, "http://127.0.0.1:1"), "no such backend")
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temporary file left")
}

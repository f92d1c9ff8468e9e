package statefile_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/statefile"
)

func state(n int) statefile.State {
	s := statefile.State{ConfigBackends: []statefile.Backend{{URL: "http://a:1", Weight: 1}}}
	for i := range n {
		s.Backends = append(s.Backends, statefile.Backend{URL: fmt.Sprintf("http://b%d:80", i), Weight: 1 + i%5, AdminState: "drain"})
	}
	return s
}

func TestWriteThenLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchyard.state.json")
	_, ok, err := statefile.Load(path)
	require.NoError(t, err)
	assert.False(t, ok, "no file yet: not an error")

	want := state(3)
	require.NoError(t, statefile.Write(statefile.OS, path, want))
	got, ok, err := statefile.Load(path)
	require.NoError(t, err)
	require.True(t, ok)
	want.Version = statefile.Version
	assert.Equal(t, want, got)
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temporary file left")
}

func TestParseRefusesBadFiles(t *testing.T) {
	for in, want := range map[string]string{
		`{"version": 2, "config_backends": [], "backends": []}`:                                               "version: must be 1, got 2",
		`{"version": 1, "backends": [{"url": "ftp://x", "weight": 1}]}`:                                       "backends[0]: invalid backend URL",
		`{"version": 1, "backends": [{"url": "http://x", "weight": 0}]}`:                                      "backends[0]: weight must be from 1 to 1000, got 0",
		`{"version": 1, "backends": [{"url": "http://x", "weight": 1, "admin_state": "z"}]}`:                  "admin_state must be",
		`{"version": 1, "backends": [{"url": "http://x", "weight": 1}, {"url": "HTTP://X:80", "weight": 1}]}`: "listed twice",
		`{"version": 1, "extra": true}`:                                                                       "extra: unknown field",
		`{"version": 1, "backends": [`:                                                                        "the JSON ends too early",
	} {
		_, err := statefile.Parse([]byte(in))
		assert.ErrorIs(t, err, statefile.ErrInvalid, in)
		assert.ErrorContains(t, err, want, in)
	}
}

// failingFS fails the step named fail, and otherwise writes for real.
type failingFS struct {
	fail string
}

type failingFile struct {
	*os.File
	fail string
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.fail == "write" {
		n, _ := f.File.Write(p[:len(p)/2]) // half written, as a full disk would
		return n, errors.New("no space left on device")
	}
	return f.File.Write(p)
}

func (f failingFile) Sync() error {
	if f.fail == "sync" {
		return errors.New("input/output error")
	}
	return f.File.Sync()
}

func (f failingFile) Close() error {
	err := f.File.Close()
	if f.fail == "close" {
		return errors.New("input/output error")
	}
	return err
}

func (fs failingFS) CreateTemp(dir, pattern string) (statefile.File, error) {
	if fs.fail == "create" {
		return nil, errors.New("permission denied")
	}
	f, err := os.CreateTemp(dir, pattern)
	return failingFile{f, fs.fail}, err
}

func (fs failingFS) Rename(oldpath, newpath string) error {
	if fs.fail == "rename" {
		return errors.New("permission denied")
	}
	return os.Rename(oldpath, newpath)
}

func (fs failingFS) Remove(name string) error { return os.Remove(name) }

func (fs failingFS) SyncDir(dir string) error {
	if fs.fail == "syncdir" {
		return errors.New("input/output error")
	}
	return statefile.OS.SyncDir(dir)
}

// A write that fails at any step leaves the old file whole and no
// temporary file behind; only after the rename has the new one arrived.
func TestAFailedWriteLeavesTheOldFile(t *testing.T) {
	for _, step := range []string{"create", "write", "sync", "close", "rename"} {
		t.Run(step, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			old := state(2)
			require.NoError(t, statefile.Write(statefile.OS, path, old))
			err := statefile.Write(failingFS{fail: step}, path, state(50))
			require.Error(t, err)
			got, ok, err := statefile.Load(path)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Len(t, got.Backends, 2, "the old file, whole")
			entries, _ := os.ReadDir(filepath.Dir(path))
			assert.Len(t, entries, 1, "no temporary file left")
		})
	}
	// Failing to sync the directory comes after the rename: the new file is
	// there, and the caller is told it may not survive a crash.
	path := filepath.Join(t.TempDir(), "state.json")
	require.Error(t, statefile.Write(failingFS{fail: "syncdir"}, path, state(3)))
	got, _, err := statefile.Load(path)
	require.NoError(t, err)
	assert.Len(t, got.Backends, 3)
}

// A writer killed at random instants, with SIGKILL, mid-write: whatever
// moment it dies, the file is one of the versions it wrote, whole. The
// writer is this test binary run again with STATEFILE_WRITER set.
func TestKilledWriterNeverLeavesATornFile(t *testing.T) {
	if path := os.Getenv("STATEFILE_WRITER"); path != "" {
		for i := 1; ; i++ { // until killed
			if err := statefile.Write(statefile.OS, path, state(200+i%7)); err != nil {
				os.Exit(3)
			}
		}
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, statefile.Write(statefile.OS, path, state(200)))
	for round := range 15 {
		cmd := exec.Command(exe, "-test.run", "^TestKilledWriterNeverLeavesATornFile$")
		cmd.Env = append(os.Environ(), "STATEFILE_WRITER="+path)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		got, ok, err := statefile.Load(path)
		require.NoError(t, err, "round %d", round)
		require.True(t, ok)
		n := len(got.Backends)
		assert.True(t, n >= 200 && n <= 206, "round "+strconv.Itoa(round)+": a version the writer wrote")
	}
}

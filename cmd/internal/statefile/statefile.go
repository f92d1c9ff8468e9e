// Package statefile keeps the proxy's running backend set across restarts:
// the backends as they run (with their weights and admin states) and the
// config file's backend list as last loaded, so that at start-up an
// operator's runtime changes survive and so do edits made to config.json
// while the proxy was down.
//
// Writes are atomic: a temporary file in the same directory, written and
// fsynced, renamed over the old one, then the directory fsynced. A crash at
// any instant leaves the old file or the new one, never a torn one.
//
// Goroutines: the package starts none.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchyard-proxy/switchyard/cmd/internal/strictjson"
	"github.com/switchyard-proxy/switchyard/pool"
)

// Version is the format this package writes and reads.
const Version = 1

// ErrInvalid says the file is not a state file this program can use.
var ErrInvalid = errors.New("statefile: invalid")

// A Backend is one backend as the file records it.
type Backend struct {
	URL        string `json:"url"`
	Weight     int    `json:"weight"`
	AdminState string `json:"admin_state,omitempty"` // empty: ready
}

// State is the file's content.
type State struct {
	Version int `json:"version"`
	// ConfigBackends is the config file's backend list as last loaded.
	ConfigBackends []Backend `json:"config_backends"`
	// Backends is the running set: every member not from discovery.
	Backends []Backend `json:"backends"`
}

// Parse checks data as a state file: strict JSON, this version, and every
// backend valid (URL, weight, admin state) and listed once per list.
func Parse(data []byte) (State, error) {
	var s State
	if err := strictjson.Decode(data, &s); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var errs []error
	if s.Version != Version {
		errs = append(errs, fmt.Errorf("version: must be %d, got %d", Version, s.Version))
	}
	check := func(field string, list []Backend) {
		seen := map[string]bool{}
		for i, b := range list {
			name := fmt.Sprintf("%s[%d]", field, i)
			u, err := pool.ParseURL(b.URL)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "pool: ")))
				continue
			}
			if seen[u.String()] {
				errs = append(errs, fmt.Errorf("%s: %s is listed twice", name, u))
			}
			seen[u.String()] = true
			if b.Weight < 1 || b.Weight > pool.MaxWeight {
				errs = append(errs, fmt.Errorf("%s: weight must be from 1 to %d, got %d", name, pool.MaxWeight, b.Weight))
			}
			if b.AdminState != "" {
				if _, err := pool.ParseAdminState(b.AdminState); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "pool: ")))
				}
			}
		}
	}
	check("config_backends", s.ConfigBackends)
	check("backends", s.Backends)
	if err := errors.Join(errs...); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return s, nil
}

// Load reads and parses the file at path. A file that does not exist is
// not an error: ok is false.
func Load(path string) (s State, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	s, err = Parse(data)
	return s, err == nil, err
}

// FS is what Write needs of the file system. OS is the real one; tests put
// failures in its place.
type FS interface {
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

// File is a file being written.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Write writes s to path atomically through fsys: on any error the file at
// path is as it was, and the temporary file is removed.
func Write(fsys FS, path string, s State) (err error) {
	s.Version = Version
	data, err := marshal(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := fsys.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			fsys.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("statefile: writing %s: %w", tmp, err)
	}
	// The data must be on disk before the rename makes it the file: a crash
	// between the two must not leave a renamed but empty file.
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("statefile: syncing %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("statefile: closing %s: %w", tmp, err)
	}
	if err = fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	// And the rename itself must be on disk, or a crash could bring the old
	// file back after the change was acknowledged.
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("statefile: syncing %s: %w", dir, err)
	}
	return nil
}

// marshal writes s indented, one backend a line, for the operator who
// reads it.
func marshal(s State) ([]byte, error) {
	if s.ConfigBackends == nil {
		s.ConfigBackends = []Backend{}
	}
	if s.Backends == nil {
		s.Backends = []Backend{}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

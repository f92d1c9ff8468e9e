package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// fleet runs the soak's backends, one process each (this program with
// -backends), so that one can be killed like a crashed server: its sockets
// closed by the kernel, its answers under way cut.
//
// A fleet belongs to one goroutine at a time: the soak's main goroutine to
// start it and stop it, the churn in between.
type fleet struct {
	self   string // this program
	logDir string // where each backend's output goes; "" for stderr
	procs  map[string]*proc
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
}

func newFleet(logDir string) (*fleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	return &fleet{self: self, logDir: logDir, procs: map[string]*proc{}}, nil
}

// start runs a backend on addr and returns once it accepts connections.
// The process inherits this one's CPU affinity.
func (f *fleet) start(addr string) error {
	if _, ok := f.procs[addr]; ok {
		return fmt.Errorf("soak: backend %s already running", addr)
	}
	cmd := exec.Command(f.self, "-backends", addr)
	var out io.Writer = os.Stderr
	if f.logDir != "" {
		name := filepath.Join(f.logDir, "backend-"+strings.ReplaceAll(addr, ":", "-")+".log")
		lf, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("soak: %w", err)
		}
		defer lf.Close() // the child has its own copy
		out = lf
	}
	cmd.Stdout, cmd.Stderr = out, out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("soak: backend %s: %w", addr, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { // waited for by kill and stopAll, through p.exited
		cmd.Wait()
		close(p.exited)
	}()
	f.procs[addr] = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			delete(f.procs, addr)
			return fmt.Errorf("soak: backend %s exited at start: %s", addr, cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.kill(addr)
			return fmt.Errorf("soak: backend %s: not accepting after 10s: %w", addr, err)
		}
	}
}

// kill kills the backend on addr at once (SIGKILL: no shutdown, like a
// crash) and returns once it is gone.
func (f *fleet) kill(addr string) error {
	p, ok := f.procs[addr]
	if !ok {
		return fmt.Errorf("soak: backend %s is not running", addr)
	}
	delete(f.procs, addr)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("soak: backend %s: %w", addr, err)
	}
	<-p.exited
	return nil
}

// stopAll stops every backend: SIGTERM, then SIGKILL for any still there
// after a second.
func (f *fleet) stopAll() {
	for _, p := range f.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(time.Second)
	for addr, p := range f.procs {
		select {
		case <-p.exited:
		case <-time.After(time.Until(deadline)):
			p.cmd.Process.Kill()
			<-p.exited
		}
		delete(f.procs, addr)
	}
}

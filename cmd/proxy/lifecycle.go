package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// The program's lifetime is written down once, as data: the long-lived
// tasks it runs (tasks), and the ordered stages that stop them (stages).
// serve starts the one and, when the time comes, walks the other; the
// README's tables "Goroutines" and "The life of a shutdown" are rendered
// from the same lists and checked against them by a test.

// A task is one long-lived goroutine of the program: a member of the
// errgroup that runs until its own context is cancelled, which only its
// shutdown stage does. Its context is not the group's, so that a signal
// does not stop it before the parts that still call it have stopped.
type task struct {
	name string
	doc  string // what it does, for the docs
	run  func(ctx context.Context) error

	cancel context.CancelFunc
	done   chan struct{}
}

// start runs t as a member of g. Returning before it is stopped is a
// failure that shuts the program down (see owned).
func (t *task) start(g *errgroup.Group, parent context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	t.cancel, t.done = cancel, make(chan struct{})
	g.Go(func() error { // g.Wait waits for it; stop ends it
		defer close(t.done)
		return owned(t.name, ctx, t.run)
	})
}

// stop cancels t and waits for it to return. A nil task (one the config
// leaves out) or one never started has nothing to stop.
func (t *task) stop() {
	if t == nil || t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
}

// A server is an http.Server serving its listeners, each as a member of
// the errgroup, until its shutdown stage calls Shutdown or Close.
type server struct {
	name  string
	doc   string
	stage string // the name of the shutdown stage that stops it
	srv   *http.Server
	lns   []net.Listener
	// feed, when set, is a member of the errgroup beside the Serve calls
	// that hands them their connections: the TLS port's handshakes. It
	// must return once Shutdown or Close has closed the listeners.
	feed func() error
}

func (s server) start(g *errgroup.Group) {
	for _, ln := range s.lns {
		g.Go(func() error { return serveUntilShutdown(s.name, s.srv, ln) }) // g.Wait waits for it; its stage ends it
	}
	if s.feed != nil {
		g.Go(s.feed) // g.Wait waits for it; it ends when its stage closes the listeners
	}
}

// A stage is one step of the shutdown. Stages run one after another, in
// the order of the list, each after the one before it has finished: a part
// is stopped only once nothing that calls it is left running.
type stage struct {
	name  string
	when  string // the config under which the stage has something to do; empty: always
	how   string // how the stage stops its part
	waits string // what it waits for before the next stage begins
	// stops is the task the stage stops, if it stops one: then the stage
	// is the task's stop, and the task's stage for the docs is this one.
	stops *task
	run   func() // what the stage does instead, when it is not a task's
}

// do runs the stage. A stage of a task the config leaves out (stops is
// nil) has nothing to do: task.stop of nil returns at once.
func (s stage) do() {
	if s.run != nil {
		s.run()
		return
	}
	s.stops.stop()
}

// serve runs the program until ctx ends (SIGINT or SIGTERM) or a part
// fails, then shuts it down stage by stage, and returns the first failure.
func (p *program) serve(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range p.tasks {
		t.start(g, ctx)
	}
	for _, s := range p.servers {
		s.start(g)
	}
	g.Go(func() error { // the shutdown member; g.Wait waits for it, the group's context starts it
		<-gctx.Done()
		p.log.Info("shutting down", "cause", context.Cause(gctx).Error())
		for _, s := range p.stages() {
			s.do()
			p.log.Debug("shutdown stage done", "stage", s.name)
		}
		return nil
	})
	p.logStarted()
	err := g.Wait()
	if err == nil {
		p.log.Info("switchyard stopped")
	}
	return err
}

// stages is the shutdown, in order. It is the one place the order is
// written.
func (p *program) stages() []stage {
	// deadline is shutdown_timeout, counted from when the servers stop
	// accepting; the stage that drains them sets it, the next one uses it.
	deadline, cancel := context.Background(), context.CancelFunc(func() {})
	return []stage{{
		name:  "announce",
		how:   "`/healthz` starts answering 503 while everything still serves",
		waits: "`shutdown_delay`, so that a load balancer in front stops sending first",
		run: func() {
			close(p.shuttingDown)
			time.Sleep(p.cfg.ShutdownDelay)
		},
	}, {
		name:  "servers",
		how:   "the proxy, TLS and admin servers stop accepting and close their idle connections (`http.Server.Shutdown`); handshakes under way on the TLS port are cut off",
		waits: "the requests in flight, for up to `shutdown_timeout`",
		run: func() {
			deadline, cancel = context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
			var wg sync.WaitGroup
			for _, s := range p.frontServers() {
				wg.Go(func() { // waited for just below
					if err := s.Shutdown(deadline); err != nil {
						p.log.Warn("shutdown_timeout passed with requests in flight; ending them", "err", err)
					}
				})
			}
			wg.Wait()
		},
	}, {
		name: "handlers",
		how: "upgraded connections (WebSockets), which `Shutdown` neither closes nor waits for, get what is left of " +
			"`shutdown_timeout`; then the servers' base context is cancelled, which ends them and any request still running " +
			"(whose connection is closed first, so that its client sees it cut off rather than an empty answer)",
		waits: "the proxy's last handler",
		run: func() {
			defer cancel()
			p.endHandlers(deadline)
		},
	}, {
		name: "config control",
		how: "its context is cancelled: no admin change or `POST /reload` is under way, since the servers are closed; " +
			"a reload SIGHUP started may be cut short, which loses nothing (the state file is written before anything changes)",
		waits: "the loop",
		stops: p.controlTask,
	}, {
		name:  "certificates",
		when:  "`tls`",
		how:   "its context is cancelled: no handshake is under way, since the TLS server is closed",
		waits: "the loop",
		stops: p.certsTask,
	}, {
		name:  "discovery",
		how:   "its context is cancelled, which ends its lookups",
		waits: "its goroutines",
		stops: p.discoveryTask,
	}, {
		name:  "access log",
		how:   "its writer's context is cancelled",
		waits: "the lines still queued to be written",
		stops: p.accessLogTask,
	}, {
		name:  "health loop",
		how:   "its context is cancelled, which cuts a round of probes short",
		waits: "the loop and its probes",
		stops: p.healthTask,
	}, {
		name:  "demo backends",
		when:  "`-demo`",
		how:   "closed",
		waits: "nothing: the proxy's requests to them are over",
		run: func() {
			for _, s := range p.demoServers {
				s.srv.Close()
			}
		},
	}, {
		name:  "pool owner",
		how:   "its context is cancelled, last, because every part above calls it; from then on a call returns `actor.ErrStopped`",
		waits: "the owner loop, and the writer of its log lines",
		stops: p.poolTask,
	}, {
		name:  "backend connections",
		how:   "idle keep-alive connections to backends are closed",
		waits: "nothing",
		run:   p.proxy.CloseIdleConnections,
	}}
}

// endHandlers gives the handlers still running (upgraded connections and
// requests past shutdown_timeout) until deadline, then ends them by
// cancelling the servers' base context, and waits for the last of them.
func (p *program) endHandlers(deadline context.Context) {
	handlersDone := make(chan struct{})
	go func() { p.proxy.Wait(); close(handlersDone) }() // waited for just below, on handlersDone
	select {
	case <-handlersDone:
	case <-deadline.Done():
		// Requests still running are cut off. Their connections are closed
		// before their contexts end, so that a client sees its request
		// broken off: the proxy takes an ended context for a client that
		// has gone and writes nothing, which net/http, on a connection
		// still open, would send as an empty 200.
		p.closeFrontServers()
	}
	p.cancelBase()
	<-handlersDone
	// Closing again is harmless, and closes what Shutdown left open if the
	// last handlers ended just as shutdown_timeout ran out.
	p.closeFrontServers()
}

func (p *program) frontServers() []*http.Server {
	srvs := []*http.Server{p.proxyServer.srv, p.adminServer.srv}
	if p.tlsServer.srv != nil {
		srvs = append(srvs, p.tlsServer.srv)
	}
	return srvs
}

func (p *program) closeFrontServers() {
	for _, s := range p.frontServers() {
		s.Close()
	}
}

// owned runs a task that runs until its own ctx is cancelled, which only
// its shutdown stage does. Returning before that, even with nil, is a
// failure: the task's work is not done, and the error shuts the group down
// (errgroup cancels only on an error).
func owned(name string, ctx context.Context, fn func(context.Context) error) error {
	err := fn(ctx)
	if ctx.Err() == nil { // it was not asked to stop
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// serveUntilShutdown runs srv.Serve on ln. Serve returns ErrServerClosed only
// once Shutdown or Close has been called, which only a shutdown stage does;
// any other return is a failure.
func serveUntilShutdown(name string, srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

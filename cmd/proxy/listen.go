package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
	"github.com/switchyard-proxy/switchyard/proxy/framing"
	"github.com/switchyard-proxy/switchyard/proxy/tlsmux"
)

// listeners are the program's bound sockets.
type listeners struct {
	proxy, admin net.Listener
	// guard is the proxy's listener: the connection guard over the socket
	// (framing checks, send and body timeouts, max_connections).
	guard *framing.Listener
	// tls is the TLS port's stack, when tls is set.
	tls       *tlsListeners
	demo      []net.Listener // in the order of the addresses asked for
	demoAddrs []string
}

// tlsListeners are the layers over the TLS port's socket: tlsGuard counts
// its connections against max_connections; mux shakes hands on them and
// sorts them by the protocol chosen; h1 is the connection guard over those
// that chose HTTP/1.1, as on the plain port; mux.HTTP2() yields the others
// as net/http needs them for HTTP/2, *tls.Conn unwrapped.
type tlsListeners struct {
	guard *framing.Listener
	mux   *tlsmux.Mux
	h1    *framing.Listener
}

func (l listeners) close() {
	for _, ln := range append([]net.Listener{l.proxy, l.admin}, l.demo...) {
		if ln != nil {
			ln.Close()
		}
	}
	if l.tls != nil {
		l.tls.mux.Close() // and the socket under it
	}
}

// listen binds every socket the program needs, or none. Its error names the
// config field (or flag) whose address could not be bound.
// tlsConfig is what the TLS port shakes hands with; nil when there is none.
func listen(cfg Config, demoAddrs []string, tlsConfig *tls.Config) (l listeners, err error) {
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.proxy, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.Port)); err != nil {
		return l, fmt.Errorf("port: %w", err)
	}
	if l.guard, err = framing.NewListener(l.proxy, guardConfig(cfg)); err != nil {
		return l, err
	}
	l.proxy = l.guard
	if cfg.TLS != nil {
		if l.tls, err = listenTLS(cfg, tlsConfig); err != nil {
			return l, err
		}
	}
	if l.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return l, fmt.Errorf("admin_addr: %w", err)
	}
	if l.demo, err = testbackend.ListenAll(demoAddrs); err != nil {
		return l, fmt.Errorf("-demo: %w", err)
	}
	l.demoAddrs = demoAddrs
	return l, nil
}

// listenTLS binds tls.port and builds the layers over it.
func listenTLS(cfg Config, tlsConfig *tls.Config) (*tlsListeners, error) {
	tcp, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.TLS.Port))
	if err != nil {
		return nil, fmt.Errorf("tls.port: %w", err)
	}
	t := &tlsListeners{}
	if t.guard, err = framing.NewListener(tcp, tlsGuardConfig(cfg)); err != nil {
		tcp.Close()
		return nil, err
	}
	// A handshake is bounded as net/http bounds its own: by the time a
	// client has to send its request's headers.
	if t.mux, err = tlsmux.New(t.guard, tlsConfig, cfg.ReadHeaderTimeout); err != nil {
		tcp.Close()
		return nil, err
	}
	if t.h1, err = framing.NewListener(t.mux.HTTP1(), tlsH1Config(cfg)); err != nil {
		t.mux.Close()
		return nil, err
	}
	return t, nil
}

// guardConfig is the connection guard's part of cfg.
func guardConfig(cfg Config) framing.Config {
	return framing.Config{
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		SendTimeout:    cfg.SendTimeout,
		BodyTimeout:    cfg.ClientBodyTimeout,
		MaxConns:       cfg.MaxConnections,
	}
}

// tlsGuardConfig is the TLS socket's guard: max_connections alone, since
// what passes it is encrypted. The port has its limit of its own, as a
// listener of HAProxy's or nginx's has.
func tlsGuardConfig(cfg Config) framing.Config {
	return framing.Config{Opaque: true, MaxConns: cfg.MaxConnections}
}

// tlsH1Config is the guard over the TLS port's HTTP/1.1 connections, as
// on the plain port but for max_connections, which the socket's guard
// counts, below the handshake.
func tlsH1Config(cfg Config) framing.Config {
	c := guardConfig(cfg)
	c.MaxConns = 0
	return c
}

// setGuards puts cfg's limits and timeouts in force on every connection
// guard.
func (l listeners) setGuards(cfg Config) error {
	if l.guard == nil {
		return nil // not listening yet
	}
	errs := []error{l.guard.SetConfig(guardConfig(cfg))}
	if l.tls != nil {
		errs = append(errs, l.tls.guard.SetConfig(tlsGuardConfig(cfg)), l.tls.h1.SetConfig(tlsH1Config(cfg)))
	}
	return errors.Join(errs...)
}

// accessLogFile is where access_log says the access log goes: nowhere (w is
// nil), stdout, or a file opened for appending.
type accessLogFile struct {
	w io.Writer
	f *os.File
}

func openAccessLog(dest string, stdout io.Writer) (accessLogFile, error) {
	switch dest {
	case "off":
		return accessLogFile{}, nil
	case "stdout":
		return accessLogFile{w: stdout}, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return accessLogFile{}, err
	}
	return accessLogFile{w: f, f: f}, nil
}

func (a accessLogFile) Close() {
	if a.f != nil {
		a.f.Close()
	}
}

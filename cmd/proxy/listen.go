package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

// listeners are the program's bound sockets.
type listeners struct {
	proxy, admin net.Listener
	// guard is the proxy's listener: the connection guard over the socket
	// (framing checks, send and body timeouts, max_connections).
	guard     *framing.Listener
	demo      []net.Listener // in the order of the addresses asked for
	demoAddrs []string
}

func (l listeners) close() {
	for _, ln := range append([]net.Listener{l.proxy, l.admin}, l.demo...) {
		if ln != nil {
			ln.Close()
		}
	}
}

// listen binds every socket the program needs, or none. Its error names the
// config field (or flag) whose address could not be bound.
func listen(cfg Config, demoAddrs []string) (l listeners, err error) {
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
	if l.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return l, fmt.Errorf("admin_addr: %w", err)
	}
	if l.demo, err = testbackend.ListenAll(demoAddrs); err != nil {
		return l, fmt.Errorf("-demo: %w", err)
	}
	l.demoAddrs = demoAddrs
	return l, nil
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

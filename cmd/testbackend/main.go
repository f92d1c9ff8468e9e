// Command testbackend is a backend to put behind the proxy: it answers every
// request with a line naming itself, so that curl shows which backend served.
//
//	PORT=8082 go run ./cmd/testbackend
//	go run ./cmd/testbackend -port 8083
//
// The -port flag wins over $PORT; without either it listens on 8082 (8081 is
// the proxy's admin API). GET /health answers 200; ?sleep=2s delays an
// answer and ?status=503 picks its status, on any path.
//
// Goroutines: run serves under an errgroup with one member that waits for
// SIGINT or SIGTERM and shuts the server down, letting requests in flight
// finish for up to 10s.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-proxy/switchyard/cmd/internal/testbackend"
)

const (
	defaultPort     = 8082
	shutdownTimeout = 10 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("testbackend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "port to listen on (default $PORT, else 8082)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *port == 0 {
		*port = defaultPort
		if s := getenv("PORT"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintf(stderr, "testbackend: PORT must be a port number, got %q\n", s)
				return 2
			}
			*port = n
		}
	}
	if *port < 1 || *port > 65535 {
		fmt.Fprintf(stderr, "testbackend: port must be between 1 and 65535, got %d\n", *port)
		return 2
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	addr := ":" + strconv.Itoa(*port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "testbackend: %v\n", err)
		return 1
	}
	srv := testbackend.Server(addr, logger)
	logger.Info("test backend listening", "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // the group waits for it; Shutdown below ends it
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { // the group waits for it
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Requests sleeping past the deadline are cut off.
			return srv.Close()
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		logger.Error("test backend failed", "err", err)
		return 1
	}
	logger.Info("test backend stopped")
	return 0
}

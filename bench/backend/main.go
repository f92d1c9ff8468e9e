// Command backend is the benchmark's quiet test backend: it answers every
// request with the same 64 bytes, optionally after a fixed delay, logs
// nothing, and serves on several ports from one process.
//
//	go run ./bench/backend -addrs 127.0.0.1:19001,127.0.0.1:19002 -delay 1ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1:19001", "comma-separated listen addresses")
	delay := flag.Duration("delay", 0, "wait this long before answering")
	flag.Parse()

	body := []byte(strings.Repeat("x", 63) + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *delay > 0 {
			time.Sleep(*delay)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "64")
		w.Write(body)
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	for _, addr := range strings.Split(*addrs, ",") {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { // waited for by g.Wait
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error { // waited for by g.Wait
			<-ctx.Done()
			return srv.Close()
		})
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

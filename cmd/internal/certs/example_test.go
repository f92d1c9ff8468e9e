package certs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard-proxy/switchyard/cmd/internal/certs"
)

// A config loader reports each bad entry under its own field name.
func ExampleLoad() {
	_, err := certs.Load([]certs.Entry{
		{CertFile: "site.pem", KeyFile: "site.key"},
		{CertFile: "", KeyFile: "other.key"},
	}, time.Now())
	fmt.Println(errors.Is(err, certs.ErrInvalid))
	for _, e := range certs.EntryErrors(err) {
		fmt.Printf("tls.certificates[%d]: %v\n", e.Index, e.Err)
	}
	// Output:
	// true
	// tls.certificates[0]: cert_file "site.pem": file does not exist; key_file "site.key": file does not exist
	// tls.certificates[1]: cert_file is required; key_file "other.key": file does not exist
}

func ExampleParseMinVersion() {
	for _, s := range []string{"", "1.3", "1.1"} {
		v, err := certs.ParseMinVersion(s)
		fmt.Printf("%q: %#04x %v\n", s, v, err)
	}
	// Output:
	// "": 0x0303 <nil>
	// "1.3": 0x0304 <nil>
	// "1.1": 0x0000 certs: invalid min_version: must be "1.2" or "1.3", got "1.1"
}

// How a program serves TLS from a Store and keeps its certificates fresh:
// Run in the program's errgroup beside the server, both stopping with ctx.
func ExampleStore_Run() {
	serve := func(ctx context.Context, entries []certs.Entry, ln net.Listener, h http.Handler) error {
		set, err := certs.Load(entries, time.Now()) // at start-up: errors name the entries
		if err != nil {
			return err
		}
		store, err := certs.NewStore(set, certs.Config{Logger: slog.Default()})
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, TLSConfig: store.TLSConfig(0)}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return store.Run(ctx) }) // returns nil when ctx is done
		g.Go(func() error {
			// ServeTLS takes the certificates from TLSConfig when its file
			// arguments are empty, and sets HTTP/2 up by ALPN.
			if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return srv.Shutdown(context.Background())
		})
		return g.Wait()
	}
	_ = serve
}

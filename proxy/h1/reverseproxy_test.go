package h1

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

// The Transport as it is used: under httputil.ReverseProxy with Rewrite,
// a client in front, a backend behind. Each runs on both transports.
func TestUnderReverseProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, tr transport)
	}{
		{"GET reuses the backend connection", func(t *testing.T, tr transport) {
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s %s", r.Host, r.Header.Get("X-Forwarded-For"))
			})
			fr := front(t, tr, be.URL)
			c := client(t)
			for range 5 {
				res, err := c.Get(fr.URL + "/a")
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, res.StatusCode)
				assert.Equal(t, fr.Listener.Addr().String()+" 127.0.0.1", readAll(t, res))
			}
			assert.Equal(t, int64(1), be.opened.Load())
		}},

		{"16 MiB upload, checksum back", func(t *testing.T, tr transport) {
			const size = 16 << 20
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			})
			fr := front(t, tr, be.URL)
			res, err := client(t).Post(fr.URL, "application/octet-stream", newPattern(size))
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("%d %x", size, patternSum(size)), readAll(t, res))
		}},

		{"103 reaches the client", func(t *testing.T, tr transport) {
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</a.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				io.WriteString(w, "done")
			})
			fr := front(t, tr, be.URL)
			var links []string
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					links = append(links, fmt.Sprint(code, " ", h.Get("Link")))
					return nil
				},
			})
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fr.URL, nil)
			require.NoError(t, err)
			res, err := client(t).Do(req)
			require.NoError(t, err)
			assert.Equal(t, "done", readAll(t, res))
			assert.Equal(t, []string{"103 </a.css>; rel=preload"}, links)
		}},

		{"100-continue", func(t *testing.T, tr transport) {
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
			fr := front(t, tr, be.URL)
			req, err := http.NewRequest(http.MethodPut, fr.URL, strings.NewReader("payload"))
			require.NoError(t, err)
			req.Header.Set("Expect", "100-continue")
			res, err := client(t).Do(req)
			require.NoError(t, err)
			assert.Equal(t, "payload", readAll(t, res))
		}},

		{"trailers both ways", func(t *testing.T, tr transport) {
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Trailer", "X-Out")
				io.WriteString(w, "body")
				w.Header().Set("X-Out", "out:"+r.Trailer.Get("X-In"))
			})
			fr := front(t, tr, be.URL)
			req, err := http.NewRequest(http.MethodPost, fr.URL, io.MultiReader(strings.NewReader("abc")))
			require.NoError(t, err)
			req.Trailer = http.Header{"X-In": {"7"}}
			res, err := client(t).Do(req)
			require.NoError(t, err)
			assert.Equal(t, "body", readAll(t, res))
			assert.Equal(t, "out:7", res.Trailer.Get("X-Out"))
		}},

		{"upgrade, echoed both ways", func(t *testing.T, tr transport) {
			be := newBackend(t, upgradeEcho)
			fr := front(t, tr, be.URL)
			conn, br := pooltest.DialUpgrade(t, fr.Listener.Addr().String(), "echo")
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, "hello\n", line)
			fmt.Fprint(conn, "ping\n")
			line, err = br.ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, "echo: ping\n", line)
			conn.Close()
			be.waitClosed(t, 1)
		}},

		{"a backend's keep-alive timeout is not a 502", func(t *testing.T, tr transport) {
			be := newBackendWith(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %s", r.Method, b)
			}, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
			fr := front(t, tr, be.URL)
			c := client(t)
			for i := range 4 {
				if i > 0 {
					be.waitClosed(t, int64(i))
					time.Sleep(20 * time.Millisecond) // see the same wait in the behaviours
				}
				res, err := c.Post(fr.URL, "text/plain", strings.NewReader(fmt.Sprint(i)))
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, res.StatusCode)
				assert.Equal(t, fmt.Sprint("POST ", i), readAll(t, res))
			}
		}},

		{"a client going away cancels the backend's request", func(t *testing.T, tr transport) {
			entered, gone := make(chan struct{}), make(chan struct{})
			be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-r.Context().Done()
				close(gone)
			})
			fr := front(t, tr, be.URL)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { // ends with the deferred cancel at the latest
				select {
				case <-entered:
					cancel()
				case <-ctx.Done():
				}
			}()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fr.URL, nil)
			require.NoError(t, err)
			_, err = client(t).Do(req)
			assert.ErrorIs(t, err, context.Canceled)
			waitFor(t, gone, "the backend sees the request cancelled")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					tr := v.new(config{})
					t.Cleanup(tr.CloseIdleConnections)
					tc.run(t, tr)
				})
			}
		})
	}
}

// client is the user in front of the proxy, with its own connections.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

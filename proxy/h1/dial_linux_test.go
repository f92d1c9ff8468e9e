package h1

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fullListener is a listening socket on 127.0.0.1 with a backlog of zero
// that never accepts, holding one connection in its queue: Linux drops
// further SYNs, so a dial to it hangs until its timeout.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	c, err := net.DialTimeout("tcp", addr, time.Second) // fills the queue
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return addr
}

func TestDialTimeout(t *testing.T) {
	addr := fullListener(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			tr := v.new(config{dialTimeout: 100 * time.Millisecond})
			defer tr.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodGet, "http://"+addr, nil)
			require.NoError(t, err)
			_, err = tr.RoundTrip(req)
			assertDialError(t, err)
			var ne net.Error
			if assert.ErrorAs(t, err, &ne) {
				assert.True(t, ne.Timeout())
			}
		})
	}
}

func TestCancelledWhileDialing(t *testing.T) {
	addr := fullListener(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			tr := v.new(config{dialTimeout: time.Minute})
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			timer := time.AfterFunc(50*time.Millisecond, func() { cancel(errTest) })
			defer timer.Stop()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
			require.NoError(t, err)
			_, err = tr.RoundTrip(req)
			assert.ErrorIs(t, err, errTest)
		})
	}
}

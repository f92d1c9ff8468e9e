package grpctest_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-proxy/switchyard/pool/pooltest/certstest"
	"github.com/switchyard-proxy/switchyard/pool/pooltest/grpctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each method answers as documented, with its headers and trailers, over
// cleartext and over TLS.
func TestEachMethod(t *testing.T) {
	certFile, keyFile, roots := certstest.Write(t, t.TempDir(), "127.0.0.1")
	for name, srv := range map[string]*grpctest.Server{
		"h2c": grpctest.Start(t),
		"tls": grpctest.StartTLS(t, certFile, keyFile),
	} {
		t.Run(name, func(t *testing.T) {
			c := grpctest.NewClient(t, srv.URL, roots)
			ctx := metadata.AppendToOutgoingContext(t.Context(), "echo-who", "tester", "other", "x")

			res := c.Unary(ctx, []byte("hi"))
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("hi")}, res.Messages)
			assert.Equal(t, []string{srv.Addr}, res.Header.Get(grpctest.HeaderServer))
			assert.Equal(t, []string{"Unary"}, res.Header.Get(grpctest.HeaderMethod))
			assert.Equal(t, []string{"tester"}, res.Header.Get("echo-who"))
			assert.Empty(t, res.Header.Get("other"), "only echo- keys come back")
			assert.Equal(t, []string{"Unary"}, res.Trailer.Get(grpctest.TrailerMethod))
			assert.Equal(t, []string{grpctest.TrailerBinValue}, res.Trailer.Get(grpctest.TrailerBin))

			res = c.ServerStream(ctx, []byte("s"))
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("s-0"), []byte("s-1"), []byte("s-2")}, res.Messages)
			assert.Equal(t, []string{"ServerStream"}, res.Header.Get(grpctest.HeaderMethod))

			res = c.ClientStream(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
			require.NoError(t, res.Err)
			assert.Equal(t, [][]byte{[]byte("a,b,c")}, res.Messages)
			assert.Equal(t, []string{"3"}, res.Trailer.Get(grpctest.TrailerReceived))

			st, err := c.Bidi(ctx)
			require.NoError(t, err)
			for _, m := range []string{"x", "y"} {
				require.NoError(t, st.Send([]byte(m)))
				got, err := st.Recv()
				require.NoError(t, err)
				assert.Equal(t, m, string(got))
			}
			res = st.Finish()
			require.NoError(t, res.Err)
			assert.Equal(t, []string{"2"}, res.Trailer.Get(grpctest.TrailerReceived))

			calls := srv.WaitCalls(t, 4)
			assert.Equal(t, grpctest.MethodUnary, calls[0].Method)
			assert.Equal(t, []string{"tester"}, calls[0].Metadata.Get("echo-who"))
			assert.True(t, calls[0].Deadline.IsZero(), "no deadline set")
		})
	}
}

// An error before any message is a trailers-only response: no headers, the
// trailers and the status. With a count, ServerStream sends first.
func TestErrors(t *testing.T) {
	srv := grpctest.Start(t)
	c := grpctest.NewClient(t, srv.URL, nil)
	ctx := metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyCode, "5", grpctest.KeyMessage, "nothing here: 100%")
	for name, call := range map[string]func() grpctest.Result{
		"unary":         func() grpctest.Result { return c.Unary(ctx, []byte("q")) },
		"server stream": func() grpctest.Result { return c.ServerStream(ctx, []byte("q")) },
		"client stream": func() grpctest.Result { return c.ClientStream(ctx, [][]byte{[]byte("q")}) },
		"bidi": func() grpctest.Result {
			st, err := c.Bidi(ctx)
			require.NoError(t, err)
			return st.Finish()
		},
	} {
		res := call()
		assert.Equal(t, codes.NotFound, res.Code(), name)
		assert.Equal(t, "nothing here: 100%", status.Convert(res.Err).Message(), name)
		assert.Empty(t, res.Header, name+": trailers only")
		assert.NotEmpty(t, res.Trailer.Get(grpctest.TrailerMethod), name)
	}

	ctx = metadata.AppendToOutgoingContext(ctx, grpctest.KeyCount, "2")
	res := c.ServerStream(ctx, []byte("m"))
	assert.Equal(t, codes.NotFound, res.Code())
	assert.Len(t, res.Messages, 2)
	assert.NotEmpty(t, res.Header.Get(grpctest.HeaderMethod))
}

// The deadline reaches the server; a held call ends with it, counted as
// cancelled; a client that cancels is seen too.
func TestDeadlineAndCancel(t *testing.T) {
	srv := grpctest.Start(t)
	c := grpctest.NewClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	res := c.Unary(metadata.AppendToOutgoingContext(ctx, grpctest.KeyHold, "1"), nil)
	assert.Equal(t, codes.DeadlineExceeded, res.Code())
	call := srv.WaitCalls(t, 1)[0]
	assert.WithinDuration(t, want, call.Deadline, time.Second)
	<-call.Cancelled()
	// The client's timer and the server's run out together: whichever
	// came first, the call's context ended.
	assert.Error(t, call.Err())

	ctx, cancel = context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyHeaderFirst, "1", grpctest.KeyHold, "1"))
	st, err := c.Bidi(ctx)
	require.NoError(t, err)
	md, err := st.Header()
	require.NoError(t, err)
	assert.Equal(t, []string{srv.Addr}, md.Get(grpctest.HeaderServer), "headers first, then the hold")
	cancel()
	call = srv.WaitCalls(t, 2)[1]
	<-call.Cancelled()
	assert.ErrorIs(t, call.Err(), context.Canceled)
	assert.Equal(t, 2, srv.CancelledCalls())
	_, err = st.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err))
}

// A delay holds the first message, and so the headers.
func TestDelay(t *testing.T) {
	srv := grpctest.Start(t)
	c := grpctest.NewClient(t, srv.URL, nil, grpc.WithDefaultCallOptions(grpc.ForceCodec(grpctest.Codec{Subtype: "raw"})))
	ctx := metadata.AppendToOutgoingContext(t.Context(), grpctest.KeyDelay, "100ms")
	st, err := c.Bidi(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send([]byte("1")))
	start := time.Now()
	md, err := st.Header()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "headers came with the delayed message")
	assert.Equal(t, []string{"Bidi"}, md.Get(grpctest.HeaderMethod))
	got, err := st.Recv()
	require.NoError(t, err)
	assert.Equal(t, "1", string(got))
	require.NoError(t, st.Send([]byte("2")))
	got, err = st.Recv()
	require.NoError(t, err)
	assert.Equal(t, "2", string(got))
	res := st.Finish()
	assert.NoError(t, res.Err)
	_, err = st.Recv()
	assert.ErrorIs(t, err, io.EOF)
}

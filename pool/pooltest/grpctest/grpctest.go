// Package grpctest is a gRPC service for tests, served and called with
// grpc-go but without generated code: messages are raw bytes (Codec), and
// the service is a hand-written grpc.ServiceDesc (ServiceDesc) with one
// method of each kind, so that any test can put a real gRPC client and a
// real gRPC server on either side of the proxy.
//
// Start serves it on 127.0.0.1 in HTTP/2 cleartext (what an h2c:// backend
// speaks) and StartTLS over TLS; both stop at the end of the test.
// NewClient dials one (or a proxy in front of one) and calls each method,
// returning a Result with the messages, headers, trailers and status.
//
// What a call does is chosen by the client, in request metadata, so that a
// test steers the server through the proxy with nothing else shared:
//
//	ctx = metadata.AppendToOutgoingContext(ctx,
//		grpctest.KeyCode, "5", grpctest.KeyMessage, "no such thing") // end with NOT_FOUND
//	res := client.Unary(ctx, []byte("hello"))
//	// status.Code(res.Err) == codes.NotFound, res.Trailer.Get(grpctest.TrailerMethod) == ["Unary"]
//
// What the server saw is kept for the test: Server.WaitCalls returns each
// call's metadata, the deadline grpc-timeout gave it, and channels closed
// when its handler ended and when its context was cancelled while the
// handler ran.
//
// The methods (full names in the Method constants):
//   - Unary answers its request message unchanged.
//   - ServerStream answers its request message KeyCount times (default 3),
//     the i-th as the message followed by "-i".
//   - ClientStream reads every message and answers them joined with ",".
//   - Bidi answers each message unchanged, as it arrives.
//
// Every answer that is not an error carries the headers HeaderServer (the
// server's address) and HeaderMethod (the method's short name), and every
// request key starting with EchoPrefix, with its values. Every call, error
// or not, ends with the trailers TrailerMethod, TrailerBin (binary) and
// TrailerReceived (how many messages the server read).
//
// Goroutines: Start and StartTLS run the gRPC server's Serve on a goroutine
// of their own; the test's Cleanup stops the server, which waits for every
// handler (grpc.WaitForHandlers), then waits for that goroutine. The
// client's connection is closed by its Cleanup too. grpc-go's own goroutines
// end with the server and the connection.
package grpctest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Full names of the service's methods, as they appear in the :path of the
// HTTP/2 request.
const (
	Service            = "grpctest.Test"
	MethodUnary        = "/grpctest.Test/Unary"
	MethodServerStream = "/grpctest.Test/ServerStream"
	MethodClientStream = "/grpctest.Test/ClientStream"
	MethodBidi         = "/grpctest.Test/Bidi"
)

// Request metadata keys that steer a call.
const (
	// KeyCode ends the call with this status code (a number, as
	// codes.Code). The error comes before any message, and so before any
	// header unless KeyHeaderFirst: a trailers-only response. For
	// ServerStream with KeyCount, it comes after those messages.
	KeyCode = "grpctest-code"
	// KeyMessage is the status message that goes with KeyCode.
	KeyMessage = "grpctest-message"
	// KeyMessageBin is KeyMessage as binary metadata, for a message that
	// is not printable ASCII (gRPC metadata values must be, except those
	// of keys ending in -bin). It wins over KeyMessage.
	KeyMessageBin = "grpctest-message-bin"
	// KeyDelay (a time.ParseDuration string) makes the server wait this
	// long before it sends its first message, and so its headers, unless
	// KeyHeaderFirst. A context that ends first ends the call with the
	// context's status.
	KeyDelay = "grpctest-delay"
	// KeyHold (any value) makes the handler, instead of answering, wait
	// for its context to end (the client cancels, the deadline passes, the
	// connection is lost) and return the context's status. It holds after
	// KeyHeaderFirst's headers and KeyDelay's wait.
	KeyHold = "grpctest-hold"
	// KeyHeaderFirst (any value) makes the server send its headers as soon
	// as the call starts, before any delay, hold or error.
	KeyHeaderFirst = "grpctest-header-first"
	// KeyCount is how many messages ServerStream sends. Default 3.
	KeyCount = "grpctest-count"
	// EchoPrefix: request keys starting with it are sent back in the
	// response headers, values and all.
	EchoPrefix = "echo-"
)

// Response headers and trailers the server always sends.
const (
	// HeaderServer is the server's address, host:port: which backend
	// answered.
	HeaderServer = "grpctest-server"
	// HeaderMethod is the method's short name ("Unary", ...).
	HeaderMethod = "grpctest-method"
	// TrailerMethod is the method's short name again, in the trailers.
	TrailerMethod = "grpctest-trailer"
	// TrailerBin is a binary trailer holding TrailerBinValue; gRPC sends
	// it base64-encoded and the client decodes it.
	TrailerBin = "grpctest-trailer-bin"
	// TrailerReceived is how many messages the server read, in decimal.
	TrailerReceived = "grpctest-received"
)

// TrailerBinValue is the value of TrailerBin: bytes that are not text.
var TrailerBinValue = string([]byte{0x00, 0xff, 0x10, 'g', 'r', 'p', 'c', 0x80})

// Codec is the raw-bytes codec: a message is a []byte (or *[]byte), sent as
// it is. Its content subtype is Subtype: empty, the default, makes grpc-go
// send content-type application/grpc, as a protobuf client does; "raw"
// makes it application/grpc+raw. The server forces it, whatever the
// request's subtype.
type Codec struct{ Subtype string }

// Marshal returns the message's bytes. Protobuf messages (those of the
// health service the server also runs) are marshalled as protobuf.
func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("grpctest: cannot marshal a %T, only []byte", v)
}

// Unmarshal copies data into v, a *[]byte: grpc-go may reuse data's buffer.
func (Codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("grpctest: cannot unmarshal into a %T, only *[]byte", v)
	}
	*p = slices.Clone(data)
	return nil
}

// Name is the content subtype.
func (c Codec) Name() string { return c.Subtype }

// handler is the type the service's methods are registered for; *Server
// implements it.
type handler interface {
	observe(ctx context.Context, method string) (*Call, plan)
}

// ServiceDesc is the service, written by hand where protoc would generate
// it. Register it on a grpc.Server with a *Server as the implementation
// (Start does), and the server's codec forced to Codec.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*handler)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: unaryHandler}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", Handler: serverStreamHandler, ServerStreams: true},
		{StreamName: "ClientStream", Handler: clientStreamHandler, ClientStreams: true},
		{StreamName: "Bidi", Handler: bidiHandler, ServerStreams: true, ClientStreams: true},
	},
}

// Server is a running test service.
type Server struct {
	// URL is where it listens: h2c://127.0.0.1:port (Start) or
	// https://127.0.0.1:port (StartTLS), as a pool backend URL.
	URL string
	// Addr is host:port.
	Addr string
	// Health is grpc-go's own health service, which the server runs beside
	// the test service: SERVING for the server as a whole ("") until a
	// test says otherwise with SetServingStatus.
	Health *health.Server

	mu        sync.Mutex
	calls     []*Call
	changed   chan struct{} // closed and replaced when a call is added
	cancelled int
}

// Call is what the server saw of one call.
type Call struct {
	// Method is the full method name.
	Method string
	// Metadata is the request metadata as it reached the server (gRPC's
	// own headers, such as grpc-timeout, are not in it).
	Metadata metadata.MD
	// Deadline is the deadline the call's context had, that is the client's
	// grpc-timeout counted from the moment the server read it; zero when
	// none reached the server.
	Deadline time.Time

	done      chan struct{} // closed when the handler has returned
	cancelled chan struct{} // closed at the handler's return if the context had ended
	err       error         // the context's error, set before cancelled is closed
}

// Done is closed when the call's handler has returned.
func (c *Call) Done() <-chan struct{} { return c.done }

// Cancelled is closed when the handler returns if the call's context had
// ended while it ran: the client cancelled, the deadline passed, or the
// stream or connection was reset. A handler waiting on its context (KeyHold,
// KeyDelay, a Bidi waiting for the next message) returns as soon as it
// ends. A call that ended by answering never closes it.
func (c *Call) Cancelled() <-chan struct{} { return c.cancelled }

// Err is the context's error once Cancelled is closed: context.Canceled
// or context.DeadlineExceeded.
func (c *Call) Err() error {
	select {
	case <-c.cancelled:
		return c.err
	default:
		return nil
	}
}

// Calls returns the calls that have started so far, in order.
func (s *Server) Calls() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// WaitCalls waits until at least n calls have started and returns them all.
// It fails the test if that takes more than 10 seconds. Call it from the
// test's goroutine.
func (s *Server) WaitCalls(t testing.TB, n int) []*Call {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		calls, changed := slices.Clone(s.calls), s.changed
		s.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("grpctest: %d calls reached %s in 10s, want %d", len(calls), s.Addr, n)
		}
	}
}

// CancelledCalls counts the calls whose context ended while their handler
// ran.
func (s *Server) CancelledCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}

// Start serves the service in HTTP/2 cleartext on a port of 127.0.0.1 until
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, "h2c", nil)
}

// StartTLS serves the service over TLS (ALPN h2) with the certificate in
// certFile and keyFile, until the test ends.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	creds, err := credentials.NewServerTLSFromFile(certFile, keyFile)
	if err != nil {
		t.Fatalf("grpctest: %v", err)
	}
	return start(t, "https", creds)
}

func start(t testing.TB, scheme string, creds credentials.TransportCredentials) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("grpctest: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), changed: make(chan struct{})}
	s.URL = scheme + "://" + s.Addr
	opts := []grpc.ServerOption{grpc.ForceServerCodec(Codec{}), grpc.WaitForHandlers(true)}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	gs.RegisterService(&ServiceDesc, s)
	s.Health = health.NewServer()
	healthpb.RegisterHealthServer(gs, s.Health)
	served := make(chan struct{})
	go func() { // waited for in the Cleanup
		defer close(served)
		gs.Serve(ln)
	}()
	t.Cleanup(func() {
		// Stop, not GracefulStop: a call left holding would keep a
		// graceful stop waiting. Stop cancels every call's context, and
		// WaitForHandlers makes it wait for their handlers.
		gs.Stop()
		<-served
	})
	return s
}

// plan is what the request's metadata asked the call to do.
type plan struct {
	md          metadata.MD
	code        codes.Code
	fail        bool
	message     string
	delay       time.Duration
	hold        bool
	headerFirst bool
	count       int
}

// observe records a call as it starts and reads its plan. The caller calls
// finish when the handler returns.
func (s *Server) observe(ctx context.Context, method string) (*Call, plan) {
	md, _ := metadata.FromIncomingContext(ctx)
	c := &Call{Method: method, Metadata: md.Copy(), done: make(chan struct{}), cancelled: make(chan struct{})}
	c.Deadline, _ = ctx.Deadline()
	p := plan{md: md, count: 3}
	if v := first(md, KeyCode); v != "" {
		n, _ := strconv.Atoi(v)
		p.code, p.fail = codes.Code(n), true
	}
	p.message = first(md, KeyMessage)
	if v := first(md, KeyMessageBin); v != "" {
		p.message = v
	}
	p.delay, _ = time.ParseDuration(first(md, KeyDelay))
	p.hold = first(md, KeyHold) != ""
	p.headerFirst = first(md, KeyHeaderFirst) != ""
	if v := first(md, KeyCount); v != "" {
		p.count, _ = strconv.Atoi(v)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return c, p
}

// finish marks c ended, and cancelled if its context ended first.
func (s *Server) finish(ctx context.Context, c *Call) {
	if err := ctx.Err(); err != nil {
		c.err = err
		close(c.cancelled)
		s.mu.Lock()
		s.cancelled++
		s.mu.Unlock()
	}
	close(c.done)
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// stream is what a handler needs of its call, whichever the kind: the
// grpc.ServerStream of a streaming call, or an adapter over the unary
// call's context.
type stream interface {
	SetHeader(metadata.MD) error
	SendHeader(metadata.MD) error
	SetTrailer(metadata.MD)
	Context() context.Context
}

type unaryStream struct{ ctx context.Context }

func (u unaryStream) SetHeader(md metadata.MD) error  { return grpc.SetHeader(u.ctx, md) }
func (u unaryStream) SendHeader(md metadata.MD) error { return grpc.SendHeader(u.ctx, md) }
func (u unaryStream) SetTrailer(md metadata.MD)       { grpc.SetTrailer(u.ctx, md) }
func (u unaryStream) Context() context.Context        { return u.ctx }

// header is the metadata every answer carries.
func (s *Server) header(method string, p plan) metadata.MD {
	md := metadata.Pairs(HeaderServer, s.Addr, HeaderMethod, method)
	for k, v := range p.md {
		if strings.HasPrefix(k, EchoPrefix) {
			md[k] = slices.Clone(v)
		}
	}
	return md
}

func trailer(method string, received int) metadata.MD {
	return metadata.Pairs(TrailerMethod, method, TrailerBin, TrailerBinValue, TrailerReceived, strconv.Itoa(received))
}

// prelude does what comes before a call's first message: the early
// headers, the delay, the hold and the planned error. It returns a non-nil
// status error when the call is to end with it. The header metadata is set
// only once the call is known to answer, so that an error before it is a
// trailers-only response.
func (s *Server) prelude(st stream, short string, p plan) error {
	ctx := st.Context()
	if p.headerFirst {
		if err := st.SendHeader(s.header(short, p)); err != nil {
			return err
		}
	}
	if p.delay > 0 {
		tm := time.NewTimer(p.delay)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if p.hold {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	if p.fail && !(short == "ServerStream" && first(p.md, KeyCount) != "") {
		return status.Error(p.code, p.message)
	}
	if !p.headerFirst {
		return st.SetHeader(s.header(short, p))
	}
	return nil
}

func unaryHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	handle := func(ctx context.Context, req any) (any, error) {
		c, p := s.observe(ctx, MethodUnary)
		defer s.finish(ctx, c)
		st := unaryStream{ctx}
		defer func() { st.SetTrailer(trailer("Unary", 1)) }()
		if err := s.prelude(st, "Unary", p); err != nil {
			return nil, err
		}
		return req, nil
	}
	if interceptor == nil {
		return handle(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: MethodUnary}, handle)
}

func serverStreamHandler(srv any, ss grpc.ServerStream) error {
	s := srv.(*Server)
	c, p := s.observe(ss.Context(), MethodServerStream)
	defer s.finish(ss.Context(), c)
	received := 0
	defer func() { ss.SetTrailer(trailer("ServerStream", received)) }()
	var in []byte
	if err := ss.RecvMsg(&in); err != nil {
		return err
	}
	received++
	if err := s.prelude(ss, "ServerStream", p); err != nil {
		return err
	}
	for i := range p.count {
		if err := ss.SendMsg(fmt.Appendf(slices.Clip(in), "-%d", i)); err != nil {
			return err
		}
	}
	if p.fail {
		return status.Error(p.code, p.message)
	}
	return nil
}

func clientStreamHandler(srv any, ss grpc.ServerStream) error {
	s := srv.(*Server)
	c, p := s.observe(ss.Context(), MethodClientStream)
	defer s.finish(ss.Context(), c)
	var got [][]byte
	defer func() { ss.SetTrailer(trailer("ClientStream", len(got))) }()
	if p.hold || p.headerFirst {
		// Hold before reading, so that a test can cancel a call that has
		// sent nothing yet.
		if err := s.prelude(ss, "ClientStream", p); err != nil {
			return err
		}
	}
	for {
		var in []byte
		err := ss.RecvMsg(&in)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		got = append(got, in)
	}
	if !p.hold && !p.headerFirst {
		if err := s.prelude(ss, "ClientStream", p); err != nil {
			return err
		}
	}
	return ss.SendMsg(bytes.Join(got, []byte(",")))
}

func bidiHandler(srv any, ss grpc.ServerStream) error {
	s := srv.(*Server)
	c, p := s.observe(ss.Context(), MethodBidi)
	defer s.finish(ss.Context(), c)
	received := 0
	defer func() { ss.SetTrailer(trailer("Bidi", received)) }()
	if p.hold || p.fail {
		return s.prelude(ss, "Bidi", p)
	}
	for {
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		received++
		if received == 1 {
			// The first answer waits for the delay: headers sent late.
			if err := s.prelude(ss, "Bidi", p); err != nil {
				return err
			}
		}
		if err := ss.SendMsg(in); err != nil {
			return err
		}
	}
}

// Client calls the service, directly or through a proxy.
type Client struct {
	// Conn is the connection, for calls the helpers do not cover.
	Conn *grpc.ClientConn
}

// NewClient makes a client of the service at target, closed when the test
// ends. target is a URL: https://host:port is dialled over TLS, verified
// against roots (nil means the system's roots); h2c:// and http:// in
// HTTP/2 cleartext; a bare host:port also in cleartext. The client's codec
// is Codec{} (content-type application/grpc); opts come after the
// client's own, and may override it, e.g.
// grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{Subtype: "raw"})).
//
// grpc.NewClient connects lazily: the first call makes the connection.
func NewClient(t testing.TB, target string, roots *x509.CertPool, opts ...grpc.DialOption) *Client {
	t.Helper()
	creds := insecure.NewCredentials()
	addr := target
	if scheme, rest, ok := strings.Cut(target, "://"); ok {
		addr = rest
		switch scheme {
		case "https":
			creds = credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		case "http", "h2c":
		default:
			t.Fatalf("grpctest: unsupported scheme in %q", target)
		}
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{})),
	}, opts...)
	// passthrough: the address is dialled as it is, with no resolver.
	conn, err := grpc.NewClient("passthrough:///"+addr, all...)
	if err != nil {
		t.Fatalf("grpctest: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{Conn: conn}
}

// Result is what a call brought back.
type Result struct {
	// Messages are the server's messages, in order.
	Messages [][]byte
	// Header is the response header metadata; empty for a trailers-only
	// response.
	Header metadata.MD
	// Trailer is the trailer metadata (the trailers-only response's, for
	// an error before any message).
	Trailer metadata.MD
	// Err is nil when the call ended OK, otherwise an error that
	// status.Code and status.Convert take apart.
	Err error
}

// Code is the call's status code.
func (r Result) Code() codes.Code { return status.Code(r.Err) }

// Unary calls Unary with msg. Steer it with metadata in ctx.
func (c *Client) Unary(ctx context.Context, msg []byte, opts ...grpc.CallOption) Result {
	var r Result
	var out []byte
	opts = append(opts, grpc.Header(&r.Header), grpc.Trailer(&r.Trailer))
	r.Err = c.Conn.Invoke(ctx, MethodUnary, msg, &out, opts...)
	if r.Err == nil {
		r.Messages = [][]byte{out}
	}
	return r
}

// ServerStream calls ServerStream with msg and reads every answer.
func (c *Client) ServerStream(ctx context.Context, msg []byte, opts ...grpc.CallOption) Result {
	st, err := c.stream(ctx, MethodServerStream, opts...)
	if err != nil {
		return Result{Err: err}
	}
	st.Send(msg) // an error here is the call's status, which Finish returns
	return st.Finish()
}

// ClientStream calls ClientStream, sends msgs and reads the answer.
func (c *Client) ClientStream(ctx context.Context, msgs [][]byte, opts ...grpc.CallOption) Result {
	st, err := c.stream(ctx, MethodClientStream, opts...)
	if err != nil {
		return Result{Err: err}
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			break // the status comes with Finish
		}
	}
	return st.Finish()
}

// Bidi opens a Bidi call: Send and Recv at will, then Finish. Cancel ctx
// to end it early.
func (c *Client) Bidi(ctx context.Context, opts ...grpc.CallOption) (*Stream, error) {
	return c.stream(ctx, MethodBidi, opts...)
}

func (c *Client) stream(ctx context.Context, method string, opts ...grpc.CallOption) (*Stream, error) {
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	cs, err := c.Conn.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &Stream{cs: cs}, nil
}

// Stream is an open streaming call.
type Stream struct{ cs grpc.ClientStream }

// Send sends one message. An error means the stream has ended: Finish
// says how.
func (s *Stream) Send(msg []byte) error { return s.cs.SendMsg(msg) }

// Recv reads the server's next message. io.EOF means the server ended the
// call with OK; any other error is the call's status.
func (s *Stream) Recv() ([]byte, error) {
	var m []byte
	if err := s.cs.RecvMsg(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// Header waits for the response headers.
func (s *Stream) Header() (metadata.MD, error) { return s.cs.Header() }

// Finish closes the sending side, reads every message left and returns the
// call's result; Messages holds those read by Finish only.
func (s *Stream) Finish() Result {
	var r Result
	s.cs.CloseSend()
	for {
		m, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.Err = err
			}
			break
		}
		r.Messages = append(r.Messages, m)
	}
	r.Header, _ = s.cs.Header()
	r.Trailer = s.cs.Trailer()
	return r
}

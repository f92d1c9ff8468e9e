package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard-proxy/switchyard/pool"
)

// The gRPC health protocol (grpc/grpc doc/health-checking.md): a unary call
// of grpc.health.v1.Health/Check with a HealthCheckRequest {string service
// = 1}, answered by a HealthCheckResponse {ServingStatus status = 1}.
const (
	grpcCheckPath = "/grpc.health.v1.Health/Check"
	// grpcServing is ServingStatus SERVING; the others are UNKNOWN (0),
	// NOT_SERVING (2) and SERVICE_UNKNOWN (3).
	grpcServing = 1
)

var grpcStatusNames = map[uint64]string{0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

// grpcCheckRequest is the Check call's message for service, in the gRPC
// wire's length-prefixed frame (uncompressed). The empty service is the
// empty message.
func grpcCheckRequest(service string) []byte {
	var msg []byte
	if service != "" {
		msg = protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), service)
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// grpcProbe is the gRPC check: one Check call on a new connection, which
// passes when the backend answers SERVING.
func grpcProbe(ctx context.Context, s *settings, b *pool.Backend) (bool, string) {
	target := b.URL().JoinPath(grpcCheckPath)
	client := s.h2c // gRPC is HTTP/2: prior knowledge on a plain connection
	if target.Scheme == "https" {
		client = s.tls
	}
	toWire(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(s.grpcRequest))
	if err != nil {
		return false, "grpc health check: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", s.userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return false, failure("grpc health check", ctx, s, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if err != nil {
		return false, failure("grpc health check", ctx, s, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") {
		return false, fmt.Sprintf("grpc health check: status %d, content-type %q: not a gRPC server", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// A trailers-only answer (an error before any message) has its status
	// in the headers.
	code, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if code == "" {
		code, msg = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if code != "0" {
		if m, err := url.PathUnescape(msg); err == nil {
			msg = m
		}
		return false, fmt.Sprintf("grpc health check: grpc-status %s: %s", code, msg)
	}
	status, err := grpcServingStatus(body)
	if err != nil {
		return false, "grpc health check: " + err.Error()
	}
	if status != grpcServing {
		name, ok := grpcStatusNames[status]
		if !ok {
			name = fmt.Sprint(status)
		}
		return false, "grpc health check: " + name
	}
	return true, "grpc health check: SERVING"
}

// grpcServingStatus reads the HealthCheckResponse out of a response body of
// one length-prefixed message.
func grpcServingStatus(body []byte) (uint64, error) {
	if len(body) < 5 {
		return 0, fmt.Errorf("no message in the answer (%d bytes)", len(body))
	}
	if body[0] != 0 {
		return 0, fmt.Errorf("the answer is compressed, which was not asked for")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	msg := body[5:]
	if uint64(n) != uint64(len(msg)) {
		return 0, fmt.Errorf("the answer's message is %d bytes, its frame says %d", len(msg), n)
	}
	var status uint64 // a field left out is its zero value, UNKNOWN
	for len(msg) > 0 {
		num, typ, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return 0, fmt.Errorf("malformed answer: %w", protowire.ParseError(k))
		}
		msg = msg[k:]
		if num == 1 && typ == protowire.VarintType {
			v, k := protowire.ConsumeVarint(msg)
			if k < 0 {
				return 0, fmt.Errorf("malformed answer: %w", protowire.ParseError(k))
			}
			status, msg = v, msg[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(num, typ, msg) // a field of a later version: skip it
		if k < 0 {
			return 0, fmt.Errorf("malformed answer: %w", protowire.ParseError(k))
		}
		msg = msg[k:]
	}
	return status, nil
}

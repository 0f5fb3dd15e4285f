package stage

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// What the tests of both streams (client_stream_test.go, hostclient_stream_test.go) share.

// serveInMemory serves srv over an in-memory connection and returns a client connection to it;
// both end with the test.
func serveInMemory(t testing.TB, srv *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.Dial("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// breakingStream is a server stream that ends with DataLoss on the first message breaks accepts.
type breakingStream struct {
	grpc.ServerStream
	breaks func(msg any) bool
}

func (s *breakingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.breaks(m) {
		return status.Error(codes.DataLoss, "broken on purpose")
	}
	return nil
}

// waiters is how many calls wait for an answer on s.
func waiters[Req, Resp any](s *muxStream[Req, Resp]) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

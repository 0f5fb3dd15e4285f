package stagetest

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

const bufSize = 1 << 20

// dialBuf returns a gRPC client connection over an in-memory listener.
func dialBuf(l *bufconn.Listener) (*grpc.ClientConn, error) {
	return grpc.Dial("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
}

// hostLink stands in for go-plugin's broker: each ServeHost gets a new in-memory listener under a
// new id, and DialHost connects to the listener of an id.
type hostLink struct {
	mu     sync.Mutex
	nextID uint32
	lis    map[uint32]*bufconn.Listener
}

func (l *hostLink) serve(newServer func([]grpc.ServerOption) *grpc.Server) (uint32, func(), error) {
	lis := bufconn.Listen(bufSize)
	l.mu.Lock()
	l.nextID++
	id := l.nextID
	if l.lis == nil {
		l.lis = make(map[uint32]*bufconn.Listener)
	}
	l.lis[id] = lis
	l.mu.Unlock()
	srv := newServer(nil)
	go func() { _ = srv.Serve(lis) }()
	stop := func() {
		srv.Stop()
		l.mu.Lock()
		delete(l.lis, id)
		l.mu.Unlock()
	}
	return id, stop, nil
}

func (l *hostLink) dial(_ context.Context, id uint32) (*grpc.ClientConn, error) {
	l.mu.Lock()
	lis := l.lis[id]
	l.mu.Unlock()
	if lis == nil {
		return nil, fmt.Errorf("stagetest: no Host service with id %d", id)
	}
	return dialBuf(lis)
}

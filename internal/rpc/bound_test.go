package rpc_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/client/callopt"
	"github.com/cloudwego/kitex/pkg/endpoint"
	"github.com/cloudwego/kitex/pkg/kerrors"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
)

// hangingGateway answers Sessions at once and never answers Push until released: a peer that took
// the request and hangs.
type hangingGateway struct{ release chan struct{} }

func (g *hangingGateway) Push(ctx context.Context, _ *fleet.PushRequest) (*fleet.PushResponse, error) {
	<-g.release
	return &fleet.PushResponse{}, nil
}

func (g *hangingGateway) Sessions(context.Context, *fleet.SessionsRequest) (*fleet.SessionsResponse, error) {
	return &fleet.SessionsResponse{}, nil
}

// serveHanging runs a real Kitex gateway server on a loopback port and returns its address.
func serveHanging(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &hangingGateway{release: make(chan struct{})}
	svr := gwservice.NewServer(g, rpc.Server(ln)...)
	var wg sync.WaitGroup
	wg.Go(func() { _ = svr.Run() })
	t.Cleanup(func() {
		close(g.release)
		_ = svr.Stop()
		wg.Wait()
	})
	return ln.Addr().String()
}

// onPoolGoroutine records whether the innermost client middleware ran on a goroutine of Kitex's
// timeout pool.
type onPoolGoroutine struct {
	mu     sync.Mutex
	pooled bool
}

func (o *onPoolGoroutine) mw(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req, resp any) error {
		buf := make([]byte, 64<<10)
		stack := string(buf[:runtime.Stack(buf, false)])
		o.mu.Lock()
		o.pooled = strings.Contains(stack, "timeoutTask")
		o.mu.Unlock()
		return next(ctx, req, resp)
	}
}

func (o *onPoolGoroutine) get() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pooled
}

// A call to a peer that never answers fails with kerrors.ErrRPCTimeout within the call timeout,
// whether the caller's context can be cancelled or not; a call made with a detached context runs
// on the caller's goroutine, one made with a cancellable context on Kitex's timeout pool.
func TestCallToAHungPeerTimesOut(t *testing.T) {
	addr := serveHanging(t)
	const timeout = 300 * time.Millisecond
	probe := &onPoolGoroutine{}
	cli, err := gwservice.NewClient("plato-gateway", append(rpc.Client(addr, timeout), client.WithMiddleware(probe.mw))...)
	if err != nil {
		t.Fatal(err)
	}

	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		pooled bool
	}{
		{"detached", rpc.Detached(cancellable), false},
		{"background", context.Background(), false},
		{"cancellable", cancellable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A call that is answered works and tells which goroutine it ran on.
			if _, err := cli.Sessions(tc.ctx, &fleet.SessionsRequest{}); err != nil {
				t.Fatalf("Sessions: %v", err)
			}
			if got := probe.get(); got != tc.pooled {
				t.Errorf("call ran on a timeout-pool goroutine: %v, want %v", got, tc.pooled)
			}

			start := time.Now()
			done := make(chan error, 1)
			go func() {
				_, err := cli.Push(tc.ctx, &fleet.PushRequest{})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Push to a hung peer still waiting after 10s; its timeout is %v", timeout)
			}
			took := time.Since(start)
			if !errors.Is(err, kerrors.ErrRPCTimeout) {
				t.Fatalf("Push to a hung peer: err = %v, want kerrors.ErrRPCTimeout", err)
			}
			if rpc.KindOf(err) != rpc.ErrTimeout {
				t.Errorf("KindOf(%v) = %v, want timeout", err, rpc.KindOf(err))
			}
			if took < timeout {
				t.Errorf("Push failed after %v, before its timeout %v", took, timeout)
			}
			if took > 5*timeout+time.Second {
				t.Errorf("Push failed after %v, want about %v", took, timeout)
			}
			// The connection that timed out is not reused for the next call's answer.
			if _, err := cli.Sessions(tc.ctx, &fleet.SessionsRequest{}); err != nil {
				t.Fatalf("Sessions after a timeout: %v", err)
			}
		})
	}

	// A per-call timeout (callopt.WithRPCTimeout, the peer calls that wait for ACKs) still wins.
	start := time.Now()
	_, err = cli.Push(context.Background(), &fleet.PushRequest{}, callopt.WithRPCTimeout(2*timeout))
	if !errors.Is(err, kerrors.ErrRPCTimeout) {
		t.Fatalf("Push with a call timeout: err = %v, want kerrors.ErrRPCTimeout", err)
	}
	if took := time.Since(start); took < 2*timeout {
		t.Errorf("Push with a %v call timeout failed after %v", 2*timeout, took)
	}
}

// Detached keeps ctx's values, drops its cancellation, and returns a context that cannot be
// cancelled, or one that has already ended, as it is.
func TestDetached(t *testing.T) {
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	d := rpc.Detached(ctx)
	cancel()
	if d.Done() != nil || d.Err() != nil {
		t.Errorf("detached context can be cancelled: Done %v, Err %v", d.Done(), d.Err())
	}
	if rpc.Detached(ctx) != ctx {
		t.Errorf("Detached hid that its context had already ended")
	}
	if d.Value(key{}) != "v" {
		t.Errorf("detached context lost its values")
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.Value(key{}) }); n != 0 && !raceEnabled {
		t.Errorf("a value lookup through a detached context allocates %v times, want 0", n)
	}
	live, stop := context.WithCancel(context.Background())
	defer stop()
	if n := testing.AllocsPerRun(100, func() { _ = rpc.Detached(live) }); n > 1 && !raceEnabled {
		t.Errorf("Detached allocates %v times, want at most 1", n)
	}
	bg := context.Background()
	if rpc.Detached(bg) != bg {
		t.Errorf("Detached wrapped a context that cannot be cancelled")
	}
}

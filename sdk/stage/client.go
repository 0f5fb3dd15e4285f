package stage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// Dispense starts (if needed) the plugin process of c and returns its stage as a Processor. c must
// be configured with Handshake, VersionedPlugins() and plugin.ProtocolGRPC. The process stays the
// host's to stop (c.Kill); Processor.Close only releases the stream.
func Dispense(c *plugin.Client) (Processor, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, fmt.Errorf("starting stage plugin: %w", err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispensing stage plugin: %w", err)
	}
	p, ok := raw.(Processor)
	if !ok {
		return nil, fmt.Errorf("dispensing stage plugin: got %T, want a stage.Processor", raw)
	}
	return p, nil
}

// serveHostFunc exposes a Host service to the plugin and returns the id the plugin dials.
type serveHostFunc func(newServer func([]grpc.ServerOption) *grpc.Server) (uint32, func(), error)

// remote is the host side's Processor for a stage behind gRPC. Process multiplexes every caller
// over one long-lived bidi stream (see client_stream.go).
type remote struct {
	conn      grpc.ClientConnInterface // the control channel
	client    pb.StageClient
	serveHost serveHostFunc

	hostMu   sync.Mutex
	stopHost func()      // the current Init's Host service
	decl     declaration // the current Init's answer

	answered atomic.Uint64       // Results received, late ones included (Liveness)
	batches  mux[[]byte, result] // the data socket, or the Process stream
	rawOff   atomic.Bool         // the plugin has no data socket (or the host must not use it)
	path     atomic.Pointer[string]
	fault    atomic.Pointer[error] // the plugin broke the data protocol (Fault)
	frames   framePool             // batch buffers, recycled once written on the data socket
}

var (
	_ Processor          = (*remote)(nil)
	_ Liveness           = (*remote)(nil)
	_ Fault              = (*remote)(nil)
	_ SignalDeclarer     = (*remote)(nil)
	_ RouteScopeDeclarer = (*remote)(nil)
)

// Answered implements Liveness.
func (r *remote) Answered() uint64 { return r.answered.Load() }

func newRemote(c grpc.ClientConnInterface, serve serveHostFunc) *remote {
	r := &remote{conn: c, client: pb.NewStageClient(c), serveHost: serve}
	r.batches.open = r.open
	return r
}

func (r *remote) Describe(ctx context.Context) (Info, []Signal, error) {
	resp, err := r.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Info{}, nil, callError("stage describe", err)
	}
	sigs := make([]Signal, len(resp.GetSignals()))
	for i, s := range resp.GetSignals() {
		sigs[i] = Signal(s)
	}
	return Info{Name: resp.GetName(), Version: resp.GetVersion()}, sigs, nil
}

// Init serves req.Host to the plugin (on go-plugin's broker) for as long as the Processor lives,
// then initialises the stage. req.Logger stays on the host side: the plugin logs to its stderr,
// which go-plugin relays.
func (r *remote) Init(ctx context.Context, req InitRequest) error {
	var id uint32
	stop := func() {}
	if req.Host != nil {
		if r.serveHost == nil {
			return errors.New("stage init: no way to serve the Host to the plugin")
		}
		hs := &hostServer{h: req.Host}
		var err error
		id, stop, err = r.serveHost(func(opts []grpc.ServerOption) *grpc.Server {
			s := newGRPCServer(opts)
			pb.RegisterHostServer(s, hs)
			return s
		})
		if err != nil {
			return fmt.Errorf("stage init: serving the Host: %w", err)
		}
	}
	resp, err := r.client.Init(ctx, &pb.InitRequest{
		Pipeline:     req.Pipeline,
		Stage:        req.Stage,
		Config:       req.Config,
		HostBrokerId: id,
	})
	if err != nil {
		stop()
		return callError("stage init", err)
	}
	// A plugin from before acts_on answers an empty InitResponse: declared stays false.
	d := declaration{declared: resp.GetActsOnDeclared(), sessionRoutesOnly: resp.GetRouteSessionsOnly()}
	if d.declared {
		d.signals = make([]Signal, len(resp.GetActsOn()))
		for i, s := range resp.GetActsOn() {
			d.signals[i] = Signal(s)
		}
	}
	r.hostMu.Lock()
	old := r.stopHost
	r.stopHost = stop
	r.decl = d
	r.hostMu.Unlock()
	if old != nil {
		old()
	}
	return nil
}

// DeclaredSignals implements SignalDeclarer: what the plugin's last successful Init answered.
func (r *remote) DeclaredSignals() ([]Signal, bool) {
	r.hostMu.Lock()
	defer r.hostMu.Unlock()
	return r.decl.signals, r.decl.declared
}

// DeclaredSessionRoutesOnly implements RouteScopeDeclarer: what the plugin's last successful Init
// answered (false from a plugin built before route_sessions_only).
func (r *remote) DeclaredSessionRoutesOnly() bool {
	r.hostMu.Lock()
	defer r.hostMu.Unlock()
	return r.decl.sessionRoutesOnly
}

// Close ends the stream (callers still waiting get ErrClosed) and stops serving the Host.
func (r *remote) Close() error {
	r.batches.close(ErrClosed)
	r.hostMu.Lock()
	stop := r.stopHost
	r.stopHost = nil
	r.hostMu.Unlock()
	if stop != nil {
		stop()
	}
	return nil
}

// brokerServeHost serves the Host on go-plugin's broker: a fresh broker id, accepted in the
// background (the plugin dials it while handling Init).
func brokerServeHost(b *plugin.GRPCBroker) serveHostFunc {
	return func(newServer func([]grpc.ServerOption) *grpc.Server) (uint32, func(), error) {
		id := b.NextId()
		var (
			mu      sync.Mutex
			srv     *grpc.Server
			stopped bool
		)
		go b.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := newServer(opts)
			mu.Lock()
			srv = s
			if stopped {
				s.Stop() // Serve then returns at once
			}
			mu.Unlock()
			return s
		})
		stop := func() {
			mu.Lock()
			stopped = true
			if srv != nil {
				srv.Stop()
			}
			mu.Unlock()
		}
		return id, stop, nil
	}
}

// callError turns a gRPC call's error into "<op>: <the other side's message>". It unwraps to the
// gRPC status error (status.Code works on it), or to context.DeadlineExceeded or context.Canceled
// when that is what happened, so errors.Is works as in process.
func callError(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", op, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("%s: %w", op, context.Canceled)
	}
	return &rpcError{msg: op + ": " + st.Message(), err: err}
}

type rpcError struct {
	msg string
	err error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

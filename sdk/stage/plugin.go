package stage

import (
	"context"
	"errors"
	"log/slog"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// ProtocolVersion is the version of the host<->stage contract (internal/pb/stage.proto). A host
// and a plugin agree on it during go-plugin's handshake; raise it, and keep serving the old one
// through VersionedPlugins, when the contract changes incompatibly.
const ProtocolVersion = 1

// PluginName is the name a stage is served and dispensed under in go-plugin's plugin set.
const PluginName = "stage"

// Handshake is the go-plugin handshake shared by the host and every stage plugin. The magic cookie
// is not a secret: it only stops a stage binary from being run by hand by mistake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "PLATO_STAGE_PLUGIN",
	MagicCookieValue: "c5f1a8e2-7d3b-4b9e-9a06-3e8d2f71b4c9",
}

// VersionedPlugins returns the plugin sets a host puts in plugin.ClientConfig.VersionedPlugins:
// one GRPCPlugin per supported ProtocolVersion.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{}},
	}
}

// GRPCPlugin is the go-plugin plugin.GRPCPlugin for a stage. It holds both sides of the adapter:
// GRPCServer serves Stage in the plugin process, GRPCClient hands the host a Processor. Serve and
// VersionedPlugins build it; only test harnesses (see package stagetest) set its fields by hand.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Stage is the stage served by GRPCServer (plugin side). Unused on the host side.
	Stage Stage

	// Logger is the logger the plugin side hands to Stage.Init and logs handler panics to. Nil
	// means hclog-style JSON on the process's stderr, which the host relays.
	Logger *slog.Logger

	// DialHost, when set, is how the plugin side reaches the host's Host service: it is called
	// with the id the host put in the init request. Nil means go-plugin's broker (broker.Dial).
	DialHost func(ctx context.Context, id uint32) (*grpc.ClientConn, error)

	// ServeHost, when set, is how the host side exposes the Host service to the plugin: it must
	// serve the server that newServer builds (calling it with the server options to use), return
	// the id that DialHost on the other side understands, and a func that stops serving. Nil means
	// go-plugin's broker (broker.NextId and broker.AcceptAndServe).
	ServeHost func(newServer func([]grpc.ServerOption) *grpc.Server) (id uint32, stop func(), err error)

	// NoDataSocket leaves the data socket out, as an SDK built before it did: batches take the
	// gRPC Process stream. On the plugin side Serve sets it when PLATO_STAGE_RAW=off is in the
	// environment; on the host side it stops the host from asking for the socket. Package
	// stagetest sets it, as both sides run in the test's process: over gRPC's in-memory
	// transport the race detector sees a batch handed from one side to the other, over a socket
	// it would not.
	NoDataSocket bool
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the Stage gRPC service for p.Stage on s (plugin side). broker may be nil
// when DialHost is set.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Stage == nil {
		return errors.New("stage plugin: no Stage to serve")
	}
	dial := p.DialHost
	if dial == nil && broker != nil {
		dial = func(_ context.Context, id uint32) (*grpc.ClientConn, error) { return broker.Dial(id) }
	}
	logger := p.Logger
	if logger == nil {
		logger = newStderrLogger()
	}
	srv := newServer(p.Stage, logger, dial)
	pb.RegisterStageServer(s, srv)
	if !p.NoDataSocket {
		s.RegisterService(&dataServiceDesc, &dataServer{s: srv})
	}
	return nil
}

// GRPCClient returns the host side's Processor over c. broker may be nil when ServeHost is set.
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	serve := p.ServeHost
	if serve == nil && broker != nil {
		serve = brokerServeHost(broker)
	}
	r := newRemote(c, serve)
	r.rawOff.Store(p.NoDataSocket)
	return r, nil
}

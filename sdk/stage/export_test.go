package stage

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// OldHostPlugins is VersionedPlugins for a host built before the HostCalls stream: its Host
// service answers HostCalls as gRPC answers an unknown method, so the plugin makes every Host
// call unary, as it did before the stream existed.
func OldHostPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {PluginName: &oldHostPlugin{}}}
}

type oldHostPlugin struct{ GRPCPlugin }

func (p *oldHostPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	serve := brokerServeHost(broker)
	return newRemote(c, func(newServer func([]grpc.ServerOption) *grpc.Server) (uint32, func(), error) {
		return serve(func(opts []grpc.ServerOption) *grpc.Server {
			return newServer(append(opts, grpc.ChainStreamInterceptor(refuseHostCalls)))
		})
	}), nil
}

func refuseHostCalls(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if info.FullMethod == pb.Host_HostCalls_FullMethodName {
		return status.Errorf(codes.Unimplemented, "unknown method HostCalls for service plato.stage.v1.Host")
	}
	return h(srv, ss)
}

// GRPCOnlyHostPlugins is VersionedPlugins for a host built before the data socket: it never asks
// the plugin for one, and sends batches on the Process stream.
func GRPCOnlyHostPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {PluginName: &GRPCPlugin{NoDataSocket: true}}}
}

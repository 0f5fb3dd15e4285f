package state

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/sdk/protocol"
)

// gatewayLink pushes frames to one gateway in ordered micro-batches.
type gatewayLink struct {
	id    string
	addr  string
	cli   gwservice.Client
	batch *batch.Batcher[*fleet.DownFrame]
}

// newGateways follows the live gateways in the registry, one link each. A gateway that leaves
// takes its connections with it; one that re-registers at a new address gets a fresh link.
func newGateways(s *Server) *registry.Table[*gatewayLink] {
	return registry.NewTable(registry.TableConfig[*gatewayLink]{
		Role: registry.RoleGateway, Dial: s.dialGateway, Log: s.log,
		Drop: func(l *gatewayLink, id string, gone bool) {
			if gone {
				for _, cs := range s.conns.ofGateway(id) {
					s.disconnect(cs, protocol.CodeStateLost)
				}
			}
			go closeLink(l)
		},
	})
}

func (s *Server) dialGateway(n registry.Node) (*gatewayLink, error) {
	cli, err := gwservice.NewClient("plato-gateway", rpc.Client(n.RPCAddr, s.cfg.RPCTimeout)...)
	if err != nil {
		return nil, fmt.Errorf("creating gateway client for %s: %w", n.RPCAddr, err)
	}
	l := &gatewayLink{id: n.ID, addr: n.RPCAddr, cli: cli}
	b := s.cfg.Batch
	l.batch = batch.New(batch.Config{MaxSize: b.MaxSize, MaxDelay: b.MaxDelay, Lanes: b.Lanes},
		func(ctx context.Context, frames []*fleet.DownFrame) { s.pushFrames(ctx, l, frames) })
	return l, nil
}

func closeLink(l *gatewayLink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.batch.Close(ctx)
}

// pushFrames sends one batch of frames to a gateway; connections it no longer holds are forgotten.
func (s *Server) pushFrames(ctx context.Context, l *gatewayLink, frames []*fleet.DownFrame) {
	resp, err := l.cli.Push(ctx, &fleet.PushRequest{Frames: frames, StateId: s.cfg.ID, Proof: s.proof})
	if err != nil {
		s.metrics.pushFailed.Add(int64(len(frames)))
		s.metrics.rpcError(peerGateway, err)
		s.log.Warn("pushing to gateway failed", "gateway", l.id, "frames", len(frames), "err", err)
		return
	}
	for _, id := range resp.Gone {
		if cs := s.conns.get(connKey{gw: l.id, id: uint64(id)}); cs != nil {
			s.disconnect(cs, protocol.CodeClientClose)
		}
	}
}

// send queues a frame for a connection's gateway.
func (s *Server) send(cs *connState, action fleet.DownAction, sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	f := &fleet.DownFrame{
		ConnId: int64(cs.key.id), Action: action, Signal: int8(sig), Flags: int16(flags), Seq: int64(seq), Body: body,
	}
	if action == fleet.DownAction_LOGIN_OK {
		f.Did = cs.did
	}
	if err := cs.gw.batch.Add(cs.key.id, f); err != nil {
		s.metrics.pushQueueFull.Add(1)
		return false
	}
	return true
}

// sendTo queues a frame for a connection the state server does not hold (a refusal).
func (s *Server) sendTo(l *gatewayLink, connID uint64, action fleet.DownAction, sig protocol.Signal, seq uint64, body []byte) {
	_ = l.batch.Add(connID, &fleet.DownFrame{ConnId: int64(connID), Action: action, Signal: int8(sig), Seq: int64(seq), Body: body})
}

// gatewayFor returns the link to gateway id, asking the registry when the watch has not shown it
// yet (a gateway can deliver before its entry reaches us), or nil.
func (s *Server) gatewayFor(id string) *gatewayLink {
	if l, ok := s.gateways.Get(id); ok {
		return l
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nodes, err := s.reg.List(ctx, registry.RoleGateway)
	if err != nil {
		return nil
	}
	for _, n := range nodes {
		if n.ID == id {
			s.gateways.Put(n)
			l, _ := s.gateways.Get(id)
			return l
		}
	}
	return nil
}

// Gateways lists the IDs of the gateways the state server knows.
func (s *Server) Gateways() []string { return s.gateways.IDs() }

package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/common"
	gwrpc "github.com/platoim/plato/internal/rpc/kitex_gen/plato/gateway"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/gateway/gateway"
	"github.com/platoim/plato/sdk/protocol"
)

// gatewayLink pushes frames to one gateway in ordered micro-batches.
type gatewayLink struct {
	id    string
	addr  string
	cli   gwservice.Client
	batch *batch.Batcher[*common.DownFrame]
}

// gateways tracks live gateways from the registry.
type gateways struct {
	s    *Server
	mu   sync.RWMutex
	byID map[string]*gatewayLink
}

func (g *gateways) get(id string) *gatewayLink {
	g.mu.RLock()
	l := g.byID[id]
	g.mu.RUnlock()
	return l
}

func (g *gateways) watch(ctx context.Context) error {
	if err := registry.Follow(ctx, g.s.reg, registry.RoleGateway, g.put, g.remove); err != nil {
		return fmt.Errorf("watching gateways: %w", err)
	}
	return nil
}

func (g *gateways) put(n registry.Node) {
	g.mu.RLock()
	old := g.byID[n.ID]
	g.mu.RUnlock()
	if old != nil && old.addr == n.RPCAddr {
		return
	}
	cli, err := gwservice.NewClient("plato-gateway", rpc.Client(n.RPCAddr, g.s.cfg.RPCTimeout)...)
	if err != nil {
		g.s.log.Error("cannot reach gateway", "gateway", n.ID, "addr", n.RPCAddr, "err", err)
		return
	}
	l := &gatewayLink{id: n.ID, addr: n.RPCAddr, cli: cli}
	b := g.s.cfg.Batch
	l.batch = batch.New(batch.Config{MaxSize: b.MaxSize, MaxDelay: b.MaxDelay, Lanes: b.Lanes},
		func(ctx context.Context, frames []*common.DownFrame) { g.s.pushFrames(ctx, l, frames) })
	g.mu.Lock()
	g.byID[n.ID] = l
	g.mu.Unlock()
	g.s.log.Info("gateway joined", "gateway", n.ID, "rpc", n.RPCAddr)
	if old != nil {
		go g.closeLink(old)
	}
}

// remove forgets a gateway that left or stopped reporting: its connections are gone with it.
func (g *gateways) remove(id string) {
	g.mu.Lock()
	l := g.byID[id]
	delete(g.byID, id)
	g.mu.Unlock()
	if l == nil {
		return
	}
	g.s.log.Warn("gateway left; dropping its connections", "gateway", id)
	for _, cs := range g.s.conns.ofGateway(id) {
		g.s.disconnect(cs, protocol.CodeStateLost)
	}
	go g.closeLink(l)
}

func (g *gateways) closeLink(l *gatewayLink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.batch.Close(ctx)
}

func (g *gateways) closeAll(ctx context.Context) {
	g.mu.Lock()
	links := g.byID
	g.byID = map[string]*gatewayLink{}
	g.mu.Unlock()
	for _, l := range links {
		_ = l.batch.Close(ctx)
	}
}

// pushFrames sends one batch of frames to a gateway; connections it no longer holds are forgotten.
func (s *Server) pushFrames(ctx context.Context, l *gatewayLink, frames []*common.DownFrame) {
	resp, err := l.cli.Push(ctx, &gwrpc.PushRequest{Frames: frames, StateId: s.cfg.ID, Proof: s.proof})
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
func (s *Server) send(cs *connState, action common.DownAction, sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	f := &common.DownFrame{
		ConnId: int64(cs.key.id), Action: action, Signal: int8(sig), Flags: int16(flags), Seq: int64(seq), Body: body,
	}
	if action == common.DownAction_LOGIN_OK {
		f.Did = cs.did
	}
	if err := cs.gw.batch.Add(cs.key.id, f); err != nil {
		s.metrics.pushQueueFull.Add(1)
		return false
	}
	return true
}

// sendTo queues a frame for a connection the state server does not hold (a refusal).
func (s *Server) sendTo(l *gatewayLink, connID uint64, action common.DownAction, sig protocol.Signal, seq uint64, body []byte) {
	_ = l.batch.Add(connID, &common.DownFrame{ConnId: int64(connID), Action: action, Signal: int8(sig), Seq: int64(seq), Body: body})
}

// lookup asks the registry for a gateway the watch has not shown yet.
func (g *gateways) lookup(id string) *gatewayLink {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nodes, err := g.s.reg.List(ctx, registry.RoleGateway)
	if err != nil {
		return nil
	}
	for _, n := range nodes {
		if n.ID == id {
			g.put(n)
			return g.get(id)
		}
	}
	return nil
}

// Gateways lists the IDs of the gateways the state server knows.
func (s *Server) Gateways() []string {
	s.gateways.mu.RLock()
	defer s.gateways.mu.RUnlock()
	ids := make([]string, 0, len(s.gateways.byID))
	for id := range s.gateways.byID {
		ids = append(ids, id)
	}
	return ids
}

package state

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/internal/batch"
	"github.com/platoim/plato/internal/colocal"
	"github.com/platoim/plato/internal/registry"
	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	gwservice "github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet/gateway"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// gatewayLink pushes frames to one gateway in ordered micro-batches.
type gatewayLink struct {
	id    string
	addr  string
	cli   gwservice.Client
	batch *batch.Batcher[downItem]
	calls pushCalls // Push requests, reused (callbufs.go)
}

// downItem is one frame for a gateway. acc, when set, learns whether the gateway took it: an
// at-least-once push reports SENT only for frames a gateway holds (accepts).
type downItem struct {
	f   *fleet.DownFrame
	acc *accepts
	idx int
	// ack is the connection of an UplinkAck, whose pushAcks counts it until the call returns.
	ack *connState
}

// accepts waits for the frames of one at-least-once push to reach their gateways: a frame still
// queued here would die with this process, and the business must not hear SENT for it.
type accepts struct {
	w      *waiter
	failed []atomic.Bool // by target: the gateway could not be reached
}

func newAccepts(n int) *accepts {
	return &accepts{w: newWaiter(n), failed: make([]atomic.Bool, n)}
}

// newGateways follows the live gateways in the registry, one link each. The connections of a
// gateway that leaves lost their sockets: they are kept for their devices to Resume elsewhere. One
// that re-registers at a new address gets a fresh link.
func newGateways(s *Server) *registry.Table[*gatewayLink] {
	return registry.NewTable(registry.TableConfig[*gatewayLink]{
		Role: registry.RoleGateway, Dial: s.dialGateway, Log: s.log,
		Drop: func(l *gatewayLink, id string, gone bool) {
			if gone {
				for _, cs := range s.conns.ofGateway(id) {
					if k, ok := cs.routeKey(); ok && k.gw == id {
						s.dropped(cs, protocol.CodeConnectionLost, k)
					}
				}
			}
			go closeLink(l)
		},
	})
}

func (s *Server) dialGateway(n registry.Node) (*gatewayLink, error) {
	cli, err := gwservice.NewClient("plato-gateway", append(rpc.Client(n.RPCAddr, s.cfg.RPCTimeout), s.gatewayCalls.Option())...)
	if err != nil {
		return nil, fmt.Errorf("creating gateway client for %s: %w", n.RPCAddr, err)
	}
	cli = s.cfg.Local.GatewayClient(n, cli, colocal.Options{Timeout: s.cfg.RPCTimeout, Latency: s.gatewayCalls})
	l := &gatewayLink{id: n.ID, addr: n.RPCAddr, cli: cli}
	b := s.cfg.Batch
	l.batch = batch.New(batch.Config{MaxSize: b.MaxSize, MaxDelay: b.MaxDelay, Lanes: b.Lanes, MergeWait: b.MergeWait},
		func(ctx context.Context, items []downItem) { s.pushFrames(ctx, l, items) })
	return l, nil
}

// retriesOnClosedConn bounds the calls made again after a network error: enough to get past the
// pooled connections a gateway's previous process closed.
const retriesOnClosedConn = 4

func closeLink(l *gatewayLink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.batch.Close(ctx)
}

// pushFrames sends one batch of frames to a gateway; connections it no longer holds lost their
// socket (its CLOSED event, with the reason, may still be on its way).
func (s *Server) pushFrames(ctx context.Context, l *gatewayLink, items []downItem) {
	call := l.calls.get(items, s.cfg.ID, s.proof)
	defer func() {
		// A ctx that had ended sent the call through Kitex's timeout pool, which may still be
		// encoding the request: only a call made while ctx was live is surely done with it.
		if ctx.Err() == nil {
			l.calls.put(call)
		}
	}()
	req, frames := &call.req, call.frames
	// Detached: a cancellable context would run the call on a Kitex pool goroutine; the client's
	// call timeout bounds it (internal/rpc/bound.go).
	callCtx := rpc.Detached(ctx)
	resp, err := l.cli.Push(callCtx, req)
	// A gateway upgraded in place (docs/operations.md) closes its RPC connections once its new
	// process serves the same address; a call that met one closing was not taken there. Again, on
	// another connection (the pool may hold a few that closed).
	for try := 1; err != nil && try <= retriesOnClosedConn && rpc.KindOf(err) == rpc.ErrNetwork && ctx.Err() == nil; try++ {
		s.metrics.rpcError(peerGateway, err)
		time.Sleep(time.Duration(try) * 5 * time.Millisecond)
		resp, err = l.cli.Push(callCtx, req)
	}
	for _, it := range items {
		if it.ack != nil {
			it.ack.pushAcks.Add(-1)
		}
		if it.acc != nil {
			if err != nil {
				it.acc.failed[it.idx].Store(true)
			}
			it.acc.w.ack(it.idx)
		}
	}
	if err != nil {
		s.metrics.pushFailed.Add(int64(len(frames)))
		s.metrics.rpcError(peerGateway, err)
		s.log.Warn("pushing to gateway failed", "gateway", l.id, "frames", len(frames), "err", err)
		return
	}
	s.gone(l, resp.Gone)
	s.moved(l, resp.Moved)
}

// moved forgets the connections a gateway moved to another state server: this one was thought
// lost. They live on there, so nothing ends: no disconnect signal, no business event.
func (s *Server) moved(l *gatewayLink, ids []int64) {
	for _, id := range ids {
		cs := s.conns.byRoute(connKey{gw: l.id, id: uint64(id)})
		if cs == nil {
			continue
		}
		if first, _ := s.markClosed(cs); !first {
			continue
		}
		cs.mu.Lock()
		cs.stopAllTimers()
		cs.inflight, cs.order = nil, nil
		cs.mu.Unlock()
		s.sessions.leaveAll(cs)
		s.conns.remove(cs)
		s.metrics.movedAway.Add(1)
	}
}

// gone acts on the connections a gateway says it does not hold.
func (s *Server) gone(l *gatewayLink, ids []int64) {
	for _, id := range ids {
		k := connKey{gw: l.id, id: uint64(id)}
		if cs := s.conns.byRoute(k); cs != nil {
			s.dropped(cs, protocol.CodeConnectionLost, k)
		}
	}
}

// send queues a frame for a connection's gateway. It reports false when the connection is parked
// (nothing holds its socket) or the gateway's queue is full.
func (s *Server) send(cs *connState, action fleet.DownAction, sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	r := cs.route.Load()
	if r == nil {
		return false
	}
	return s.sendRoute(r, cs.did, action, sig, flags, seq, body)
}

func (s *Server) sendRoute(r *route, did string, action fleet.DownAction, sig protocol.Signal, flags uint16, seq uint64, body []byte) bool {
	f := &fleet.DownFrame{
		ConnId: int64(r.key.id), Action: action, Signal: int8(sig), Flags: int16(flags), Seq: int64(seq), Body: body,
	}
	if action == fleet.DownAction_LOGIN_OK {
		f.Did = did
	}
	return s.queue(r, downItem{f: f})
}

// sendAckRoute queues an UplinkAck of cs on route r, counted in cs.pushAcks until its Push call
// returns (replyacks.go).
func (s *Server) sendAckRoute(cs *connState, r *route, seq uint64, body []byte) bool {
	cs.pushAcks.Add(1)
	f := &fleet.DownFrame{ConnId: int64(r.key.id), Signal: int8(protocol.SigUplinkAck), Seq: int64(seq), Body: body}
	if !s.queue(r, downItem{f: f, ack: cs}) {
		cs.pushAcks.Add(-1)
		return false
	}
	s.metrics.ackPaths[ackByPush].Add(1)
	return true
}

// sendDownlink queues a Downlink. An at-least-once one is marked for the gateway to keep until
// the device ACKs it; acc, when set, hears whether the gateway got it.
func (s *Server) sendDownlink(cs *connState, seq uint64, flags uint16, msgID uint64, payload []byte, qos stage.QoS, acc *accepts, idx int) bool {
	r := cs.route.Load()
	if r == nil {
		return false
	}
	return s.sendDownlinkRoute(r, seq, flags, msgID, payload, qos, acc, idx)
}

func (s *Server) sendDownlinkRoute(r *route, seq uint64, flags uint16, msgID uint64, payload []byte, qos stage.QoS, acc *accepts, idx int) bool {
	// Sized up front: one allocation, not one for the msg_id and another as the payload grows it.
	body := (&protocol.Downlink{MsgID: msgID, Payload: payload}).Append(make([]byte, 0, 8+len(payload)))
	f := &fleet.DownFrame{
		ConnId: int64(r.key.id), Signal: int8(protocol.SigDownlink), Flags: int16(flags), Seq: int64(seq), Body: body,
		Track: qos != stage.AtMostOnce,
	}
	if acc != nil {
		acc.w.add()
	}
	if !s.queue(r, downItem{f: f, acc: acc, idx: idx}) {
		if acc != nil {
			acc.failed[idx].Store(true)
			acc.w.ack(idx)
		}
		return false
	}
	return true
}

func (s *Server) queue(r *route, it downItem) bool {
	if err := r.gw.batch.Add(r.key.id, it); err != nil {
		s.metrics.pushQueueFull.Add(1)
		return false
	}
	return true
}

// sendTo queues a frame for a connection the state server does not hold (a refusal).
func (s *Server) sendTo(l *gatewayLink, connID uint64, action fleet.DownAction, sig protocol.Signal, seq uint64, body []byte) {
	_ = l.batch.Add(connID, downItem{f: &fleet.DownFrame{ConnId: int64(connID), Action: action, Signal: int8(sig), Seq: int64(seq), Body: body}})
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

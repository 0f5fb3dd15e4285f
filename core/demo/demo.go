// Package demo is the tiny chat business server `plato up` starts, so a newcomer can talk between
// two terminals: an uplink {"to":"bob","text":"hi"} from alice becomes a downlink
// {"from":"alice","text":"hi"} to bob. It uses only Plato's public RPC (the Business service it
// implements and the State service's Push), as any business server would.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/core/rpcopt"
	"github.com/platoim/plato/idl/kitex_gen/plato/business"
	bizservice "github.com/platoim/plato/idl/kitex_gen/plato/business/business"
	"github.com/platoim/plato/idl/kitex_gen/plato/state"
	stateservice "github.com/platoim/plato/idl/kitex_gen/plato/state/state"
)

// Message is what chat clients send as an uplink payload.
type Message struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Delivered is what chat clients receive as a downlink payload.
type Delivered struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// Business codes the demo answers uplinks with (business codes are 2000-2999).
const (
	CodeBadMessage = 2001 // the payload is not {"to":...,"text":...}
)

// Server is the demo business server.
type Server struct {
	addr      string
	stateAddr func() string
	log       *slog.Logger
	state     stateservice.Client
	ln        net.Listener
	rpc       server.Server
	pushes    chan push
	wg        sync.WaitGroup
}

type push struct {
	appID, from, to string
	payload         []byte
}

// New prepares a demo server listening on addr that pushes through the state server whose address
// stateAddr returns; it is asked on the first push, so the state server may start after the demo.
func New(addr string, stateAddr func() string, logger *slog.Logger) *Server {
	return &Server{addr: addr, stateAddr: stateAddr, log: logger.With("role", "demo"), pushes: make(chan push, 4096)}
}

// Start listens and returns once the listener is open.
func (s *Server) Start(ctx context.Context) error {
	var err error
	if s.ln, err = net.Listen("tcp", s.addr); err != nil {
		return fmt.Errorf("demo: listening on %s: %w", s.addr, err)
	}
	s.rpc = bizservice.NewServer(s, rpcopt.Server(s.ln)...)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.rpc.Run(); err != nil {
			s.log.Error("demo RPC server stopped", "err", err)
		}
	}()
	// Pushes run off the delivery path so an uplink's ACK does not wait for the recipient.
	go func() {
		defer s.wg.Done()
		for p := range s.pushes {
			if s.state == nil {
				addr := s.stateAddr()
				cli, err := stateservice.NewClient("plato-state", rpcopt.Client(addr, 5*time.Second)...)
				if err != nil {
					s.log.Error("cannot create state client; dropping push", "state", addr, "err", err)
					continue
				}
				s.state = cli
			}
			s.forward(p)
		}
	}()
	s.log.Info("demo chat business server listening", "rpc", s.Addr())
	return nil
}

// Addr is the listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server.
func (s *Server) Shutdown(context.Context) error {
	if s.rpc != nil {
		_ = s.rpc.Stop()
	}
	close(s.pushes)
	s.wg.Wait()
	return nil
}

// Deliver implements the Business service.
func (s *Server) Deliver(_ context.Context, req *business.DeliverRequest) (*business.DeliverResponse, error) {
	resp := &business.DeliverResponse{Results: make([]*business.Result_, len(req.Events))}
	for i, ev := range req.Events {
		resp.Results[i] = &business.Result_{}
		switch ev.Kind {
		case business.EventKind_CONNECTED:
			s.log.Info("device online", "app", ev.AppId, "did", ev.Did, "uid", ev.Uid, "gateway", ev.GatewayId)
		case business.EventKind_DISCONNECTED:
			s.log.Info("device offline", "app", ev.AppId, "did", ev.Did, "reason", ev.Reason)
		case business.EventKind_UPLINK:
			var m Message
			if err := json.Unmarshal(ev.Payload, &m); err != nil || m.To == "" {
				resp.Results[i] = &business.Result_{Code: CodeBadMessage, Message: `payload must be {"to":"<did>","text":"..."}`}
				continue
			}
			out, _ := json.Marshal(Delivered{From: ev.Did, Text: m.Text})
			select {
			case s.pushes <- push{appID: ev.AppId, from: ev.Did, to: m.To, payload: out}:
			default:
				resp.Results[i] = &business.Result_{Code: 2002, Message: "demo server busy"}
			}
		}
	}
	return resp, nil
}

func (s *Server) forward(p push) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.state.Push(ctx, &state.PushRequest{AppId: p.appID, Dids: []string{p.to}, Payload: p.payload})
	if err != nil {
		s.log.Warn("push failed", "to", p.to, "err", err)
		return
	}
	if len(resp.Targets) == 1 && resp.Targets[0].Status == state.PushStatus_OFFLINE && p.from != p.to {
		note, _ := json.Marshal(Delivered{From: "plato-demo", Text: p.to + " is offline"})
		_, _ = s.state.Push(ctx, &state.PushRequest{AppId: p.appID, Dids: []string{p.from}, Payload: note})
	}
}

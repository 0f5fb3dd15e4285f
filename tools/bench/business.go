package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/cloudwego/kitex/server"
	"golang.org/x/time/rate"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
)

// sinkBusiness is the bench's own business server (Options.Business): it accepts every uplink at
// once and pushes nothing back, so the uplink figures are the access layer's (gateway, state server,
// pipeline, the business hop) and not a business server's. The demo business server, by contrast,
// pushes each uplink on (two State.Push calls from one goroutine) and refuses with 2002 when that
// queue is full, which caps an uplink bench at the demo's pace. The platform must route the bench's
// app ID here: plato up --set apps.<app>.business=<addr>.
//
// It also counts what it was given, per did by the seq in the payload's text, so the summary can say
// how many uplinks reached the business and whether any arrived twice.
type sinkBusiness struct {
	ln  net.Listener
	svr server.Server // Kitex; or, for a webhook business, hs at url
	hs  *http.Server
	url string
	// limit, when set (Options.BusinessRate), paces the uplinks it takes: a business server of
	// known capacity, for the overload scenario.
	limit *rate.Limiter

	mu         sync.Mutex
	seen       map[string]*seenSet
	received   uint64
	duplicated uint64
}

func startSink(addr, webhookSecret string, perSec float64) (*sinkBusiness, error) {
	s := &sinkBusiness{seen: map[string]*seenSet{}}
	if perSec > 0 {
		s.limit = rate.NewLimiter(rate.Limit(perSec), max(1, int(perSec/100)))
	}
	if _, ok := webhookHostPort(addr); ok {
		return s, s.serveWebhook(addr, webhookSecret)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench business server: listening on %s: %w", addr, err)
	}
	s.ln = ln
	s.svr = bizservice.NewServer(s, rpc.Server(ln)...)
	go func() { _ = s.svr.Run() }()
	return s, nil
}

// addr is what apps.<app>.business must be: the Kitex address, or the webhook URL.
func (s *sinkBusiness) addr() string {
	if s.url != "" {
		return s.url
	}
	return s.ln.Addr().String()
}

func (s *sinkBusiness) stop() {
	if s.hs != nil {
		_ = s.hs.Close()
		return
	}
	_ = s.svr.Stop()
}

// Deliver implements the Business service: every event is accepted, at the pace of the limit when
// there is one.
func (s *sinkBusiness) Deliver(ctx context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	if s.limit != nil {
		n := 0
		for _, ev := range req.Events {
			if ev.Kind == api.EventKind_UPLINK {
				n++
			}
		}
		for n > 0 { // WaitN refuses more than the burst at once
			k := min(n, s.limit.Burst())
			if err := s.limit.WaitN(ctx, k); err != nil {
				return nil, fmt.Errorf("bench business server: pacing: %w", err)
			}
			n -= k
		}
	}
	resp := &api.DeliverResponse{Results: make([]*api.Result_, len(req.Events))}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ev := range req.Events {
		resp.Results[i] = &api.Result_{}
		if ev.Kind != api.EventKind_UPLINK {
			continue
		}
		s.received++
		seq, ok := uplinkSeq(ev.Payload)
		if !ok {
			continue
		}
		set := s.seen[ev.Did]
		if set == nil {
			set = &seenSet{}
			s.seen[ev.Did] = set
		}
		if first, ok := set.mark(seq); ok && !first {
			s.duplicated++
		}
	}
	return resp, nil
}

// counts returns what was delivered so far and resets, so a baseline pass does not inherit them.
func (s *sinkBusiness) counts() (received, duplicated uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	received, duplicated = s.received, s.duplicated
	s.received, s.duplicated, s.seen = 0, 0, map[string]*seenSet{}
	return received, duplicated
}

// uplinkSeq reads the seq back from a bench uplink's {"to":"...","text":"<seq>"}.
func uplinkSeq(p []byte) (uint64, bool) {
	_, rest, ok := bytes.Cut(p, []byte(`"text":"`))
	if !ok {
		return 0, false
	}
	digits, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	return n, err == nil
}

// Sessions implements the Business service: bench devices join no session at login (the broadcast
// scenario binds them through Plato's RPC).
func (s *sinkBusiness) Sessions(context.Context, *api.SessionsRequest) (*api.SessionsResponse, error) {
	return &api.SessionsResponse{}, nil
}

// Authenticate refuses: bench devices carry JWTs the bench signs, never a callback credential.
func (s *sinkBusiness) Authenticate(context.Context, *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return &api.AuthenticateResponse{Code: 2000, Message: "the bench sink authenticates no one"}, nil
}

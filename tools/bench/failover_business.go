package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cloudwego/kitex/server"

	"github.com/platoim/plato/internal/rpc"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	bizservice "github.com/platoim/plato/sdk/business/rpc/plato/api/business"
)

// foBusiness is the failover scenario's business server: it accepts every uplink and records
// every event. It listens once per state server (each state server is configured with its own
// address), so it knows which state server delivered an event: which one holds a device, and
// through which one a new login came in.
type foBusiness struct {
	lns  []net.Listener
	svrs []server.Server

	mu      sync.Mutex
	dev     map[string]*foBizDevice
	undeliv map[int64]string // msg ID -> did, of UNDELIVERED events
}

// foBizDevice is what the business heard about one did.
type foBizDevice struct {
	connected int // CONNECTED events
	state     int // the listener of the last CONNECTED event (-1: none yet)
	uplinks   uint64
	dups      uint64 // uplinks whose ID came before
	ids       seenSet
	// The first DISCONNECTED event: when it arrived and its close code (slow-consumers).
	disconnectedAt time.Time
	reason         int32
}

// startFoBusiness listens on n free loopback ports.
func startFoBusiness(n int) (*foBusiness, error) {
	b := &foBusiness{dev: map[string]*foBizDevice{}, undeliv: map[int64]string{}}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("bench business server: %w", err)
		}
		svr := bizservice.NewServer(&foBizListener{b: b, state: i}, rpc.Server(ln)...)
		b.lns, b.svrs = append(b.lns, ln), append(b.svrs, svr)
		go func() { _ = svr.Run() }()
	}
	return b, nil
}

// addr is the address state server i delivers to.
func (b *foBusiness) addr(i int) string { return b.lns[i].Addr().String() }

func (b *foBusiness) stop() {
	for _, s := range b.svrs {
		_ = s.Stop()
	}
}

func (b *foBusiness) device(did string) *foBizDevice {
	d := b.dev[did]
	if d == nil {
		d = &foBizDevice{state: -1}
		b.dev[did] = d
	}
	return d
}

// foBizListener is the Business service on one listener.
type foBizListener struct {
	b     *foBusiness
	state int
}

// Deliver records the events and accepts them all.
func (l *foBizListener) Deliver(_ context.Context, req *api.DeliverRequest) (*api.DeliverResponse, error) {
	resp := &api.DeliverResponse{Results: make([]*api.Result_, len(req.Events))}
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, ev := range req.Events {
		resp.Results[i] = &api.Result_{}
		switch ev.Kind {
		case api.EventKind_UPLINK:
			d := b.device(ev.Did)
			d.uplinks++
			if id, ok := uplinkSeq(ev.Payload); ok {
				if first, ok := d.ids.mark(id); ok && !first {
					d.dups++
				}
			}
		case api.EventKind_CONNECTED:
			d := b.device(ev.Did)
			d.connected++
			d.state = l.state
		case api.EventKind_UNDELIVERED:
			b.undeliv[ev.MsgId] = ev.Did
		case api.EventKind_DISCONNECTED:
			if d := b.device(ev.Did); d.disconnectedAt.IsZero() {
				d.disconnectedAt, d.reason = time.Now(), ev.Reason
			}
		}
	}
	return resp, nil
}

// Sessions binds nobody.
func (l *foBizListener) Sessions(context.Context, *api.SessionsRequest) (*api.SessionsResponse, error) {
	return &api.SessionsResponse{}, nil
}

// Authenticate refuses: the bench's devices carry tokens it minted.
func (l *foBizListener) Authenticate(context.Context, *api.AuthenticateRequest) (*api.AuthenticateResponse, error) {
	return &api.AuthenticateResponse{Code: 2000, Message: "the bench authenticates no one"}, nil
}

// disconnected is when the business first heard did was disconnected, and the close code; ok is
// false until then.
func (b *foBusiness) disconnected(did string) (at time.Time, reason int32, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dev[did]
	if d == nil || d.disconnectedAt.IsZero() {
		return time.Time{}, 0, false
	}
	return d.disconnectedAt, d.reason, true
}

// fleetCounts are the uplinks delivered for the run's n devices, how many of them were duplicates,
// and the messages to them reported UNDELIVERED.
func (b *foBusiness) fleetCounts(runID string, n int) (uplinks, dups, undelivered uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range n {
		if d := b.dev[didOf(runID, i)]; d != nil {
			uplinks += d.uplinks
			dups += d.dups
		}
	}
	fleet := map[string]bool{}
	for i := range n {
		fleet[didOf(runID, i)] = true
	}
	for _, did := range b.undeliv {
		if fleet[did] {
			undelivered++
		}
	}
	return uplinks, dups, undelivered
}

// stateOf is the listener through which did's last CONNECTED came, or -1.
func (b *foBusiness) stateOf(did string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.dev[did]; d != nil {
		return d.state
	}
	return -1
}

// connectedOf counts did's CONNECTED events.
func (b *foBusiness) connectedOf(did string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.dev[did]; d != nil {
		return d.connected
	}
	return 0
}

// has reports whether the uplink ID of did was delivered.
func (b *foBusiness) has(did string, id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dev[did]
	return d != nil && d.ids.has(id)
}

// undelivered reports whether an UNDELIVERED event named msgID.
func (b *foBusiness) undelivered(msgID int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.undeliv[msgID]
	return ok
}

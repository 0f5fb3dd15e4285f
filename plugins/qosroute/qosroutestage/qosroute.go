// Package qosroutestage is Plato's reference routing stage: for every business push (the route
// signal, once before the push fans out) it chooses how the push travels and with what QoS.
//
//   - Route: a session push whose session has at least broadcast_min_members members on this
//     state server goes by broadcast (handed once to each gateway, which fans it out); everything
//     else goes direct (one tracked downlink per connection). Direct delivery costs the state
//     server per member; broadcast does not, but tracks nothing per connection.
//   - QoS: the QoS the business asked for, when honor_request is on (the default); otherwise, or
//     when it asked none, qos for direct pushes and broadcast_qos for broadcast ones.
//
// The stage only chooses. The host may downgrade a combination it cannot deliver (at least once
// by broadcast, say); the downlinks then carry the QoS actually used, which the retransmit stage
// reads. The stage keeps no state and calls no Host method, so a failure costs nothing but its
// choice: run it fail_open, and the host falls back to direct delivery with the QoS asked for.
//
// The stage runs as a plugin binary (plugins/qosroute) or, trusted, in the host's process
// (plugin: builtin:qosroute); both use New.
package qosroutestage

import (
	"context"
	"sync/atomic"

	"github.com/platoim/plato/sdk/stage"
)

// Name and Version are what Info reports.
const (
	Name    = "qosroute"
	Version = "1.0.0"
)

// New returns a qosroute stage; it has no opinion until Init has configured it.
func New() stage.Stage { return &QoSRoute{} }

// QoSRoute is the stage. Its handler is safe for concurrent use: it only reads the config Init
// stored.
type QoSRoute struct {
	cfg atomic.Pointer[Config]
}

var (
	_ stage.Stage         = (*QoSRoute)(nil)
	_ stage.RouteHandler  = (*QoSRoute)(nil)
	_ stage.RouteSelector = (*QoSRoute)(nil)
)

// Info names the stage.
func (q *QoSRoute) Info() stage.Info { return stage.Info{Name: Name, Version: Version} }

// Init validates the config (see Config).
func (q *QoSRoute) Init(_ context.Context, req stage.InitRequest) error {
	c, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	q.cfg.Store(&c)
	return nil
}

// RoutesSessionsOnly tells the host it may settle a push naming no session without the stage
// when the config makes the stage's answer the host's own: direct, and the QoS asked for or at
// least once (qos: at_least_once with honor_request on, the default). So the pushes to dids and
// uids cost no event, and only session pushes, whose route this stage chooses, reach it.
func (q *QoSRoute) RoutesSessionsOnly() bool {
	c := q.cfg.Load()
	return c != nil && c.QoS == stage.AtLeastOnce && c.HonorRequest
}

// OnRoute chooses the push's route and QoS; the push always continues.
func (q *QoSRoute) OnRoute(_ context.Context, ev *stage.RouteEvent) stage.Reply {
	c := q.cfg.Load()
	if c == nil {
		return stage.Reply{}
	}
	route, qos := stage.RouteDirect, c.QoS
	if ev.Session != "" && ev.Members >= c.BroadcastMinMembers {
		route, qos = stage.RouteBroadcast, c.BroadcastQoS
	}
	// Only a QoS this stage knows counts as asked for: an unknown value from a newer business
	// client gets the configured one rather than being passed on blindly.
	if c.HonorRequest && (ev.QoS == stage.AtMostOnce || ev.QoS == stage.AtLeastOnce) {
		qos = ev.QoS
	}
	return stage.Routed(route, qos)
}

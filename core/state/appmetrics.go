package state

import (
	"sync/atomic"

	"github.com/platoim/plato/sdk/protocol"
)

// appCounters are one app's counters, so "which tenant is hurting" has an answer in /metrics.
// They exist for declared apps only: the label set is the configuration's, never the devices'.
type appCounters struct {
	uplinks, uplinkFailures, pushes atomic.Int64
}

// appCounters returns app's counters, or nil when the app is not declared.
func (s *Server) appCounters(app string) *appCounters {
	if s.cfg.Apps.Get(app) == nil {
		return nil
	}
	return s.perApp.Of(app)
}

// countUplink counts an answered uplink of app: a failure is one Plato could not deliver
// (13xx: business unreachable or late, overloaded, no business, a failing stage).
func (s *Server) countUplink(app string, code protocol.Code) {
	c := s.appCounters(app)
	if c == nil {
		return
	}
	c.uplinks.Add(1)
	if code >= 1300 && code < 1400 {
		c.uplinkFailures.Add(1)
	}
}

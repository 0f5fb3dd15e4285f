package state

import (
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/sdk/protocol"
)

// appCounters are one app's counters, so "which tenant is hurting" has an answer in /metrics.
// They exist for declared apps only: the label set is the configuration's, never the devices'.
type appCounters struct {
	uplinks, uplinkFailures, pushes atomic.Int64
}

type perApp struct {
	mu    sync.RWMutex
	byApp map[string]*appCounters
}

// of returns app's counters, or nil when the app is not declared.
func (s *Server) appCounters(app string) *appCounters {
	p := &s.perApp
	p.mu.RLock()
	c := p.byApp[app]
	p.mu.RUnlock()
	if c != nil || s.cfg.Apps.Get(app) == nil {
		return c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c = p.byApp[app]; c == nil {
		if p.byApp == nil {
			p.byApp = map[string]*appCounters{}
		}
		c = &appCounters{}
		p.byApp[app] = c
	}
	return c
}

func (p *perApp) each(f func(app string, c *appCounters)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for app, c := range p.byApp {
		f(app, c)
	}
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

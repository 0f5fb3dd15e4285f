// Package retransmitstage is Plato's reference retransmit stage: the policy that makes downlinks
// at-least-once.
//
// The state server keeps every unACKed downlink and its resend timer (on its timing wheel); it
// asks this stage, with the retransmit signal and in batches, what to do about each one: once after
// the downlink's first write (Plato's state server defers that question by half the first wait
// this stage last answered, so most downlinks, ACKed sooner, are never asked about), and again
// after every resend. The stage answers from its config: a
// downlink written fewer than max_attempts times is resent if still unACKed after its wait
// (initial_backoff, doubled per attempt up to max_backoff); one written max_attempts times is
// reported undelivered to the business server if still unACKed after its wait. A disconnect
// reports what is still in flight as undelivered; the state server does that from its own table.
//
// Downlinks whose QoS is AtMostOnce (see the qosroute stage) are left alone: the stage untracks
// them. All others, QoSDefault included, are tracked, because hosts and pushes that predate QoS
// mean at least once.
//
// The stage keeps no state and makes no Host call: it runs as a plugin binary
// (plugins/retransmit) or, trusted, in the host's process (plugin: builtin:retransmit); both use
// New.
package retransmitstage

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// Name and Version are what Info reports. Version 2 answers the retransmit signal; version 1
// tracked downlinks itself, in the host's state, through its downlink, downlink_ack, disconnect
// and timer handlers.
const (
	Name    = "retransmit"
	Version = "2.0.0"
)

// New returns a retransmit stage; it untracks everything until Init has configured it.
func New() stage.Stage { return &Retransmit{} }

// Retransmit is the stage. Its handler is safe for concurrent use.
type Retransmit struct {
	cfg atomic.Pointer[Config]
}

var (
	_ stage.Stage             = (*Retransmit)(nil)
	_ stage.RetransmitHandler = (*Retransmit)(nil)
)

// Info names the stage.
func (r *Retransmit) Info() stage.Info { return stage.Info{Name: Name, Version: Version} }

// Init validates the config (see Config).
func (r *Retransmit) Init(_ context.Context, req stage.InitRequest) error {
	c, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	r.cfg.Store(&c)
	return nil
}

// OnRetransmit answers for one downlink written ev.Attempts times: resend it after its wait, or,
// at max_attempts, report it undelivered after its wait.
func (r *Retransmit) OnRetransmit(_ context.Context, ev *stage.RetransmitEvent) stage.Reply {
	c := r.cfg.Load()
	if c == nil || ev.QoS == stage.AtMostOnce {
		return stage.Untrack()
	}
	wait := c.Backoff(ev.Attempts)
	if ev.Attempts >= c.MaxAttempts {
		return stage.GiveUpAfter(wait)
	}
	return stage.ResendAfter(wait)
}

// Backoff is the wait after the attempts-th write: initial_backoff doubled attempts-1 times, at
// most max_backoff.
func (c Config) Backoff(attempts int) time.Duration {
	d := c.InitialBackoff
	for i := 1; i < attempts && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

package bench

import (
	"context"
	"fmt"
	"strings"
)

// ScenarioOverload measures the platform's uplink capacity, then offers it open-loop uplinks at
// multiples of it (Options.Factors): what is still ACKed, as a ratio to the capacity, what is
// refused (UplinkAck 1303), and whether any connection was closed (docs/performance.md, "Faults").
const ScenarioOverload = "overload"

// DefaultOverloadWindow is the closed loop that finds the capacity: enough uplinks in flight per
// device to keep every hop busy.
const DefaultOverloadWindow = 8

// DefaultOverloadFactors are the offered loads, as multiples of the capacity.
var DefaultOverloadFactors = []float64{1.5, 3}

// OverloadFigures are the overload scenario's account.
type OverloadFigures struct {
	// Capacity is the ACKed uplinks per second of the closed-loop run, CapacityWindow uplinks in
	// flight per device.
	Capacity       float64 `json:"capacity_msgs_per_sec"`
	CapacityWindow int     `json:"capacity_window"`
	// BusinessRate is the cap on the bench's business server (--business-rate), 0 for none: with
	// one, the capacity is the business's and the runs push against it.
	BusinessRate float64       `json:"business_rate,omitempty"`
	Runs         []OverloadRun `json:"runs"`
}

// OverloadRun is one open-loop run at Factor times the capacity.
type OverloadRun struct {
	Factor float64 `json:"factor"`
	// Offered is the rate asked of the devices; Sent what they managed (the bench shares the
	// machine, and skips a send while a connection has too many unanswered).
	Offered     float64 `json:"offered_msgs_per_sec"`
	SentPerSec  float64 `json:"sent_msgs_per_sec"`
	AckedPerSec float64 `json:"acked_msgs_per_sec"`
	// Ratio is AckedPerSec over the capacity: the goal is 0.9 or more.
	Ratio float64 `json:"ratio_to_capacity"`
	// Refused counts UplinkAck 1303; OtherCodes every other refusal; Lost the uplinks never
	// answered.
	Refused    uint64         `json:"refused_1303"`
	OtherCodes map[string]int `json:"other_codes,omitempty"`
	Lost       uint64         `json:"lost"`
	// ConnectionsClosed counts devices the platform closed during the run, with why.
	ConnectionsClosed int            `json:"connections_closed"`
	Closes            map[string]int `json:"closes,omitempty"`
	// Latency is of the ACKed uplinks, in microseconds.
	Latency   Latency `json:"latency_us"`
	ServerCPU float64 `json:"server_cpu_cores"`
	ClientCPU float64 `json:"client_cpu_cores"`
}

// runOverload runs the uplink scenario closed loop for the capacity, then open loop at each
// factor of it, each run against the same platform with fresh connections.
func runOverload(ctx context.Context, o Options) (*Summary, error) {
	loadBefore := loadAverage()
	capRun := o
	capRun.Scenario, capRun.Rate = ScenarioUplink, 0
	if capRun.Window == 0 {
		capRun.Window = DefaultOverloadWindow
	}
	base, err := Run(ctx, capRun)
	if err != nil {
		return nil, fmt.Errorf("measuring the capacity: %w", err)
	}
	if base.MsgsPerSec <= 0 {
		return nil, fmt.Errorf("measuring the capacity: no uplink was ACKed (%v)", base.Notes)
	}
	figs := &OverloadFigures{Capacity: base.MsgsPerSec, CapacityWindow: capRun.Window, BusinessRate: o.BusinessRate}
	notes := []string{fmt.Sprintf("capacity: %d devices, %d uplinks in flight each, closed loop for %v: %.0f ACKed/s", o.Devices, capRun.Window, o.Duration, base.MsgsPerSec)}
	if o.BusinessRate > 0 {
		notes = append(notes, fmt.Sprintf("the bench's business server takes at most %.0f uplinks/s (--business-rate): it is the bottleneck the runs push against", o.BusinessRate))
	} else {
		notes = append(notes, "no business cap: the capacity is the machine's, shared with the bench, whose own work grows with the offered load")
	}
	for _, f := range o.Factors {
		if ctx.Err() != nil {
			break
		}
		run := o
		run.Scenario, run.Window, run.Rate = ScenarioUplink, 0, f*base.MsgsPerSec
		s, err := Run(ctx, run)
		if err != nil {
			return nil, fmt.Errorf("offering %.1fx the capacity: %w", f, err)
		}
		r := OverloadRun{
			Factor: f, Offered: round3(run.Rate), AckedPerSec: s.MsgsPerSec, Ratio: round3(s.MsgsPerSec / base.MsgsPerSec),
			Lost: s.Lost, Latency: s.Latency, ServerCPU: s.ServerCPU, ClientCPU: s.ClientCPU,
		}
		if s.Duration > 0 {
			r.SentPerSec = round3(float64(s.Sent) / s.Duration)
		}
		for code, n := range s.Codes {
			if code == "uplink ack 1303" {
				r.Refused = uint64(n)
				continue
			}
			if r.OtherCodes == nil {
				r.OtherCodes = map[string]int{}
			}
			r.OtherCodes[code] = n
		}
		for why, n := range s.Dropped {
			if strings.HasPrefix(why, "close code") || strings.HasPrefix(why, "read") {
				r.ConnectionsClosed += n
				if r.Closes == nil {
					r.Closes = map[string]int{}
				}
				r.Closes[why] = n
			}
		}
		if r.Ratio > 1.1 {
			notes = append(notes, fmt.Sprintf("%.1fx ACKed %.2f of the capacity: the closed loop did not saturate the platform (give more --devices or a larger --window), so the capacity is understated", f, r.Ratio))
		}
		figs.Runs = append(figs.Runs, r)
		notes = append(notes, fmt.Sprintf("%.1fx: offered %.0f/s, sent %.0f/s, ACKed %.0f/s (%.2f of the capacity), refused 1303: %d, connections closed: %d",
			f, r.Offered, r.SentPerSec, r.AckedPerSec, r.Ratio, r.Refused, r.ConnectionsClosed))
	}
	s := &Summary{Scenario: ScenarioOverload, Devices: o.Devices, Duration: base.Duration, Overload: figs,
		LoadAverage: &LoadAverage{Before: loadBefore, After: loadAverage()}}
	notes = append(notes, fmt.Sprintf("load average before %s, after %s (/proc/loadavg: 1, 5, 15 minutes)", s.LoadAverage.Before, s.LoadAverage.After))
	s.Notes = append(notes, base.Notes...)
	return s, nil
}

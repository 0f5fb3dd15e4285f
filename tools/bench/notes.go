package bench

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// rssNotes says what bytes_per_conn does and does not include.
func rssNotes(pids []int, o Options) []string {
	if len(pids) == 0 {
		return nil
	}
	var out []string
	if slices.Contains(pids, os.Getpid()) {
		out = append(out, "the gateway runs in this process, so bytes_per_conn includes the bench's own devices")
	} else if o.Scenario != "" {
		if state, err := listenerPIDs([]string{o.StateAddr}); err == nil && slices.ContainsFunc(pids, func(p int) bool { return slices.Contains(state, p) }) {
			out = append(out, "the gateway process also runs the state server (plato up), so bytes_per_conn includes its per-connection state")
		}
	}
	out = append(out, fmt.Sprintf("bytes_per_conn is the growth of the resident set of process(es) %v over the connect phase per connection: user-space memory, not kernel socket buffers; only a freshly started server shows it fully (a Go process reuses memory an earlier run freed without growing); server_cpu_cores also counts their child processes (plugins)", pids))
	return out
}

// scenarioNotes explain what the figures of this scenario measure.
func scenarioNotes(s *Summary, o Options) []string {
	var out []string
	switch o.Scenario {
	case ScenarioConnect:
		out = append(out, fmt.Sprintf("devices held their connections for %v after the last login, heartbeating when idle", o.Duration))
	case ScenarioUplink:
		out = append(out, fmt.Sprintf(`uplinks are {"to":%q,"text":"<seq>"}; latency runs from writing the frame to reading its UplinkAck, which the business server's acceptance releases`, o.Sink))
		if s.OtherDownlinks > 0 {
			out = append(out, fmt.Sprintf("the business server pushed %d downlinks back (the demo tells the sender when the recipient is offline); the devices ACKed them, load on top of the uplinks", s.OtherDownlinks))
		}
	case ScenarioDownlink:
		if o.StateHTTP != "" {
			out = append(out, fmt.Sprintf("each push is one POST /v1/apps/%s/push for one did to the HTTP API at %s (JSON, kept-alive connections); latency runs from the request to the device reading the Downlink", o.AppID, o.StateHTTP))
		} else {
			out = append(out, "each push is one Plato Push call for one did; latency runs from the call to the device reading the Downlink")
		}
	case ScenarioBroadcast:
		route := "?"
		if s.Broadcast != nil && s.Broadcast.Route != "" {
			route = s.Broadcast.Route
		}
		out = append(out, fmt.Sprintf("the %d devices are bound to one session through Plato's RPC (Bind); each round is one at-most-once Push to the session, one round every %v, which went %s (the qosroute stage's broadcast_min_members decides); last_device_us is per round the time until the last device had it", o.Devices, o.Interval, route))
	}
	if o.Scenario == ScenarioUplink && s.Refused > 0 {
		msg := fmt.Sprintf("%d of %d uplinks were refused (%s); msgs_per_sec and latency count accepted ones only", s.Refused, s.Sent, formatCounts(s.Codes))
		if s.Codes["uplink ack 2002"] > 0 && o.Business == "" {
			msg += `; 2002 is the demo business server's "busy": it pushes every uplink on from one goroutine and refuses when that queue is full, so this measured the demo. --business ADDR serves uplinks from the bench instead`
		}
		out = append(out, msg)
	}
	if s.Skipped > 0 {
		out = append(out, fmt.Sprintf("open loop: the bench skipped %d sends because too many were outstanding; the platform did not keep up with the rate", s.Skipped))
	}
	if n := len(s.ConnectFailures); n > 0 {
		out = append(out, fmt.Sprintf("%d of %d devices did not connect; see connect_failures", s.Devices-s.Connected, s.Devices))
	}
	return out
}

// formatCounts writes {"a": 1, "b": 2} as "a: 1, b: 2", sorted.
func formatCounts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

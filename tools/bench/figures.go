package bench

import (
	"slices"
	"time"
)

// figures turns a merged target result into the summary's numbers.
func (r *runner) figures(t *targetResult) Figures {
	o := r.opts
	res := &t.res
	f := Figures{
		Connected: t.connect.Connected, Sent: res.Sent, Acked: res.Acked, Refused: res.Refused, Lost: res.Lost,
		Duplicated: res.Duplicated, Unexpected: res.Unexpected, Skipped: res.Skipped,
		ConnectLatency: latencyOf(t.connect.Latency), ConnectFailures: t.connect.Failures,
		Codes: mergeCounts(mergeCounts(nil, res.Codes), t.pushCodes), Dropped: res.Dropped,
		Heartbeats: Heartbeats{Sent: res.HeartbeatSent, Acked: res.HeartbeatAck, AckedMeasured: res.HeartbeatAckMeasured}, OtherDownlinks: res.OtherDownlinks,
		Retransmitted: res.Retransmitted, PushBatchCalls: res.PushCalls,
		hist: &t.hist, perSec: measuredSeconds(res.PerSec, t.measured), sentPerSec: measuredSeconds(res.SentPerSec, t.measured),
	}
	if secs := float64(t.connect.End-t.connect.Start) / 1e9; secs > 0 && t.connect.Connected > 0 {
		f.ConnectRate = round3(float64(t.connect.Connected) / secs)
	}
	if c := t.connect.Connected; c > 0 {
		f.BytesPerConn = round3(float64(max(0, t.serverRSS)) / float64(c))
		f.ClientBytesPerConn = round3(float64(max(0, t.clientRSS)) / float64(c))
		f.Servers = r.serverFigures(t)
	}
	if secs := t.measured.Seconds(); secs > 0 {
		f.MsgsPerSec = round3(float64(res.Acked) / secs)
		f.ServerCPU = round3(t.serverCPU / secs)
		f.ClientCPU = round3(t.clientCPU / secs)
		f.ParentCPU = round3(t.parentCPU / secs)
		if res.Acked > 0 && o.Scenario != ScenarioConnect {
			f.ServerCPUPerMsg = round3(t.serverCPU * 1e6 / float64(res.Acked))
		}
		if n := res.HeartbeatAckMeasured; n > 0 && o.Scenario == ScenarioConnect {
			f.ServerCPUPerHeartbeat = round3(t.serverCPU * 1e6 / float64(n))
		}
	}
	if res.PushCalls > 0 {
		f.PushesPerCall = round3(float64(res.Sent) / float64(res.PushCalls))
	}
	f.Latency = latencyOf(&t.hist)
	switch o.Scenario {
	case ScenarioConnect:
		f.Sent, f.Acked, f.MsgsPerSec = uint64(t.connect.Attempted), uint64(t.connect.Connected), 0
		var dropped int
		for _, n := range res.Dropped {
			dropped += n
		}
		f.Lost = uint64(t.connect.Attempted-t.connect.Connected) + uint64(dropped)
		f.Latency = f.ConnectLatency
		f.hist = t.connect.Latency
	case ScenarioBroadcast:
		f.Broadcast = broadcastFigures(t, o.Devices)
		f.Sent, f.Refused, f.Lost = 0, 0, 0
		for k, ro := range t.rounds {
			f.Sent += ro.expected + ro.refused
			f.Refused += ro.refused
			if got := res.Rounds[k].Received; ro.expected > got {
				f.Lost += ro.expected - got
			}
		}
	}
	return f
}

// serverFigures break bytes_per_conn down by server process, when there are several and each
// endpoint's processes are known. Device i went to endpoint i % len, so each endpoint's share is
// known; it is exact when every device connected.
func (r *runner) serverFigures(t *targetResult) []ServerFigures {
	eps := t.endpoints
	if len(eps) < 2 || len(t.byEndpoint) != len(eps) {
		return nil
	}
	var state []int
	if r.opts.StateAddr != "" {
		state, _ = listenerPIDs([]string{r.opts.StateAddr})
	}
	seen := map[int]bool{}
	var out []ServerFigures
	for k, ep := range eps {
		pids := t.byEndpoint[ep]
		devices := r.opts.Devices / len(eps)
		if k < r.opts.Devices%len(eps) {
			devices++
		}
		sf := ServerFigures{Endpoint: ep, PIDs: pids, Devices: devices}
		var growth int64
		for _, p := range pids {
			if seen[p] {
				return nil // one process behind two endpoints: no per-endpoint split
			}
			seen[p] = true
			growth += t.rssGrowth[p]
			sf.WithState = sf.WithState || slices.Contains(state, p)
		}
		if devices > 0 {
			sf.BytesPerConn = round3(float64(max(0, growth)) / float64(devices))
		}
		out = append(out, sf)
	}
	return out
}

// gatewayProcesses finds the processes listening on each endpoint.
func gatewayProcesses(endpoints []string) ([]int, map[string][]int, error) {
	by := map[string][]int{}
	var all []int
	for _, ep := range endpoints {
		pids, err := listenerPIDs([]string{endpointAddr(ep)})
		if err != nil {
			return nil, nil, err
		}
		by[ep] = pids
		for _, p := range pids {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	return all, by, nil
}

func broadcastFigures(t *targetResult, devices int) *BroadcastFigures {
	b := &BroadcastFigures{Targets: devices, Calls: t.calls, Route: t.route}
	var last Histogram
	for k, ro := range t.rounds {
		if ro.expected == 0 && ro.refused == 0 {
			continue
		}
		b.Rounds++
		got := t.res.Rounds[k]
		if got.Received > 0 {
			last.Record(got.Last)
		}
		if ro.expected > 0 && got.Received >= ro.expected {
			b.Complete++
		}
	}
	b.LastDevice = latencyOf(&last)
	return b
}

// measuredSeconds keeps the whole seconds of the measured phase: answers that arrive in the drain
// land after it and would draw a collapse that did not happen.
func measuredSeconds(perSec []uint64, measured time.Duration) []uint64 {
	n := max(1, int(measured/time.Second))
	return perSec[:min(n, len(perSec))]
}

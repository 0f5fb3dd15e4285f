package main

import (
	"testing"
	"time"
)

// slowSummary is the part of `plato bench slow-consumers`'s JSON line the test checks.
type slowSummary struct {
	benchHeader
	SlowConsumers *struct {
		Conditions struct {
			Stalled                int
			MaxStallMs             float64 `json:"max_stall_ms"`
			KernelSocketSendBuffer float64 `json:"kernel_socket_send_buffer"`
		}
		Stalled, Cut, NotCut int
		CutCodes             map[string]int `json:"cut_codes"`
		TimeToCut            quantiles      `json:"time_to_cut"`
		AboveThreshold       quantiles      `json:"above_threshold_to_cut"`
		StalledSaw           struct {
			Close1205 int `json:"close_1205"`
			EndOnly   int `json:"end_of_stream_only"`
			StillOpen int `json:"still_open"`
		} `json:"stalled_devices_saw"`
		Healthy struct {
			Devices                  int
			Accepted, Received, Lost uint64
			Disconnected             int
			P99Ratio                 float64 `json:"p99_ratio"`
			WithCount                uint64  `json:"with_count"`
			WithoutCount             uint64  `json:"without_count"`
		}
		Gateway struct {
			SlowConsumers    float64 `json:"slow_consumers"`
			Closed1205       float64 `json:"closed_1205"`
			SocketSendBuffer float64 `json:"socket_send_buffer_bytes"`
		}
	} `json:"slow_consumers"`
}

type quantiles struct {
	P50 float64 `json:"p50_ms"`
	Max float64 `json:"max_ms"`
}

// TestBenchSlowConsumers runs `plato bench slow-consumers` as the built binary, which starts its
// own platform (NATS in-process, a state server and a gateway re-executed from the binary) with a
// 1 s stall, and has 4 of 40 devices stop reading while pushes flood them. It asserts behaviour,
// never speed: every stalled device was closed with 1205 (within ten times the stall, a generous
// bound the gateway's own check keeps to max_stall plus two of its looks), none of the others was,
// they got every push accepted for them, and the figures the docs quote are there.
func TestBenchSlowConsumers(t *testing.T) {
	var s slowSummary
	run := runBenchScenario(t, 90*time.Second, &s, "slow-consumers", "--devices", "40", "--stalled", "10%",
		"--stalled-rate", "50", "--size", "2048", "--rate", "200", "--warmup", "2s", "--duration", "20s",
		"--max-stall", "1s", "--max-unsent", "16384", "--send-buffer", "4096", "--device-rcvbuf", "4096")
	sc := s.SlowConsumers
	if s.Scenario != "slow-consumers" || s.Devices != 40 || s.Connected != 40 || sc == nil || sc.Stalled != 4 || sc.Conditions.Stalled != 4 {
		run.fatal()
	}
	// The gateway closes them with 1205; the business may hear 1211 for one that a push found
	// gone before the close event arrived (SlowFigures.CutCodes).
	if sc.Cut != 4 || sc.NotCut != 0 || sc.CutCodes["1205"]+sc.CutCodes["1211"] != 4 {
		run.fail("cut %d (codes %v), not cut %d: want all 4 closed", sc.Cut, sc.CutCodes, sc.NotCut)
	}
	if tc := sc.TimeToCut; tc.P50 <= 0 || tc.P50 > tc.Max || tc.Max > 10*sc.Conditions.MaxStallMs {
		run.fail("time to cut %+v", tc)
	}
	if at := sc.AboveThreshold; at.P50 <= 0 || at.P50 > at.Max || at.Max > 10*sc.Conditions.MaxStallMs {
		run.fail("time above the threshold before the cut %+v", at)
	}
	if saw := sc.StalledSaw; saw.StillOpen != 0 || saw.Close1205+saw.EndOnly != 4 {
		run.fail("stalled devices saw %+v: each must find its socket closed", saw)
	}
	h := sc.Healthy
	// Received may pass Accepted: a push call the end of the pushing cut short is not counted
	// accepted, though the device may have it.
	if h.Devices != 36 || h.Accepted == 0 || h.Received < h.Accepted || h.Lost != 0 || h.Disconnected != 0 {
		run.fail("healthy devices %+v", h)
	}
	if h.WithCount == 0 || h.WithoutCount == 0 || h.P99Ratio <= 0 {
		run.fail("no latency with and without stalled devices: %+v", h)
	}
	if g := sc.Gateway; g.SlowConsumers != 4 || g.Closed1205 != 4 || g.SocketSendBuffer <= 0 || g.SocketSendBuffer > 2*4096 || sc.Conditions.KernelSocketSendBuffer != g.SocketSendBuffer {
		run.fail("gateway %+v: want 4 slow consumers, 4 closed with 1205 and a send buffer of at most 8192", g)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}

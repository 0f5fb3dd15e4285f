package main

import (
	"testing"
	"time"
)

// natsRestartSummary is the part of `plato bench nats-restart`'s JSON line the test checks.
type natsRestartSummary struct {
	benchHeader
	NATSRestart *struct {
		DownMs              float64 `json:"down_ms"`
		IPConfFreshMs       float64 `json:"ipconf_fresh_ms"`
		NodesReregisteredMs float64 `json:"nodes_reregistered_ms"`
		ConvergedMs         float64 `json:"converged_ms"`
		NewGateway          struct {
			UpMs          float64 `json:"up_ms"`
			SeenByStateMs float64 `json:"seen_by_state_ms"`
			InIPConfMs    float64 `json:"in_ipconf_ms"`
		} `json:"new_gateway"`
		IPConf struct {
			Outage answers
			After  answers `json:"after_restart"`
		}
		Devices struct {
			Connected, Disconnected int
			Before, Outage          phase
			After                   phase `json:"after_restart"`
		}
		BucketCreates float64 `json:"bucket_creates"`
	} `json:"nats_restart"`
}

type answers struct {
	Fresh, Stale, Other int
	Unavailable         int `json:"503"`
}

type phase struct{ Sent, Acked int }

// TestBenchNATSRestart runs `plato bench nats-restart` as the built binary, which starts its own
// platform (NATS as a `plato nats` process, a state server, a gateway and ipconf re-executed from
// the binary), kills NATS and starts it again. It asserts behaviour, never speed: ipconf answered
// stale lists and no 503 while NATS was away, the platform converged (the bucket created again,
// the nodes registered again, ipconf fresh), a gateway started afterwards was seen by the state
// server and ipconf, and the devices kept their connections and got their uplinks through.
func TestBenchNATSRestart(t *testing.T) {
	var s natsRestartSummary
	run := runBenchScenario(t, 2*time.Minute, &s, "nats-restart", "--devices", "20",
		"--warmup", "1s", "--after-kill", "2s", "--after-restart", "45s")
	f := s.NATSRestart
	if s.Scenario != "nats-restart" || s.Devices != 20 || s.Connected != 20 || f == nil {
		run.fatal()
	}
	if f.DownMs < 2000 || f.IPConfFreshMs < 0 || f.NodesReregisteredMs < 0 || f.ConvergedMs != max(f.IPConfFreshMs, f.NodesReregisteredMs) {
		run.fail("did not converge: down %v, ipconf fresh %v, re-registered %v, converged %v", f.DownMs, f.IPConfFreshMs, f.NodesReregisteredMs, f.ConvergedMs)
	}
	if g := f.NewGateway; g.UpMs < f.ConvergedMs || g.SeenByStateMs < 0 || g.InIPConfMs < 0 {
		run.fail("the new gateway %+v", g)
	}
	if o := f.IPConf.Outage; o.Stale == 0 || o.Unavailable != 0 || o.Fresh != 0 {
		run.fail("ipconf during the outage %+v: want stale answers only", o)
	}
	if a := f.IPConf.After; a.Fresh == 0 || a.Unavailable != 0 {
		run.fail("ipconf after the restart %+v", a)
	}
	if f.BucketCreates < 1 {
		run.fail("no role created the registry bucket again")
	}
	d := f.Devices
	if d.Connected != 20 || d.Disconnected != 0 || d.Outage.Sent == 0 || d.Outage.Acked != d.Outage.Sent || d.After.Acked != d.After.Sent || d.After.Sent == 0 {
		run.fail("devices %+v", d)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}

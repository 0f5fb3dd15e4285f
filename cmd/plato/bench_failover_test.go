package main

import (
	"testing"
	"time"
)

// failoverSummary is the part of `plato bench failover`'s JSON line the test checks.
type failoverSummary struct {
	benchHeader
	Failover *struct {
		Killed struct {
			ID      string
			Devices int
		}
		EveryDeviceWorkingMs float64 `json:"every_device_working_ms"`
		Recovery             struct {
			All    recoveryStats
			Killed recoveryStats `json:"killed_server"`
		}
		Relogins struct {
			Devices, Logins         int
			BusinessConnectedMinusN int `json:"business_connected_minus_n"`
		}
		Uplinks struct {
			Sent, Acked, Unanswered uint64
			AckedIDs                uint64 `json:"acked_ids_checked"`
			AckedLost               uint64 `json:"acked_lost"`
			Ack1210                 uint64 `json:"ack_1210"`
			Resent                  uint64
			BusinessReceived        uint64 `json:"business_received"`
		}
		Pushes struct {
			Accepted, Delivered, Unaccounted uint64
			UndeliveredReported              uint64 `json:"undelivered_reported"`
		}
		Restart struct {
			Errors    int
			NewLogins struct {
				Attempted, OK int
				OnRestarted   int `json:"on_restarted_server"`
			} `json:"new_logins"`
		}
		Gateway struct {
			StatesLost       float64 `json:"states_lost"`
			ConnectionsMoved float64 `json:"connections_moved"`
		}
	}
}

type recoveryStats struct {
	Devices, Recovered int
	P50                float64 `json:"p50_ms"`
	P99                float64 `json:"p99_ms"`
	Max                float64 `json:"max_ms"`
}

// TestBenchFailover runs `plato bench failover` as the built binary, which starts its own
// platform (NATS in-process, two state servers and a gateway re-executed from the binary), kills
// a state server under load and restarts it. It asserts behaviour, never speed: every device got
// an uplink through after the kill, none had to log in again, no ACKed uplink or accepted push was
// lost, and new devices log in through the restarted state server.
func TestBenchFailover(t *testing.T) {
	var s failoverSummary
	run := runBenchScenario(t, 90*time.Second, &s, "failover", "--devices", "50", "--rate", "500", "--push-rate", "50",
		"--warmup", "1s", "--after-kill", "3s", "--after-restart", "2s", "--drain", "5s")
	f := s.Failover
	if s.Scenario != "failover" || s.Devices != 50 || s.Connected != 50 || f == nil {
		run.fatal()
	}
	if f.Killed.ID == "" || f.Killed.Devices < 1 || f.Killed.Devices >= 50 || f.Recovery.Killed.Devices != f.Killed.Devices {
		run.fail("killed %+v, recovery of its devices %+v", f.Killed, f.Recovery.Killed)
	}
	if a := f.Recovery.All; a.Devices != 50 || a.Recovered != 50 || f.EveryDeviceWorkingMs < 0 || a.Max != f.EveryDeviceWorkingMs || a.P50 > a.P99 || a.P99 > a.Max {
		run.fail("recovery %+v, every device working %v ms", a, f.EveryDeviceWorkingMs)
	}
	if r := f.Relogins; r.Devices != 0 || r.Logins != 0 || r.BusinessConnectedMinusN != 0 {
		run.fail("devices had to log in again: %+v", r)
	}
	if u := f.Uplinks; u.Acked == 0 || u.AckedIDs == 0 || u.AckedLost != 0 || u.Unanswered != 0 || u.Resent != u.Ack1210 || u.BusinessReceived < u.AckedIDs {
		run.fail("uplinks %+v", u)
	}
	if p := f.Pushes; p.Accepted == 0 || p.Unaccounted != 0 || p.Delivered+p.UndeliveredReported != p.Accepted {
		run.fail("pushes %+v", p)
	}
	if nl := f.Restart.NewLogins; nl.OK == 0 || nl.OnRestarted == 0 {
		run.fail("new logins after the restart %+v", nl)
	}
	if g := f.Gateway; g.StatesLost < 1 || g.ConnectionsMoved < float64(f.Killed.Devices) {
		run.fail("gateway %+v", g)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}

package main

import (
	"testing"
	"time"
)

// upgradeSummary is the part of `plato bench upgrade`'s JSON line the test checks.
type upgradeSummary struct {
	benchHeader
	Failover *struct {
		Conditions struct {
			Gateways int
		}
		Relogins struct {
			Devices, Logins         int
			BusinessConnectedMinusN int `json:"business_connected_minus_n"`
		}
		Uplinks struct {
			Acked     uint64
			AckedIDs  uint64 `json:"acked_ids_checked"`
			AckedLost uint64 `json:"acked_lost"`
		}
		Pushes struct {
			Accepted, Delivered, Unaccounted uint64
		}
		Upgrade *struct {
			OldPID             int     `json:"old_pid"`
			NewPID             int     `json:"new_pid"`
			Handed             int     `json:"handed"`
			Redirected         int     `json:"redirected"`
			HandoverMs         float64 `json:"handover_ms"`
			ConnectionsDropped int     `json:"connections_dropped"`
			Relogins           int     `json:"relogins"`
			Gap                struct {
				Devices int     `json:"devices"`
				Max     float64 `json:"max_ms"`
			} `json:"gap"`
			LongestWait float64 `json:"longest_uplink_wait_ms"`
			PIDsChanged int     `json:"pids_changed"`
			Gateways    []struct {
				ID         string
				Devices    int
				OldPID     int `json:"old_pid"`
				NewPID     int `json:"new_pid"`
				Handed     int
				Redirected int
				HandoverMs float64 `json:"handover_ms"`
			}
		}
	}
}

// TestBenchUpgrade runs `plato bench upgrade` as the built binary, which starts its own platform
// (NATS in-process, two state servers and a gateway re-executed from the binary) and upgrades the
// gateway in place under load. It asserts behaviour, never speed: the pid changed, every device
// was handed over and none dropped or logged in again, no ACKed uplink or accepted push was lost,
// and every device was answered across the upgrade.
func TestBenchUpgrade(t *testing.T) {
	var s upgradeSummary
	run := runBenchScenario(t, 90*time.Second, &s, "upgrade", "--devices", "50", "--rate", "200", "--push-rate", "20",
		"--warmup", "1s", "--after-kill", "2s", "--drain", "5s")
	f := s.Failover
	if s.Scenario != "upgrade" || s.Devices != 50 || s.Connected != 50 || f == nil || f.Upgrade == nil {
		run.fatal()
	}
	u := f.Upgrade
	if u.OldPID == 0 || u.NewPID == 0 || u.OldPID == u.NewPID || u.Handed != 50 || u.Redirected != 0 || u.HandoverMs < 0 {
		run.fail("upgrade %+v", u)
	}
	if u.ConnectionsDropped != 0 || u.Relogins != 0 || f.Relogins.Devices != 0 || f.Relogins.BusinessConnectedMinusN != 0 {
		run.fail("devices noticed the upgrade: %+v, relogins %+v", u, f.Relogins)
	}
	if up := f.Uplinks; up.Acked == 0 || up.AckedIDs == 0 || up.AckedLost != 0 {
		run.fail("uplinks %+v", up)
	}
	if p := f.Pushes; p.Accepted == 0 || p.Unaccounted != 0 || p.Delivered != p.Accepted {
		run.fail("pushes %+v", p)
	}
	if u.Gap.Devices != 50 || u.Gap.Max <= 0 || u.LongestWait <= 0 {
		run.fail("not every device answered across the upgrade: %+v", u)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}

// TestBenchUpgradeGateways runs `plato bench upgrade --gateways 2`: two gateway processes, the
// devices spread over them, upgraded one after the other. Every gateway's pid changed and each
// handed over all of its devices; nothing was dropped or lost.
func TestBenchUpgradeGateways(t *testing.T) {
	var s upgradeSummary
	run := runBenchScenario(t, 120*time.Second, &s, "upgrade", "--gateways", "2", "--devices", "40", "--rate", "160", "--push-rate", "20",
		"--warmup", "1s", "--after-kill", "2s", "--drain", "5s")
	f := s.Failover
	if s.Scenario != "upgrade" || s.Devices != 40 || s.Connected != 40 || f == nil || f.Upgrade == nil || f.Conditions.Gateways != 2 {
		run.fatal()
	}
	u := f.Upgrade
	if len(u.Gateways) != 2 || u.PIDsChanged != 2 || u.Handed != 40 || u.Redirected != 0 {
		run.fatal()
	}
	pids := map[int]bool{}
	for _, g := range u.Gateways {
		if g.OldPID == 0 || g.NewPID == 0 || g.OldPID == g.NewPID || pids[g.OldPID] || pids[g.NewPID] {
			run.fail("gateway %s: pids %d -> %d (seen %v)", g.ID, g.OldPID, g.NewPID, pids)
		}
		pids[g.OldPID], pids[g.NewPID] = true, true
		if g.Devices != 20 || g.Handed != g.Devices || g.Redirected != 0 || g.HandoverMs < 0 {
			run.fail("gateway %+v: not every device it held was handed over", g)
		}
	}
	if u.ConnectionsDropped != 0 || u.Relogins != 0 || f.Relogins.Devices != 0 || f.Relogins.BusinessConnectedMinusN != 0 {
		run.fail("devices noticed the upgrades: %+v, relogins %+v", u, f.Relogins)
	}
	if up := f.Uplinks; up.Acked == 0 || up.AckedIDs == 0 || up.AckedLost != 0 {
		run.fail("uplinks %+v", up)
	}
	if p := f.Pushes; p.Accepted == 0 || p.Unaccounted != 0 || p.Delivered != p.Accepted {
		run.fail("pushes %+v", p)
	}
	if u.Gap.Devices != 40 || u.LongestWait <= 0 {
		run.fail("not every device answered across the upgrades: %+v", u)
	}
	if !s.loadAverageNoted() {
		run.fail("no load average")
	}
}

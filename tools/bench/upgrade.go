package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The upgrade scenario is the failover scenario's platform and load (failover.go) with another
// fault: after --warmup the bench asks the gateway to upgrade in place (docs/operations.md,
// "Upgrading a gateway"), through its control socket as `plato gateway upgrade` does, and goes on
// for --after-kill. The devices are told the instant as they are a kill's, so their gap across it
// and their recovery are measured the same way. With --gateways N the platform runs N gateway
// processes, the devices spread over them, and the bench upgrades them one after the other, as an
// operator would, each once the one before has answered; --after-kill then runs from the start of
// the last one's upgrade.

// MaxDevicesPerGateway is the most devices the bench puts on one gateway process: a process may
// hold 20,000 open files here, and a gateway needs some for itself (listeners, state servers,
// NATS, its control socket, the upgrade's passing).
const MaxDevicesPerGateway = 19_000

// MaxGatewayProcs bounds --gateways.
const MaxGatewayProcs = 16

// validateGatewayProcs checks --gateways against the scenario and the devices.
func (o *Options) validateGatewayProcs(bad func(format string, a ...any)) {
	n := o.GatewayProcs
	if n < 1 || n > MaxGatewayProcs {
		bad("gateways %d: must be 1 to %d", n, MaxGatewayProcs)
		return
	}
	if n > 1 && o.Scenario != ScenarioUpgrade {
		bad("--gateways applies to the upgrade scenario only")
		return
	}
	if per := (o.Devices + n - 1) / n; per > MaxDevicesPerGateway {
		bad("devices %d over %d gateway(s) is %d per gateway: one gateway process holds at most %d here (20,000 open files per process); give --gateways %d or more",
			o.Devices, n, per, MaxDevicesPerGateway, (o.Devices+MaxDevicesPerGateway-1)/MaxDevicesPerGateway)
	}
	if o.Workers > 0 && o.Workers%n != 0 {
		bad("workers %d: with --gateways %d, give a multiple of %d (each worker's devices go to one gateway, the workers taking the gateways in turn)", o.Workers, n, n)
	}
}

// gatewayWorkers is how many worker processes carry the devices by default: at most PerWorker
// devices each, and as many for every gateway.
func gatewayWorkers(o Options) int {
	n := max(1, o.GatewayProcs)
	w := (o.Devices + o.PerWorker - 1) / o.PerWorker
	return (w + n - 1) / n * n
}

// upgradeOutcome is the gateway's answer on its control socket (gateway.UpgradeResult).
type upgradeOutcome struct {
	OK             bool   `json:"ok"`
	Err            string `json:"error"`
	OldPID         int    `json:"old_pid"`
	NewPID         int    `json:"new_pid"`
	Handed         int    `json:"handed"`
	Redirected     int    `json:"redirected"`
	Forwarded      int64  `json:"forwarded"`
	ReadyMillis    int64  `json:"ready_ms"`
	HandoverMillis int64  `json:"handover_ms"`
	// tookMs is the call, as the bench saw it.
	tookMs float64
}

// UpgradeFigures are what the upgrade scenario measured: the failover object's "upgrade". With
// several gateways the pids are the first one's, the counts sums, and the times the longest of
// any gateway; Gateways has each one's.
type UpgradeFigures struct {
	OldPID int `json:"old_pid"`
	NewPID int `json:"new_pid"`
	// Handed connections went to the new process, Redirected could not; Forwarded frames reached
	// the old process after their connection left it.
	Handed     int   `json:"handed"`
	Redirected int   `json:"redirected"`
	Forwarded  int64 `json:"forwarded"`
	// ReadyMs is the new process's start until ready; HandoverMs from then until every
	// connection was passed; CallMs the whole upgrade as the bench waited for it.
	ReadyMs    float64 `json:"ready_ms"`
	HandoverMs float64 `json:"handover_ms"`
	CallMs     float64 `json:"call_ms"`
	// SequenceMs is from the first upgrade's start to the last one's answer (several gateways).
	SequenceMs float64 `json:"sequence_ms"`
	// PIDsChanged counts the gateways whose process changed (goal: every one).
	PIDsChanged int              `json:"pids_changed"`
	Gateways    []GatewayUpgrade `json:"gateways"`
	// ConnectionsDropped counts the device connections that ended during the run (goal 0);
	// Relogins the logins that followed.
	ConnectionsDropped int `json:"connections_dropped"`
	Relogins           int `json:"relogins"`
	// DroppedBeforeUpgrade are those of ConnectionsDropped that ended during the warm-up, before
	// any upgrade (an overloaded machine's state servers missing their pings, say).
	DroppedBeforeUpgrade int `json:"connections_dropped_before_upgrade"`
	// Gap is, over the devices, the time between the last answer (UplinkAck 0 or push) a device
	// got before the upgrade and its first after it: the pause it saw, plus up to one interval
	// between its uplinks (conditions.uplink_interval_ms).
	Gap GapStats `json:"gap"`
	// LongestWaitMs is the longest any uplink waited for its UplinkAck 0 from the upgrade on: the
	// longest pause a device saw; LongestWaitBeforeMs the same before the upgrade, for comparison.
	LongestWaitMs       float64 `json:"longest_uplink_wait_ms"`
	LongestWaitBeforeMs float64 `json:"longest_uplink_wait_before_ms"`
	// LongestWaitEndedMs is when that longest wait ended, from the start of the upgrade.
	LongestWaitEndedMs float64 `json:"longest_uplink_wait_ended_ms"`
}

// GatewayUpgrade is one gateway's upgrade, in the order they were upgraded.
type GatewayUpgrade struct {
	ID string `json:"id"`
	// Devices is how many of the fleet's devices the bench put on it.
	Devices    int     `json:"devices"`
	OldPID     int     `json:"old_pid"`
	NewPID     int     `json:"new_pid"`
	Handed     int     `json:"handed"`
	Redirected int     `json:"redirected"`
	Forwarded  int64   `json:"forwarded"`
	ReadyMs    float64 `json:"ready_ms"`
	HandoverMs float64 `json:"handover_ms"`
	CallMs     float64 `json:"call_ms"`
}

// GapStats summarizes the devices' gaps across the upgrade.
type GapStats struct {
	Devices int     `json:"devices"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// upgradeGateways upgrades the gateways one after the other, reading the workers' reports all
// along, and goes on for after from the start of the last upgrade.
func (p *foPlatform) upgradeGateways(ctx context.Context, col *collector, after time.Duration) ([]upgradeOutcome, error) {
	var outs []upgradeOutcome
	for k, g := range p.gws {
		until := time.Now()
		if k == len(p.gws)-1 {
			until = until.Add(after)
		}
		out, err := g.upgrade(ctx, col, until)
		if err != nil {
			return outs, fmt.Errorf("%s: %w", g.id, err)
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// upgrade asks the gateway to upgrade and keeps reading the workers' reports meanwhile and until
// until. The new process is the gateway from then on.
func (g *foGateway) upgrade(ctx context.Context, col *collector, until time.Time) (upgradeOutcome, error) {
	path := filepath.Join(g.dataDir, "gateway-"+strconv.Itoa(g.pid())+".ctl")
	done := make(chan upgradeOutcome, 1)
	errc := make(chan error, 1)
	go func() {
		start := time.Now()
		out, err := callUpgrade(path)
		out.tookMs = nsToMs(int64(time.Since(start)))
		if err != nil {
			errc <- err
			return
		}
		done <- out
	}()
	var out upgradeOutcome
	var callErr error
	finished := false
	if err := col.pump(ctx, until.Add(2*procStartTimeout), func() bool {
		if !finished {
			select {
			case out = <-done:
				finished = true
			case callErr = <-errc:
				finished = true
			default:
			}
		}
		return finished && !time.Now().Before(until)
	}); err != nil {
		return out, err
	}
	if callErr != nil {
		return out, fmt.Errorf("upgrading the gateway: %w", callErr)
	}
	if !finished {
		return out, errors.New("the gateway did not answer its upgrade in time")
	}
	if !out.OK {
		return out, fmt.Errorf("the gateway refused to upgrade: %s", out.Err)
	}
	g.next = out.NewPID
	return out, nil
}

func callUpgrade(path string) (upgradeOutcome, error) {
	var out upgradeOutcome
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return out, fmt.Errorf("reaching the gateway's control socket: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write([]byte("upgrade\n")); err != nil {
		return out, err
	}
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&out); err != nil {
		return out, fmt.Errorf("reading the outcome: %w", err)
	}
	return out, nil
}

// pids are the platform's processes now serving: the state servers and the gateways.
func (p *foPlatform) pids() []int {
	pids := []int{p.states[0].cmd.Process.Pid, p.states[1].cmd.Process.Pid}
	for _, g := range p.gws {
		pids = append(pids, g.pid())
	}
	return pids
}

// stopUpgraded stops the process an upgrade started (not the bench's child): SIGINT, then SIGKILL.
func (g *foGateway) stopUpgraded() {
	if g.next == 0 {
		return
	}
	pid := g.next
	_ = syscall.Kill(pid, syscall.SIGINT)
	deadline := time.Now().Add(procStopTimeout)
	for processRuns(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processRuns reports whether pid runs (a zombie does not).
func processRuns(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2] != 'Z'
		}
	}
	return true
}

func upgradeFigures(outs []upgradeOutcome, gws []*foGateway, devices []int, frs []*FailoverWorkerResult, o Options) *UpgradeFigures {
	u := &UpgradeFigures{}
	for k, out := range outs {
		g := GatewayUpgrade{
			ID: gws[k].id, Devices: devices[k], OldPID: out.OldPID, NewPID: out.NewPID, Handed: out.Handed, Redirected: out.Redirected,
			Forwarded: out.Forwarded, ReadyMs: float64(out.ReadyMillis), HandoverMs: float64(out.HandoverMillis), CallMs: round3(out.tookMs),
		}
		u.Gateways = append(u.Gateways, g)
		if k == 0 {
			u.OldPID, u.NewPID = g.OldPID, g.NewPID
		}
		if g.OldPID != 0 && g.NewPID != 0 && g.OldPID != g.NewPID {
			u.PIDsChanged++
		}
		u.Handed += g.Handed
		u.Redirected += g.Redirected
		u.Forwarded += g.Forwarded
		u.ReadyMs, u.HandoverMs, u.CallMs = max(u.ReadyMs, g.ReadyMs), max(u.HandoverMs, g.HandoverMs), max(u.CallMs, g.CallMs)
		u.SequenceMs += g.CallMs
	}
	u.SequenceMs = round3(u.SequenceMs)
	var gaps []int64
	for _, fr := range frs {
		for i, p := range fr.Phases {
			for _, n := range p.Dropped {
				u.ConnectionsDropped += n
				if i == 0 {
					u.DroppedBeforeUpgrade += n
				}
			}
			u.Relogins += p.Relogins
		}
		if w := nsToMs(fr.MaxWaitAfter); w > u.LongestWaitMs {
			u.LongestWaitMs, u.LongestWaitEndedMs = w, nsToMs(fr.MaxWaitAt)
		}
		u.LongestWaitBeforeMs = max(u.LongestWaitBeforeMs, nsToMs(fr.MaxWaitBefore))
		for _, g := range fr.Gap {
			if g > 0 {
				gaps = append(gaps, g)
			}
		}
	}
	slices.Sort(gaps)
	if n := len(gaps); n > 0 {
		u.Gap = GapStats{Devices: n, P50: nsToMs(gaps[n/2]), P99: nsToMs(gaps[min(n-1, n*99/100)]), Max: nsToMs(gaps[n-1])}
	}
	return u
}

func upgradeNotes(s *Summary, o Options) []string {
	u := s.Failover.Upgrade
	var first string
	if len(u.Gateways) == 1 {
		first = fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, two state servers and one gateway as plato processes, all on 127.0.0.1; after %v it upgraded the gateway in place through its control socket (as plato gateway upgrade does: the same binary re-executed), pid %d -> %d, and went on for %v",
			o.Warmup, u.OldPID, u.NewPID, o.AfterKill)
	} else {
		var each []string
		for _, g := range u.Gateways {
			each = append(each, fmt.Sprintf("%s (%d devices) pid %d -> %d, %d handed, %d redirected, handover %.0f ms", g.ID, g.Devices, g.OldPID, g.NewPID, g.Handed, g.Redirected, g.HandoverMs))
		}
		first = fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, two state servers and %d gateways as plato processes (each its own ports, data directory and control socket), all on 127.0.0.1; after %v it upgraded the gateways in place one after the other through their control sockets (as plato gateway upgrade does), each once the one before answered, in %.0f ms in all, and went on for %v from the start of the last: %s; a device's gap is across the start of the first upgrade, the longest uplink wait covers them all",
			len(u.Gateways), o.Warmup, u.SequenceMs, o.AfterKill, strings.Join(each, "; "))
	}
	out := []string{
		first,
		fmt.Sprintf("each device sent an uplink every %.0f ms (%g/s in total) and the business pushed %g/s at least once; a device's gap is from its last answer before the upgrade to its first after it, so it includes up to one interval between its uplinks even with no pause at all",
			float64(o.Devices)/o.Rate*1000, o.Rate, o.PushRate),
		"the failover object's killed and restart fields do not apply to this scenario (no state server was killed)",
	}
	// An overloaded machine can make a gateway miss its state servers' pings: their connections
	// then move (failover), which the gateway object counts.
	if g := s.Failover.Gateway; g.Errors > 0 || g.Warnings > 0 || g.StatesLost > 0 {
		out = append(out, fmt.Sprintf("from the upgrade on, the platform processes logged %d errors and %d warnings, the gateways counted %g state servers lost and %g connections moved, among them: %s",
			g.Errors, g.Warnings, g.StatesLost, g.ConnectionsMoved, strings.Join(g.samples, " | ")))
	}
	return out
}

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
	"syscall"
	"time"
)

// The upgrade scenario is the failover scenario's platform and load (failover.go) with another
// fault: after --warmup the bench asks the gateway to upgrade in place (docs/operations.md,
// "Upgrading a gateway"), through its control socket as `plato gateway upgrade` does, and goes on
// for --after-kill. The devices are told the instant as they are a kill's, so their gap across it
// and their recovery are measured the same way.

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

// UpgradeFigures are what the upgrade scenario measured: the failover object's "upgrade".
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
	// ConnectionsDropped counts the device connections that ended during the run (goal 0);
	// Relogins the logins that followed.
	ConnectionsDropped int `json:"connections_dropped"`
	Relogins           int `json:"relogins"`
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

// GapStats summarizes the devices' gaps across the upgrade.
type GapStats struct {
	Devices int     `json:"devices"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// upgradeGateway asks the gateway to upgrade and keeps reading the workers' reports meanwhile and
// until until. The new process is the platform's gateway from then on.
func (p *foPlatform) upgradeGateway(ctx context.Context, col *collector, until time.Time) (upgradeOutcome, error) {
	pid := p.gwPID()
	path := filepath.Join(p.dir, "data", "gateway-"+strconv.Itoa(pid)+".ctl")
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
	p.gwNext = out.NewPID
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

// gwPID is the gateway process now serving.
func (p *foPlatform) gwPID() int {
	if p.gwNext != 0 {
		return p.gwNext
	}
	return p.gw.cmd.Process.Pid
}

// stopUpgraded stops the process an upgrade started (not the bench's child): SIGINT, then SIGKILL.
func (p *foPlatform) stopUpgraded() {
	if p.gwNext == 0 {
		return
	}
	pid := p.gwNext
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

func upgradeFigures(out upgradeOutcome, frs []*FailoverWorkerResult, o Options) *UpgradeFigures {
	u := &UpgradeFigures{
		OldPID: out.OldPID, NewPID: out.NewPID, Handed: out.Handed, Redirected: out.Redirected, Forwarded: out.Forwarded,
		ReadyMs: float64(out.ReadyMillis), HandoverMs: float64(out.HandoverMillis), CallMs: round3(out.tookMs),
	}
	var gaps []int64
	for _, fr := range frs {
		for _, p := range fr.Phases {
			for _, n := range p.Dropped {
				u.ConnectionsDropped += n
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
	return []string{
		fmt.Sprintf("the bench ran its own platform: NATS (embedded) and its business server in this process, two state servers and one gateway as plato processes, all on 127.0.0.1; after %v it upgraded the gateway in place through its control socket (as plato gateway upgrade does: the same binary re-executed), pid %d -> %d, and went on for %v",
			o.Warmup, u.OldPID, u.NewPID, o.AfterKill),
		fmt.Sprintf("each device sent an uplink every %.0f ms (%g/s in total) and the business pushed %g/s at least once; a device's gap is from its last answer before the upgrade to its first after it, so it includes up to one interval between its uplinks even with no pause at all",
			float64(o.Devices)/o.Rate*1000, o.Rate, o.PushRate),
		"the failover object's killed and restart fields do not apply to this scenario (no state server was killed)",
	}
}

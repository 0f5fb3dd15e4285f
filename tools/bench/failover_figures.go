package bench

import (
	"maps"
	"math"
	"slices"
)

// FailoverFigures are what `plato bench failover` measured: the summary's "failover" object.
type FailoverFigures struct {
	Conditions FailoverConditions `json:"conditions"`
	Killed     KilledState        `json:"killed"`
	// EveryDeviceWorkingMs is the time from the kill until every device had an uplink sent after
	// the kill ACKed (code 0): recovery.all.max_ms when every device recovered, else -1.
	EveryDeviceWorkingMs float64 `json:"every_device_working_ms"`
	Recovery             struct {
		All    RecoveryStats `json:"all"`
		Killed RecoveryStats `json:"killed_server"`
		Others RecoveryStats `json:"other_server"`
	} `json:"recovery"`
	Relogins ReloginFigures  `json:"relogins"`
	Uplinks  FailoverUplinks `json:"uplinks"`
	Pushes   FailoverPushes  `json:"pushes"`
	Restart  RestartFigures  `json:"restart"`
	Gateway  GatewayFigures  `json:"gateway"`
	Phases   []PhaseFigures  `json:"phases"`
	// Goals are the targets, met or not.
	Goals FailoverGoals `json:"goals"`
	// Upgrade is what the upgrade scenario measured (upgrade.go); nil for failover.
	Upgrade *UpgradeFigures `json:"upgrade,omitempty"`
}

// FailoverConditions are the run's settings.
type FailoverConditions struct {
	Devices int `json:"devices"`
	// UplinkRate and PushRate are offered per second over all devices; UplinkIntervalMs is the
	// time between two uplinks of one device, which bounds how finely recovery is seen.
	UplinkRate       float64 `json:"uplink_rate"`
	PushRate         float64 `json:"push_rate"`
	UplinkIntervalMs float64 `json:"uplink_interval_ms"`
	WarmupS          float64 `json:"warmup_s"`
	AfterKillS       float64 `json:"after_kill_s"`
	AfterRestartS    float64 `json:"after_restart_s"`
	StateServers     int     `json:"state_servers"`
	Gateways         int     `json:"gateways"`
	// The gateway's liveness check of each state server (defaults: config gateway.*).
	StatePingIntervalMs float64 `json:"state_ping_interval_ms"`
	StatePingsLost      int     `json:"state_pings_lost"`
	// RegistryTTLS is how long the killed state server stays in the registry.
	RegistryTTLS float64 `json:"registry_ttl_s"`
}

// KilledState is the state server killed (SIGKILL) and the one that carried on.
type KilledState struct {
	ID       string `json:"id"`
	Survivor string `json:"survivor"`
	// Devices are those it held at the kill (from the business server's CONNECTED events).
	Devices int `json:"devices"`
	// LagUs is how late the kill was on the instant the devices were given, in µs.
	LagUs float64 `json:"lag_us"`
}

// RecoveryStats are, over a set of devices, the time from the kill until each got an uplink it
// sent after the kill ACKed with code 0 (which includes the wait for its first such uplink: up to
// one uplink interval), and FromFirstTry the time from that first uplink to the ACK (which does
// not).
type RecoveryStats struct {
	Devices      int       `json:"devices"`
	Recovered    int       `json:"recovered"`
	P50          float64   `json:"p50_ms"`
	P99          float64   `json:"p99_ms"`
	Max          float64   `json:"max_ms"`
	FromFirstTry Quantiles `json:"from_first_try"`
}

// Quantiles of a set of durations, in ms.
type Quantiles struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// ReloginFigures count the devices that had to log in again, from their own view and from the
// business server's: CONNECTED events beyond one per device.
type ReloginFigures struct {
	Devices                 int `json:"devices"`
	Logins                  int `json:"logins"`
	BusinessConnectedMinusN int `json:"business_connected_minus_n"`
}

// FailoverUplinks account every uplink. AckedLost are uplinks a device saw ACKed (code 0) that
// the business server never received: it must be 0.
type FailoverUplinks struct {
	Sent     uint64 `json:"sent"`
	Acked    uint64 `json:"acked"`
	AckedIDs uint64 `json:"acked_ids_checked"`
	// AckedLost are ACKed uplink IDs the business never got.
	AckedLost uint64 `json:"acked_lost"`
	// Ack1210 are UplinkAcks 1210 (the state server was lost with the uplink); each was sent
	// again (Resent).
	Ack1210 uint64 `json:"ack_1210"`
	Resent  uint64 `json:"resent"`
	// Refused counts the other non-zero codes.
	Refused map[string]int `json:"refused,omitempty"`
	// UnknownOnClose were pending on a connection that ended; Unanswered still pending at the
	// end on a live one.
	UnknownOnClose uint64 `json:"unknown_on_close"`
	Unanswered     uint64 `json:"unanswered"`
	Skipped        uint64 `json:"skipped"`
	// BusinessReceived and BusinessDuplicates are what the business server got: a duplicate is
	// an ID it had already (a 1210 resend of an uplink that had reached it).
	BusinessReceived   uint64 `json:"business_received"`
	BusinessDuplicates uint64 `json:"business_duplicates"`
}

// FailoverPushes account every at-least-once push: each accepted one (SENT, QUEUED, ACKED) must
// be delivered or reported UNDELIVERED to the business; Unaccounted are neither.
type FailoverPushes struct {
	Attempted           uint64         `json:"attempted"`
	Accepted            uint64         `json:"accepted"`
	Delivered           uint64         `json:"delivered"`
	UndeliveredReported uint64         `json:"undelivered_reported"`
	Unaccounted         uint64         `json:"unaccounted"`
	Refused             map[string]int `json:"refused,omitempty"`
	Skipped             uint64         `json:"skipped"`
	Duplicates          uint64         `json:"duplicates"`
	Retransmitted       uint64         `json:"retransmitted"`
	Unsolicited         uint64         `json:"unsolicited"`
	UndeliveredEvents   uint64         `json:"undelivered_events"`
}

// RestartFigures are the killed state server's return: errors the devices saw from the restart
// on, and logins of new devices afterwards.
type RestartFigures struct {
	// RunningMs is from starting the process to its "Plato is running".
	RunningMs  float64        `json:"running_ms"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	NewLogins  NewLogins      `json:"new_logins"`
}

// NewLogins are devices logged in after the restart, one uplink each.
type NewLogins struct {
	Attempted int `json:"attempted"`
	OK        int `json:"ok"`
	// OnRestarted came in through the restarted state server; FirstOnRestartedMs is from the
	// restart to the first of them.
	OnRestarted        int            `json:"on_restarted_server"`
	FirstOnRestartedMs float64        `json:"first_on_restarted_ms"`
	Failures           map[string]int `json:"failures,omitempty"`
}

// GatewayFigures are the gateway's own account: DetectedMs from the kill to its log line that it
// lost the state server (-1: none seen), and its counters.
type GatewayFigures struct {
	DetectedMs       float64 `json:"detected_ms"`
	StatesLost       float64 `json:"states_lost"`
	ConnectionsMoved float64 `json:"connections_moved"`
	// Errors and Warnings count the platform processes' log lines from the kill on.
	Errors   int `json:"log_errors"`
	Warnings int `json:"log_warnings"`

	samples []string // a few distinct log lines, for the notes
}

// PhaseFigures are one phase's counts.
type PhaseFigures struct {
	Name string `json:"name"`
	PhaseCounts
}

// FailoverGoals are the targets.
type FailoverGoals struct {
	EveryDeviceUnder1s bool `json:"every_device_working_under_1s"`
	NoRelogin          bool `json:"no_relogin"`
	NoAckedUplinkLost  bool `json:"no_acked_uplink_lost"`
	EveryPushAccounted bool `json:"every_push_accounted"`
}

// foInputs is what the figures are computed from: the workers' results and what the business
// server saw.
type foInputs struct {
	runID   string
	results []*FailoverWorkerResult
	// killLag is how late the kill was on the armed instant, ns: the workers' times count from
	// the armed instant.
	killLag int64
	// onVictim says whether device idx was on the killed state server at the kill.
	onVictim func(idx int) bool
	// connected counts the business's CONNECTED events for did; delivered says whether it got
	// uplink ID id of did; undelivered whether an UNDELIVERED event named msgID.
	connected   func(did string) int
	delivered   func(did string, id uint64) bool
	undelivered func(msgID int64) bool
}

// computeFailover derives the figures that come from the devices and the business; the caller
// fills in the conditions, the restart's logins and the gateway's figures.
func computeFailover(in foInputs) FailoverFigures {
	var ff FailoverFigures
	var all, killed, others recoverySet
	var phases [numPhases]PhaseCounts
	u, pu := &ff.Uplinks, &ff.Pushes
	devices := 0
	for _, r := range in.results {
		absent := map[int]bool{}
		for _, i := range r.Absent {
			absent[i] = true
		}
		for k := range r.Recovered {
			idx := r.First + k
			if absent[idx] {
				continue
			}
			devices++
			did := didOf(in.runID, idx)
			rec, try := r.Recovered[k], r.FirstTry[k]
			set := &others
			if in.onVictim(idx) {
				set = &killed
			}
			for _, s := range []*recoverySet{&all, set} {
				s.add(rec, try, in.killLag)
			}
			if k < len(r.Acked) {
				rs := r.Acked[k]
				for i := 0; i+1 < len(rs); i += 2 {
					for id := rs[i]; id <= rs[i+1]; id++ {
						u.AckedIDs++
						if !in.delivered(did, id) {
							u.AckedLost++
						}
					}
				}
			}
			ff.Relogins.BusinessConnectedMinusN += in.connected(did)
		}
		for _, n := range r.Relogins {
			ff.Relogins.Devices++
			ff.Relogins.Logins += n
		}
		for i := range numPhases {
			addPhase(&phases[i], &r.Phases[i])
		}
		u.Unanswered += r.Unanswered
		pu.Delivered += r.Delivered
		pu.Duplicates += r.Duplicates
		pu.Retransmitted += r.Retransmitted
		pu.Unsolicited += r.Unsolicited
		for _, m := range r.Missing {
			if in.undelivered(m.MsgID) {
				pu.UndeliveredReported++
			} else {
				pu.Unaccounted++
			}
		}
	}
	ff.Relogins.BusinessConnectedMinusN -= devices
	ff.Recovery.All, ff.Recovery.Killed, ff.Recovery.Others = all.stats(), killed.stats(), others.stats()
	ff.EveryDeviceWorkingMs = -1
	if a := ff.Recovery.All; a.Devices > 0 && a.Recovered == a.Devices {
		ff.EveryDeviceWorkingMs = a.Max
	}
	for i := range numPhases {
		p := phases[i]
		ff.Phases = append(ff.Phases, PhaseFigures{Name: phaseNames[i], PhaseCounts: p})
		u.Sent += p.Sent
		u.Acked += p.Acked
		u.Resent += p.Resent
		u.UnknownOnClose += p.Unknown
		u.Skipped += p.Skipped
		for code, n := range p.Codes {
			if code == "uplink ack 1210" {
				u.Ack1210 += uint64(n)
			} else {
				u.Refused = mergeCounts(u.Refused, map[string]int{code: n})
			}
		}
		pu.Attempted += p.Pushed
		pu.Accepted += p.PushAccepted
		pu.Skipped += p.PushSkipped
		pu.Refused = mergeCounts(pu.Refused, p.PushRefused)
	}
	ff.Restart.ErrorKinds = phaseErrors(&phases[phaseAfterRestart])
	for _, n := range ff.Restart.ErrorKinds {
		ff.Restart.Errors += n
	}
	ff.Goals = FailoverGoals{
		EveryDeviceUnder1s: ff.EveryDeviceWorkingMs >= 0 && ff.EveryDeviceWorkingMs < 1000,
		NoRelogin:          ff.Relogins.Devices == 0 && ff.Relogins.BusinessConnectedMinusN == 0,
		NoAckedUplinkLost:  u.AckedLost == 0,
		EveryPushAccounted: pu.Unaccounted == 0,
	}
	return ff
}

// phaseErrors lists what went wrong in a phase, by kind.
func phaseErrors(p *PhaseCounts) map[string]int {
	out := map[string]int{}
	maps.Copy(out, p.Codes)
	for reason, n := range p.Dropped {
		out["connection ended: "+reason] += n
	}
	for why, n := range p.PushRefused {
		out[why] += n
	}
	if p.Unknown > 0 {
		out["uplink outcome unknown (its connection ended)"] += int(p.Unknown)
	}
	if p.Skipped > 0 {
		out["uplink not sent (device logging in again, or too many outstanding)"] += int(p.Skipped)
	}
	if p.Relogins > 0 {
		out["device logged in again"] += p.Relogins
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func addPhase(dst, src *PhaseCounts) {
	dst.Sent += src.Sent
	dst.Acked += src.Acked
	dst.Resent += src.Resent
	dst.Codes = mergeCounts(dst.Codes, src.Codes)
	dst.Unknown += src.Unknown
	dst.Skipped += src.Skipped
	dst.Dropped = mergeCounts(dst.Dropped, src.Dropped)
	dst.Relogins += src.Relogins
	dst.Pushed += src.Pushed
	dst.PushAccepted += src.PushAccepted
	dst.PushRefused = mergeCounts(dst.PushRefused, src.PushRefused)
	dst.PushSkipped += src.PushSkipped
}

// recoverySet gathers devices' recovery times, in ns from the kill.
type recoverySet struct {
	devices  int
	recovery []int64
	fromTry  []int64
}

// add counts one device: rec and try are from the armed instant (-1: none); lag moves them to
// the kill.
func (s *recoverySet) add(rec, try, lag int64) {
	s.devices++
	if rec < 0 {
		return
	}
	s.recovery = append(s.recovery, max(0, rec-lag))
	if try >= 0 && try <= rec {
		s.fromTry = append(s.fromTry, rec-try)
	}
}

func (s *recoverySet) stats() RecoveryStats {
	q := quantilesMs(s.recovery)
	return RecoveryStats{Devices: s.devices, Recovered: len(s.recovery), P50: q.P50, P99: q.P99, Max: q.Max, FromFirstTry: quantilesMs(s.fromTry)}
}

// quantilesMs are the exact nearest-rank p50, p99 and max of ns values, in ms to the µs.
func quantilesMs(v []int64) Quantiles {
	if len(v) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return nsToMs(s[max(0, min(i, len(s)-1))])
	}
	return Quantiles{P50: at(0.5), P99: at(0.99), Max: nsToMs(s[len(s)-1])}
}

func nsToMs(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

package bench

import (
	"encoding/json"
	"math"
)

// Summary is the bench's result: the JSON line `plato bench` prints on stdout. Plato's figures are
// at the top level; with --baseline the echo server's are under "baseline" and "ratios" divides
// Plato's by them (so below 1 is slower for rates, above 1 is slower for latency and memory).
type Summary struct {
	Scenario string `json:"scenario"`
	Devices  int    `json:"devices"`
	// Duration is the measured phase in seconds (after every device connected, before the drain).
	Duration float64 `json:"duration"`
	// Mode is "closed" (Window in flight per device) or "open" (Rate per second in total), for
	// uplink and downlink.
	Mode   string  `json:"mode,omitempty"`
	Window int     `json:"window,omitempty"`
	Rate   float64 `json:"rate,omitempty"`
	Figures
	Baseline *Figures `json:"baseline,omitempty"`
	// BaselineRate is the open loop's rate the baseline was offered, when --baseline-rate set it
	// apart from Rate; there is then no msgs_per_sec ratio.
	BaselineRate float64            `json:"baseline_rate,omitempty"`
	Ratios       map[string]float64 `json:"ratios,omitempty"`
	// Workers is how many processes carried the devices (0: this process).
	Workers int `json:"workers"`
	// Failover is the failover scenario's account (failover_figures.go).
	Failover *FailoverFigures `json:"failover,omitempty"`
	// Overload is the overload scenario's account (overload.go).
	Overload *OverloadFigures `json:"overload,omitempty"`
	// CrashLoop is the crashloop scenario's account (crashloop.go).
	CrashLoop *CrashLoopFigures `json:"crashloop,omitempty"`
	// NATSRestart is the nats-restart scenario's account (natsrestart.go).
	NATSRestart *NATSRestartFigures `json:"nats_restart,omitempty"`
	// AppsLive is the apps-live scenario's account (appslive.go).
	AppsLive *AppsLiveFigures `json:"apps_live,omitempty"`
	// Migrate is the migrate scenario's account (migrate.go).
	Migrate *MigrateFigures `json:"migrate,omitempty"`
	// SlowConsumers is the slow-consumers scenario's account (slow.go).
	SlowConsumers *SlowFigures `json:"slow_consumers,omitempty"`
	// LoadAverage is the machine's, before and after the run.
	LoadAverage *LoadAverage `json:"load_average,omitempty"`
	Notes       []string     `json:"notes"`
}

// Figures are one target's results. For uplink, sent/acked count uplinks and their ACKs (code 0);
// for downlink and broadcast, deliveries pushed and received; for connect, logins attempted and
// succeeded. lost = sent - acked - refused, counted after the drain; duplicated counts answers or
// deliveries seen twice.
type Figures struct {
	Connected  int     `json:"connected"`
	Sent       uint64  `json:"sent"`
	Acked      uint64  `json:"acked"`
	Refused    uint64  `json:"refused"`
	Lost       uint64  `json:"lost"`
	Duplicated uint64  `json:"duplicated"`
	Unexpected uint64  `json:"unexpected"`
	Skipped    uint64  `json:"skipped"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// Latency is frame sent to UplinkAck (uplink), push call to device receipt (downlink,
	// broadcast), or token request to LoginAck (connect).
	Latency        Latency `json:"latency_us"`
	ConnectRate    float64 `json:"connect_rate"`
	ConnectLatency Latency `json:"connect_latency_us"`
	// BytesPerConn is the server processes' RSS growth over the connect phase per connection.
	BytesPerConn float64 `json:"bytes_per_conn"`
	// BytesPerConnRefused says why BytesPerConn is 0 (connect): no heartbeat flowed, so it would
	// not be the memory of connections that heartbeat.
	BytesPerConnRefused string `json:"bytes_per_conn_refused,omitempty"`
	// ClientBytesPerConn is the same for the bench's own workers: its overhead.
	ClientBytesPerConn float64 `json:"client_bytes_per_conn"`
	// ServerCPU and ClientCPU are the cores the server processes and the bench's workers kept busy
	// during the measured phase (CPU seconds per second).
	ServerCPU float64 `json:"server_cpu_cores"`
	ClientCPU float64 `json:"client_cpu_cores"`
	// ParentCPU is the cores the bench's parent process kept busy when its workers are processes
	// of their own: its business server (--business), which answers every uplink on the same
	// machine, and the coordination. 0 when the parent runs the devices itself (in ClientCPU).
	ParentCPU float64 `json:"bench_parent_cpu_cores,omitempty"`
	// ServerCPUPerMsg is the server processes' CPU time over the measured phase divided by the
	// messages answered (uplinks ACKed, downlinks received), in microseconds.
	ServerCPUPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	// ServerCPUPerHeartbeat (connect) is the server processes' CPU time over the measured phase
	// divided by the HeartbeatAcks the devices received in it, in microseconds: with idle devices
	// the heartbeats are nearly all the work.
	ServerCPUPerHeartbeat float64        `json:"server_cpu_us_per_heartbeat,omitempty"`
	ConnectFailures       map[string]int `json:"connect_failures,omitempty"`
	Codes                 map[string]int `json:"codes,omitempty"`
	Dropped               map[string]int `json:"dropped,omitempty"`
	Heartbeats            Heartbeats     `json:"heartbeats"`
	OtherDownlinks        uint64         `json:"other_downlinks,omitempty"`
	// Retransmitted counts downlinks that arrived with the retransmit flag (the retransmit stage
	// resent them); duplicates are usually these.
	Retransmitted uint64 `json:"retransmitted,omitempty"`
	// PushBatchCalls and PushesPerCall (downlink --batch): the PushBatch calls made, and the mean
	// pushes each carried (the batches natural batching made).
	PushBatchCalls uint64            `json:"push_batch_calls,omitempty"`
	PushesPerCall  float64           `json:"pushes_per_call,omitempty"`
	Broadcast      *BroadcastFigures `json:"broadcast,omitempty"`
	// Servers break BytesPerConn down by server process when devices went to several.
	Servers []ServerFigures `json:"servers,omitempty"`
	// Business is what the bench's own business server (--business) was delivered.
	Business *BusinessFigures `json:"business,omitempty"`

	// For the HTML report.
	hist       *Histogram
	perSec     []uint64
	sentPerSec []uint64
}

// ServerFigures are one server process's share: the devices sent to its endpoint and its RSS
// growth per device. WithState marks a process that also runs the state server (plato up).
type ServerFigures struct {
	Endpoint     string  `json:"endpoint"`
	PIDs         []int   `json:"pids"`
	Devices      int     `json:"devices"`
	BytesPerConn float64 `json:"bytes_per_conn"`
	// BytesPerConnRefused says why BytesPerConn is 0 (connect): no heartbeat flowed, so it would
	// not be the memory of connections that heartbeat.
	BytesPerConnRefused string `json:"bytes_per_conn_refused,omitempty"`
	WithState           bool   `json:"with_state,omitempty"`
}

// BusinessFigures count the uplinks the bench's business server received: received should equal
// acked (an ACK means the business has the message); duplicated counts a (did, seq) seen twice.
type BusinessFigures struct {
	Received   uint64 `json:"received"`
	Duplicated uint64 `json:"duplicated"`
}

// Heartbeats counts the devices' heartbeats and their answers.
type Heartbeats struct {
	Sent  uint64 `json:"sent"`
	Acked uint64 `json:"acked"`
	// AckedMeasured are those acked during the measured phase.
	AckedMeasured uint64 `json:"acked_measured,omitempty"`
}

// BroadcastFigures describe the rounds of a broadcast.
type BroadcastFigures struct {
	Rounds  int `json:"rounds"`
	Targets int `json:"targets"`
	// Calls is how many push calls one round took: one session push for Plato; the baseline's echo
	// server takes at most a few thousand dids per call.
	Calls int `json:"calls_per_round"`
	// LastDevice is, over the rounds, the time until the last device had the round's message.
	LastDevice Latency `json:"last_device_us"`
	// Complete counts rounds that every target received.
	Complete int `json:"complete_rounds"`
	// Route is the path Plato's session pushes took: direct or broadcast (empty for the baseline).
	Route string `json:"route,omitempty"`
}

// Latency is a distribution in microseconds (0.1 µs resolution).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// latencyOf summarises a histogram of nanoseconds.
func latencyOf(h *Histogram) Latency {
	if h == nil || h.Count() == 0 {
		return Latency{}
	}
	us := func(ns float64) float64 { return math.Round(ns/100) / 10 }
	return Latency{
		P50: us(float64(h.Quantile(0.5))), P90: us(float64(h.Quantile(0.9))), P99: us(float64(h.Quantile(0.99))),
		P999: us(float64(h.Quantile(0.999))), Max: us(float64(h.Max())), Mean: us(h.Mean()),
	}
}

// ratios divides Plato's figures by the baseline's, for those both have.
func ratios(p, b *Figures) map[string]float64 {
	out := map[string]float64{}
	add := func(name string, x, y float64) {
		if x > 0 && y > 0 {
			out[name] = math.Round(x/y*1000) / 1000
		}
	}
	add("msgs_per_sec", p.MsgsPerSec, b.MsgsPerSec)
	add("latency_p50", p.Latency.P50, b.Latency.P50)
	add("latency_p99", p.Latency.P99, b.Latency.P99)
	add("connect_rate", p.ConnectRate, b.ConnectRate)
	add("bytes_per_conn", p.BytesPerConn, b.BytesPerConn)
	if len(out) == 0 {
		return nil
	}
	return out
}

// coresBusy is every core the pass kept busy: the server processes, the bench's workers and its
// parent (the business server), what a baseline at --baseline-rate is compared by.
func (f *Figures) coresBusy() float64 { return f.ServerCPU + f.ClientCPU + f.ParentCPU }

// JSON is the summary as one line (no newline).
func (s *Summary) JSON() ([]byte, error) { return json.Marshal(s) }

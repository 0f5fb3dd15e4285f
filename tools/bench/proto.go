package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// The parent and its workers talk in JSON lines. The parent writes a WorkerSpec as the first line of
// the worker's stdin, then commands ("start <unix ns>", "stop"); the worker writes Reports to its
// stdout. A worker whose stdin ends (the parent died) stops at once, so no worker outlives its
// parent by more than a moment, and every worker also stops by itself at its spec's deadline.

// Worker roles.
const (
	roleDevices  = "devices"  // a share of the simulated devices
	roleEcho     = "echo"     // the baseline server
	roleFailover = "failover" // a share of the failover scenario's devices (failover_worker.go)
)

// WorkerSpec is everything a worker needs; it travels on stdin so the token secret never shows in
// a process listing.
type WorkerSpec struct {
	Role     string `json:"role"`
	Worker   int    `json:"worker"`
	Scenario string `json:"scenario,omitempty"`
	AppID    string `json:"app_id,omitempty"`
	AppKey   string `json:"app_key,omitempty"`
	// RunID prefixes every did, so two runs (or Plato and baseline) never share a device.
	RunID string `json:"run_id,omitempty"`
	// First and Count are this worker's device indexes: First .. First+Count-1.
	First int `json:"first"`
	Count int `json:"count"`
	// Endpoints are the gateways (or echo servers); device i uses Endpoints[i % len].
	Endpoints []string `json:"endpoints,omitempty"`
	// SourceIP, when set, is the local address every connection binds to.
	SourceIP string `json:"source_ip,omitempty"`
	// TokenMode is "mint" (sign locally with TokenSecret), "ipconf" (GET /ip/list per device) or
	// "none" (a placeholder of the same length: the echo server checks nothing).
	TokenMode   string `json:"token_mode,omitempty"`
	TokenSecret string `json:"token_secret,omitempty"`
	// CredentialSecret and CredentialKID sign the device credentials shown to ipconf.
	CredentialSecret string `json:"credential_secret,omitempty"`
	CredentialKID    string `json:"credential_kid,omitempty"`
	IPConfURL        string `json:"ipconf_url,omitempty"`
	// StateAddr is where downlink pushes go (Plato); with EchoPush they go to the echo servers.
	StateAddr string `json:"state_addr,omitempty"`
	// StateHTTP, when set, is the state server's HTTP API the downlink pushes go through instead.
	StateHTTP   string        `json:"state_http,omitempty"`
	EchoPush    bool          `json:"echo_push,omitempty"`
	Window      int           `json:"window,omitempty"`
	Batch       int           `json:"batch,omitempty"` // downlink: PushBatch of at most this many
	Rate        float64       `json:"rate,omitempty"`  // this worker's share, per second
	Duration    time.Duration `json:"duration"`
	Interval    time.Duration `json:"interval,omitempty"`  // broadcast rounds
	Heartbeat   time.Duration `json:"heartbeat,omitempty"` // 0: the server's heartbeat_ms
	Concurrency int           `json:"concurrency,omitempty"`
	ConnectRate float64       `json:"connect_rate,omitempty"` // this worker's share, logins per second; 0: unpaced
	Sink        string        `json:"sink,omitempty"`
	Drain       time.Duration `json:"drain,omitempty"`
	// PushRate is this worker's share of the failover scenario's pushes per second, which it makes
	// itself through the State service at StateAddr.
	PushRate float64 `json:"push_rate,omitempty"`
	// ConnectBy ends the connect phase: devices not logged in by then count as failed.
	ConnectBy time.Time `json:"connect_by"`
	// Deadline is when the worker gives up whatever it is doing and exits (wall clock).
	Deadline time.Time `json:"deadline"`
	// Listen is the echo server's address (port 0 picks one).
	Listen string `json:"listen,omitempty"`
}

// Report types.
const (
	repListening = "listening" // echo: Addr is up
	repReady     = "ready"     // devices: the connect phase is over
	repTick      = "tick"      // devices: once a second while running
	repResult    = "result"    // devices: the end
	repError     = "error"     // either: a fatal error; the worker exits
	repArmed     = "armed"     // failover: the worker knows the instant of the kill or restart (At)
)

// Report is one line a worker writes.
type Report struct {
	Type   string `json:"type"`
	Worker int    `json:"worker"`
	PID    int    `json:"pid,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Error  string `json:"error,omitempty"`
	// ready
	Connect *ConnectResult `json:"connect,omitempty"`
	// tick: cumulative counts so far
	Sec   int    `json:"sec,omitempty"`
	Sent  uint64 `json:"sent,omitempty"`
	Done  uint64 `json:"done,omitempty"`
	Conns int    `json:"conns,omitempty"`
	// Recovered (failover) counts the devices that got an uplink through since the kill.
	Recovered int `json:"recovered,omitempty"`
	// At (armed) is the instant armed, unix ns.
	At int64 `json:"at,omitempty"`
	// result
	Result *WorkerResult `json:"result,omitempty"`
	// Failover is a failover worker's result.
	Failover *FailoverWorkerResult `json:"failover,omitempty"`
}

// ConnectResult is a worker's connect phase.
type ConnectResult struct {
	Attempted int `json:"attempted"`
	Connected int `json:"connected"`
	// Start and End are wall-clock Unix nanoseconds of the first dial and the last LoginAck, so the
	// parent can compute one connect rate over all workers.
	Start   int64      `json:"start"`
	End     int64      `json:"end"`
	Latency *Histogram `json:"latency"` // dial to LoginAck, ns
	// Failures counts why devices did not log in ("login code 1303", "dial: ...").
	Failures map[string]int `json:"failures,omitempty"`
	// RSSBefore and RSSAfter are this worker's own resident set around the connect phase.
	RSSBefore int64 `json:"rss_before"`
	RSSAfter  int64 `json:"rss_after"`
}

// WorkerResult is a worker's run phase.
type WorkerResult struct {
	Sent       uint64     `json:"sent"`
	Acked      uint64     `json:"acked"`   // uplink ACK code 0, or downlink received
	Refused    uint64     `json:"refused"` // uplink ACK with a non-zero code, or a push the server did not send
	Lost       uint64     `json:"lost"`
	Duplicated uint64     `json:"duplicated"`
	Unexpected uint64     `json:"unexpected"` // answers to nothing the bench sent, or misrouted downlinks
	Skipped    uint64     `json:"skipped"`    // open loop: sends the bench could not make (too many outstanding)
	Latency    *Histogram `json:"latency"`
	// PerSec are the first answers (Acked) and sends in each second since start.
	PerSec     []uint64 `json:"per_sec"`
	SentPerSec []uint64 `json:"sent_per_sec"`
	// Codes counts non-zero answer codes ("uplink ack 2002", "push OFFLINE").
	Codes map[string]int `json:"codes,omitempty"`
	// Dropped counts connections the server closed during the run, by reason.
	Dropped       map[string]int `json:"dropped,omitempty"`
	HeartbeatSent uint64         `json:"heartbeat_sent"`
	HeartbeatAck  uint64         `json:"heartbeat_ack"`
	// HeartbeatAckMeasured are the HeartbeatAcks received during the measured phase.
	HeartbeatAckMeasured uint64 `json:"heartbeat_ack_measured,omitempty"`
	// OtherDownlinks are downlinks that were not the bench's own (the demo's "is offline" notes).
	OtherDownlinks uint64 `json:"other_downlinks"`
	// Retransmitted counts downlinks that carried the retransmit flag.
	Retransmitted uint64 `json:"retransmitted"`
	// PushCalls counts the PushBatch calls made (downlink --batch); their pushes are in Sent.
	PushCalls uint64 `json:"push_calls,omitempty"`
	// Rounds are broadcast rounds: devices that got round r and the latest of them, ns.
	Rounds map[int]RoundResult `json:"rounds,omitempty"`
	// Connected is how many connections were still up at the end.
	Connected int `json:"connected"`
	// CPUSeconds is the CPU this worker's process used during the measured phase.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// RoundResult is one broadcast round as one worker saw it.
type RoundResult struct {
	Received uint64 `json:"received"`
	Last     int64  `json:"last_ns"`
}

// reportWriter serialises Reports onto one stream.
type reportWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newReportWriter(w io.Writer) *reportWriter { return &reportWriter{enc: json.NewEncoder(w)} }

func (w *reportWriter) send(r Report) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(r)
}

// readSpec reads the first stdin line.
func readSpec(br *bufio.Reader) (WorkerSpec, error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return WorkerSpec{}, fmt.Errorf("reading the worker spec: %w", err)
	}
	var s WorkerSpec
	if err := json.Unmarshal(line, &s); err != nil {
		return WorkerSpec{}, fmt.Errorf("decoding the worker spec: %w", err)
	}
	return s, nil
}

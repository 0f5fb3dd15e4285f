package console

import (
	"time"

	"github.com/platoim/plato/pipeline"
)

// Paths of the console's JSON API on every admin address. Every one needs the ops key
// (Authorization: Bearer <ops.key>), as the gateway's ops API does.
const (
	PathFleet     = "/api/v1/fleet"
	PathApps      = "/api/v1/apps"
	PathPipelines = "/api/v1/pipelines"
	PathFaults    = "/api/v1/faults"
	// PathNode is one process's own figures, which the fleet-wide answers are made of: the
	// process answering /api/v1/apps asks every registered node's admin address for it.
	PathNode = "/api/v1/node"
)

// FleetNode is one registered process as /api/v1/fleet lists it.
type FleetNode struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Version string `json:"version"`
	// StartedAt and UptimeSeconds say how long it has been running; UpdatedAt when it last
	// refreshed its registry entry.
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	UpdatedAt     time.Time `json:"updated_at"`
	// Endpoint is a gateway's device TCP address (empty while it reaches no state server, so
	// ipconf does not hand it out) or ipconf's HTTP address; WSEndpoint a gateway's WebSocket URL.
	Endpoint   string `json:"endpoint,omitempty"`
	WSEndpoint string `json:"ws_endpoint,omitempty"`
	RPCAddr    string `json:"rpc_addr,omitempty"`
	AdminAddr  string `json:"admin_addr,omitempty"`
	// Conns are the device connections it holds (gateways: open sockets; state servers:
	// logged-in devices).
	Conns int64 `json:"conns"`
	// BytesInPerSec and BytesOutPerSec are a gateway's device traffic over its last report.
	BytesInPerSec  float64 `json:"bytes_in_ps"`
	BytesOutPerSec float64 `json:"bytes_out_ps"`
	// LoadScore is a gateway's score as ipconf ranks it, from its last report: the bandwidth it
	// has left in GB/s (gateway.bandwidth minus its traffic), two decimals; higher is less loaded.
	// Nil for other roles.
	LoadScore  *float64 `json:"load_score,omitempty"`
	Draining   bool     `json:"draining"`
	Overloaded bool     `json:"overloaded"`
}

// Fleet is /api/v1/fleet's answer: every registered ipconf, gateway and state server, by role
// then ID.
type Fleet struct {
	At    time.Time   `json:"at"`
	Nodes []FleetNode `json:"nodes"`
}

// AppFigures are one app's figures: summed over the fleet in /api/v1/apps, one process's in
// /api/v1/node. Rates are per second over the last rateWindow.
type AppFigures struct {
	App string `json:"app"`
	// Connections are the app's logged-in and logging-in devices on the gateways.
	Connections int64 `json:"connections"`
	// UplinksPerSec are the uplinks the state servers answered; UplinkFailuresPerSec those
	// answered 13xx (Plato could not deliver them: business unreachable or late, overload, a
	// failing stage).
	UplinksPerSec        float64 `json:"uplinks_ps"`
	UplinkFailuresPerSec float64 `json:"uplink_failures_ps"`
	// PushesPerSec are the business's Push calls.
	PushesPerSec float64 `json:"pushes_ps"`
	// RefusedPerSec are the uplinks and logins gateways refused because a device or the app was
	// over its limits (1308, 1303).
	RefusedPerSec float64 `json:"refused_ps"`
	// ErrorsPerSec is UplinkFailuresPerSec plus RefusedPerSec.
	ErrorsPerSec float64 `json:"errors_ps"`
}

// Apps is /api/v1/apps's answer.
type Apps struct {
	At            time.Time    `json:"at"`
	WindowSeconds float64      `json:"window_seconds"`
	Apps          []AppFigures `json:"apps"`
	Unreachable   []NodeError  `json:"unreachable,omitempty"`
}

// StageFigures are a pipeline stage as the console shows it: what the chain is, and how it did.
type StageFigures struct {
	pipeline.StageStatus
	// Calls and Failures are counted since the stage instance started (failures of every reason:
	// error, timeout, down).
	Calls    int64 `json:"calls"`
	Failures int64 `json:"failures"`
	// P50Ms and P99Ms are the batch call latency quantiles, in milliseconds, over LatencyWindow:
	// "1m" (the last minute) when the stage was called in it, else "since start"; nil when the
	// stage was never called.
	P50Ms         *float64 `json:"p50_ms"`
	P99Ms         *float64 `json:"p99_ms"`
	LatencyWindow string   `json:"latency_window,omitempty"`
}

// ChainFigures is one chain with its stages' figures.
type ChainFigures struct {
	Pipeline string         `json:"pipeline"`
	Source   string         `json:"source"`
	Stages   []StageFigures `json:"stages"`
}

// NodePipelines is one state server's pipelines.
type NodePipelines struct {
	// Node is the state server's ID.
	Node string `json:"node"`
	// Apps maps each declared app to the chain that serves it ("" when its signals pass through
	// no stage).
	Apps   map[string]string `json:"apps"`
	Chains []ChainFigures    `json:"chains"`
}

// Pipelines is /api/v1/pipelines's answer: each state server's effective chains.
type Pipelines struct {
	At          time.Time       `json:"at"`
	Servers     []NodePipelines `json:"servers"`
	Unreachable []NodeError     `json:"unreachable,omitempty"`
}

// Faults is /api/v1/faults's answer: the recent faults of every process, newest first.
type Faults struct {
	At          time.Time   `json:"at"`
	Faults      []Fault     `json:"faults"`
	Unreachable []NodeError `json:"unreachable,omitempty"`
}

// NodeReport is /api/v1/node's answer: one process's figures.
type NodeReport struct {
	// Nodes are the IDs of the roles this process runs (a `plato up` runs several).
	Nodes     []string       `json:"nodes"`
	Version   string         `json:"version"`
	Apps      []AppFigures   `json:"apps"`
	Pipelines *NodePipelines `json:"pipelines,omitempty"`
	Faults    []Fault        `json:"faults"`
	// WindowSeconds is what the app rates were averaged over.
	WindowSeconds float64 `json:"window_seconds"`
}

// NodeError is a process the fleet view could not ask.
type NodeError struct {
	Nodes     []string `json:"nodes"`
	AdminAddr string   `json:"admin_addr"`
	Error     string   `json:"error"`
}

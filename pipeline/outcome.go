package pipeline

import (
	"errors"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// CodePipelineFailed is the code a fail_closed stage's signals are rejected with when the stage
// errs, times out or is down (protocol.CodePipelineFailed: retry later).
const CodePipelineFailed uint16 = 1306

var (
	// ErrBackpressure is returned by Run when the signal's lane already holds Config.QueueLimit
	// signals: the caller refuses the signal (1303) rather than queue it without bound.
	ErrBackpressure = errors.New("pipeline: lane queue full")
	// ErrClosed is returned by Run once Close has been called.
	ErrClosed = errors.New("pipeline: closed")

	errNoDir = errors.New("no pipeline directory configured")
)

// Outcome is what the pipeline decided for one signal.
type Outcome struct {
	// Verdict is Continue when every stage let the signal through.
	Verdict stage.Verdict
	// Code and Message explain a Reject (a stage's own, or 1306 for a failed fail_closed stage).
	Code    uint16
	Message string
	// Payload is the payload after every rewrite: the original one when no stage replaced it.
	Payload []byte
	// Stage names the stage that rejected or dropped the signal; empty for Continue.
	Stage string
	// Route and QoS are what the stages chose for a route signal (zero: no stage had an opinion).
	Route stage.Route
	QoS   stage.QoS
	// After is a retransmit signal's wait: before the next write when Verdict is Continue, before
	// the undelivered report when it is Reject (0 and Continue: nobody tracks the downlink).
	After time.Duration
}

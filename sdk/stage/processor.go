package stage

import "context"

// Event is one signal as the host hands it to a stage, whatever its kind: the host batches these.
// Only the fields of its Signal are set. A route event has no connection: its Conn carries only
// the AppID.
type Event struct {
	Signal      Signal
	Conn        Conn
	Seq         uint64
	MsgID       uint64
	Payload     []byte
	Token       string
	Platform    string
	Reason      uint16
	TimerKey    string
	TimerData   []byte
	TraceParent string
	// Session, Targets and Members describe a route event's push (see RouteEvent); Targets and
	// Members travel as uint32, so values outside 0..MaxUint32 are clamped.
	Session string
	Targets int
	Members int
	// QoS is a route event's requested QoS, or a downlink's QoS after routing.
	QoS QoS
	// Attempts is a retransmit event's count of writes so far.
	Attempts int
}

// Liveness is implemented by the Processor of a plugin process (Dispense). Answered counts every
// batch the plugin has answered, including answers that came after their caller gave up, so that a
// host can tell a slow plugin (late answers keep coming) from a stuck one (none come).
type Liveness interface {
	Answered() uint64
}

// Processor is a stage as the host sees it: in process (InProcess) or behind a plugin process
// (Dispense). The host creates one per stage instance.
type Processor interface {
	// Describe returns the stage's Info and the signals it has handlers for.
	Describe(ctx context.Context) (Info, []Signal, error)
	// Init initialises the stage; host serves the stage's Host calls.
	Init(ctx context.Context, req InitRequest) error
	// Process runs a batch: replies[i] answers events[i]. Events of one connection appear in
	// order; the caller does not send a connection's next batch before this one returned. An
	// error fails the whole batch (the plugin died, the deadline passed).
	Process(ctx context.Context, events []Event, replies []Reply) error
	// Close releases the stage (for a plugin: its streams; the process is the host's to stop).
	Close() error
}

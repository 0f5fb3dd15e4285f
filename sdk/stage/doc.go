// Package stage is what a business team imports to write a pipeline stage for Plato, and what
// Plato's pipeline host uses to run one. A stage is plain Go: a type with an Info method, an Init
// method, and a handler method for each signal it cares about (OnLogin, OnUplink, ...). Its main is
// one call:
//
//	func main() { stage.Serve(&myStage{}) }
//
// The same stage can run out of process (a plugin binary the host launches with hashicorp/go-plugin,
// speaking gRPC for control and taking its batches on a unix socket of their own, or on a gRPC
// stream with an older host) or, when trusted, in the host's process (InProcess). Both are seen by the host
// through Processor, so a pipeline YAML switches between them without code changes. Package
// stagetest runs a stage behind an in-memory gRPC connection for unit tests.
//
// Concurrency: the host sends batches of events; events of one connection always arrive in order,
// in one batch at a time, but batches of different connections may be handled concurrently, and a
// timer the stage set fires concurrently with the events of the connection it concerns, so a
// stage's handlers must be safe for concurrent use. Handlers should be quick: the host applies the
// stage's timeout to each batch.
//
// Verdicts: login, uplink, downlink and route are decisions (continue, reject, drop). heartbeat,
// downlink_ack, disconnect and timer are notifications: the host acts on them whatever the stage
// replies, and under backpressure it may handle them without the pipeline rather than lose them.
//
// Routing: a business push is a route event (RouteEvent) once, before it fans out, then a
// downlink per connection it reaches. A route stage answers Routed(route, qos) to choose its path
// (RouteDirect, RouteBroadcast) and QoS (AtMostOnce, AtLeastOnce); zero values are no opinion, and
// a later stage's non-zero choice overrides an earlier one's. Rejecting or dropping a route event
// refuses the whole push; a rewrite replaces its payload for every connection. Each downlink then
// carries the QoS chosen (DownlinkEvent.QoS; QoSDefault means at least once).
//
// Retransmits: the host keeps every unACKed downlink and its resend timer; a retransmit event
// (RetransmitEvent: attempts so far) asks the stage that lists the signal what to do next, once
// after the first write and again after each resend. Plato's host defers the first question by
// half the first wait the stage last answered (at most 1 s), counting the answer's wait from the
// write, so a downlink ACKed sooner is never asked about. Answer ResendAfter(d), GiveUpAfter(d) (the
// host reports the downlink undelivered) or Untrack() (see plugins/retransmit).
//
// Sessions: Host.Sessions asks the app's business server which sessions a connection belongs in,
// and Host.Join binds the connection to them until it closes; an OnLogin handler may call both
// for the connection logging in (see plugins/sessionbind).
//
// Ownership: the event a handler gets, and the byte slices in it (Payload, Data), are valid only
// during the call: the SDK reuses the event for the next one, and in process the payload is the
// host's buffer. Copy what you keep. A Reply's Payload belongs to the host once returned; do not
// change it afterwards (returning the event's own Payload is fine).
//
// Strings: a stage always sees valid UTF-8 in events (devices are not trusted to send it, and gRPC
// cannot carry anything else): invalid bytes arrive replaced by U+FFFD, in process too.
//
// Failures: a handler that panics fails its whole batch (Process returns a *BatchError) and the
// panic is logged with its stack; the stage keeps running. An unknown signal, or one without a handler,
// continues unchanged.
//
// Output: a plugin's stdout belongs to go-plugin's handshake: print nothing before Serve. Log
// through the *slog.Logger in InitRequest (it writes hclog-style JSON to stderr, which the host
// relays at each line's level under the stage's name).
//
// Lifetime: a plugin process exits by itself when its host process is gone, even if the host was
// killed with SIGKILL.
package stage

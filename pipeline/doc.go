// Package pipeline is the state server's pipeline host: it runs every device signal through the
// ordered stages that the app's pipeline YAML lists, each a plugin process (hashicorp/go-plugin over
// gRPC, launched and supervised here) or a trusted in-process stage, and hands back one Outcome per
// signal.
//
// # Life cycle
//
// New loads every file of Config.Dir (pipeline/config), starts the stages' processes, checks that
// each implements the signals its YAML lists and calls its Init. Run queues a signal; Watch (or
// Reload) swaps in a new chain when a file changes; Close drains the queues and stops every process.
//
// # Ordering
//
// The one hard rule: the done callbacks of the signals of one connection (Conn.GatewayID +
// Conn.ConnID) are called in the order Run was called for them, after every stage, also across a
// hot reload and a plugin restart. It holds by construction:
//
//   - Every app has lanes of its own (appLanes), so one app cannot slow another. Run hashes the
//     connection onto one of its app's Config.Lanes lanes (internal/batch). A lane is a FIFO with
//     one goroutine and at most one batch in flight: it takes up to Config.BatchSize queued
//     signals, runs them through the chains, calls done for each in queue order, and only then
//     takes the next batch.
//   - A lane loads the current set of chains once per batch (one atomic load) and keeps it for the
//     whole batch. A reload stores a new set; batches already taken finish on the old one, and the
//     reload stops the old chain's stages only once no batch holds it any more.
//   - Inside a batch, signals are grouped by their app's chain, keeping queue order inside a group,
//     and each stage gets one call (or several consecutive calls, when its batch.max_size is
//     smaller) with the signals still continuing that it listens to: listed in its YAML and, when
//     the stage declared at its last Init which ones its config acts on (stage.SignalSelector,
//     actson.go), among those. The others go past it as if it had answered Continue, in the same
//     queue order. A connection never has two calls in flight to one stage, which is what
//     sdk/stage promises a stage.
//   - A plugin restart or a binary swap changes which process the next call goes to, never the
//     order of calls.
//
// Batching: a lane's batch forms while its previous batch is in the chain (internal/batch), so
// batches grow with load and an idle lane sends at once (Config.Linger adds a wait). A stage's
// batch.max_size splits its calls; there is no per-stage wait, since a stage cannot wait for
// signals that earlier stages have not handled yet.
//
// Timer signals (a stage's Host.SetTimer firing) go through the lane of hash(app, key) and reach
// only the stage that set them; they are not ordered with any connection's signals.
//
// # Failures
//
// A stage call that errors, times out (the stage's timeout) or finds the stage's process down is a
// failure of every signal in that call: with on_failure fail_closed they are rejected with code
// 1306 (CodePipelineFailed) and a message naming the stage; with fail_open the stage is skipped for
// them. Nothing waits for a process to come back. A crashed plugin is relaunched at once (the
// kernel reports its exit through a pidfd), failed launches are retried within a second; one whose
// calls time out three times in a row is killed and relaunched. A stage that keeps crashing opens
// its crash-loop breaker (breaker.go, Config.Breaker): it is reported (log with the plugin's last
// stderr lines, metrics, FailingStages for /healthz) and relaunched at the probe pace until a
// process stays up.
//
// # Concurrency rules
//
//   - Run, Reload, Watch and Close are safe for concurrent use.
//   - Run never blocks: a full lane returns ErrBackpressure.
//   - done is called on a lane goroutine and must be quick and must not block; it may call Run.
//     A done that panics is recovered and logged. An uplink no stage of its app listens to, whose
//     lane is idle (nothing queued, no batch in the chain), gets its done on the caller of Run,
//     before Run returns (run.go, passes; internal/batch RunIdle): the lane would only have
//     passed it, and had nothing before it. The order rule above holds as through the lane.
//   - Stages may call their Host from any goroutine; Host.SetTimer/Get/Put/Delete are served here,
//     the rest by the Host given to New. State and timers belong to the pair (pipeline, stage
//     name), so they survive the stage's process restarting and a reload that keeps the stage.
package pipeline

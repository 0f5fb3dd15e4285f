// Package bench is `plato bench`: a load generator that measures a running platform through real
// sockets on loopback, and the statistics it reports.
//
// # Processes
//
// The parent (Run) splits the devices over workers, at most Options.PerWorker each so a worker stays
// under the open-file limit, and re-executes the plato binary as `plato bench --worker` for each
// (WorkerCommand; without one, workers run in the parent's process over the same pipes). Each worker
// binds its connections to its own source address (127.0.0.2, 127.0.0.3, ...), so the machine's
// 64k-port limit applies per worker, not per box. The parent and a worker talk in JSON lines
// (proto.go): the spec on stdin, then "start" and "stop"; ready, tick, result and error reports on
// stdout. Phases run in lock step: every worker connects, then every worker starts, so the connect
// rate and the measured phase cover all of them. A worker stops by itself at its spec's deadline and
// at once when its stdin closes, so none outlives the parent; the parent kills one that does not
// exit within seconds of being told.
//
// With Options.Baseline the same scenario then runs against the echo server (echo.go), a bare
// netpoll server in worker processes of its own that answers each frame the way Plato does, so the
// client code path is identical and the ratio is Plato's cost over the machine's raw limit.
//
// # Failover
//
// The failover scenario (failover.go) cannot use a platform someone else runs, since it kills part
// of it: it starts its own (failover_platform.go: NATS and a business server with one listener
// per state server in the parent, two state servers and a gateway as processes of the plato
// binary, Options.PlatoCommand), runs its devices in workers of role "failover"
// (failover_device.go, failover_worker.go), SIGKILLs a state server under load, restarts it, and
// computes its figures (failover_figures.go) from what the devices and the business server saw.
// The parent tells the workers the instant of the kill ahead of time ("kill <unix ns>", answered
// "armed"), so each device knows which of its uplinks were sent after it.
//
// # Crash loop
//
// The crashloop scenario (crashloop.go) also starts its own platform (crashloop_platform.go: NATS
// and the failover business server in the parent, one state server whose app pipeline runs the
// plugin under test as a fail_closed stage, one gateway), drives a few devices from the parent
// (crashloop_device.go), and SIGKILLs the stage's plugin process, found among the state server's
// children in /proc, again and again: relaunch time, the policy's answers meanwhile, the breaker
// as the state server's /metrics and /healthz show it, and zombies left.
//
// # Devices
//
// A device (device.go) is a TCP socket speaking docs/protocol.md, one reader goroutine, and writes
// under the device's mutex; no per-message allocation or timer. Uplink seqs and downlink message
// numbers count 1, 2, 3... so loss and duplicates are counted exactly in memory bounded by what is
// outstanding (track.go). Latency goes into a log-bucketed histogram (hist.go) whose fixed buckets
// let the parent merge the workers' histograms exactly before taking percentiles.
//
// # Concurrency
//
// Counters of a worker are atomics updated by every reader; a Recorder takes concurrent latency
// records; a device's mutex guards its send ring and its socket writes; its seenSets belong to its
// reader goroutine alone.
package bench

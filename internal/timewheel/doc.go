// Package timewheel is a hashed timing wheel: one goroutine and one time.Ticker drive every timer
// of a wheel, so a process holding a million connections keeps a million 48-byte Timer structs
// instead of a million runtime timers.
//
// Precision is one tick: a timer never fires before its delay has elapsed and normally fires at
// most about one tick after it (later only if the wheel goroutine itself is starved). Delays longer
// than one rotation (tick × slots) are kept in their slot with a rounds counter.
//
// Concurrency rules:
//
//   - Every method of Wheel and Timer is safe for concurrent use by any number of goroutines.
//   - Timers are spread over several internally locked shards, so concurrent AfterFunc, Reset and
//     Stop on different timers rarely contend; a Reset that lands on the tick the timer already
//     waits for only takes its shard lock.
//   - Callbacks run one after another on the wheel goroutine, with no lock held. A callback must
//     therefore be quick and must not block: a slow callback delays every other timer of the wheel.
//     Hand real work to another goroutine. A callback may freely call AfterFunc, Reset, Stop and
//     Wheel.Stop on its own wheel.
//   - Timer.Stop and Wheel.Stop do not wait for a callback that is already running (or has just been
//     committed to run) to return; this is the same contract as time.AfterFunc. Once Wheel.Stop has
//     returned, no other callback of that wheel starts.
package timewheel

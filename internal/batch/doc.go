// Package batch is the micro-batcher used at every RPC hop (gateway→state, state→gateway,
// state→business): callers Add items to a lane and a per-lane goroutine hands them to a SendFunc
// in batches.
//
// By default a Batcher batches naturally (as Kafka producers and the LMAX disruptor do): a lane
// that is idle sends an item at once; while its send is in flight, items added meanwhile wait and
// go out together, at most Config.MaxSize at a time, as soon as it returns. So a batch costs no
// waiting, and batches grow with load by themselves: at a low rate most are one item, at a rate
// near the callee's capacity they fill up. Each lane has at most one send in flight, which keeps
// the items of a lane in Add order; the lanes are the parallelism of a hop (Config.Lanes sends in
// flight at most). A positive Config.MaxDelay turns on a linger instead: a lane that was idle
// waits that long after its first item, or for a full batch, before sending.
//
// With Config.MergeWait the lanes merge their sends: while any send is in flight, the other lanes'
// items wait for it, and the goroutine whose send returns takes them all into its next send. A hop
// then has one send in flight, carrying as much as one lane would, instead of one small send per
// lane; each lane is still in at most one send at a time, so its items keep their order. A lane
// sends on its own, in parallel, when it holds a full batch (a backlog) or when its items have
// waited MergeWait (a slow callee), so a hop under load or stalled keeps its Config.Lanes sends.
//
// Concurrency rules:
//
//   - Add and Close are safe for concurrent use by any number of goroutines.
//   - Add never blocks on sending: when a lane already holds Config.MaxQueue waiting items it
//     returns ErrFull, and the caller decides whether to drop, retry or push back.
//   - Items passed to Add from one goroutine with the same lane key reach SendFunc in that order.
//     Items from different goroutines are ordered as their Add calls were serialised on the lane.
//   - SendFunc calls for one lane never overlap; calls for different lanes run concurrently, one
//     long-lived goroutine per lane. With MergeWait a call may carry items of several lanes. SendFunc must not keep the slice it is given (it is reused),
//     and must not call Close of its own Batcher, which would wait for it. It may call Add.
//   - Close stops Add, flushes everything queued and waits for the lane goroutines to finish.
package batch

// Package batch is the micro-batcher used at every RPC hop (gateway→state, state→gateway,
// state→business): callers Add items to a lane and a per-lane goroutine hands them to a SendFunc
// in batches.
//
// A batch goes out when it reaches Config.MaxSize items or Config.MaxDelay after its first item,
// whichever comes first. Each lane has at most one send in flight, which keeps items of a lane in
// Add order; items added during a send wait and go out together as soon as it returns, so batches
// grow by themselves under load and the linger delay is only paid by a lane that was idle.
//
// Concurrency rules:
//
//   - Add and Close are safe for concurrent use by any number of goroutines.
//   - Add never blocks on sending: when a lane already holds Config.MaxQueue waiting items it
//     returns ErrFull, and the caller decides whether to drop, retry or push back.
//   - Items passed to Add from one goroutine with the same lane key reach SendFunc in that order.
//     Items from different goroutines are ordered as their Add calls were serialised on the lane.
//   - SendFunc calls for one lane never overlap; calls for different lanes run concurrently, one
//     long-lived goroutine per lane. SendFunc must not keep the slice it is given (it is reused),
//     and must not call Close of its own Batcher, which would wait for it. It may call Add.
//   - Close stops Add, flushes everything queued and waits for the lane goroutines to finish.
package batch

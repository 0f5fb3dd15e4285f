package bench

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// The load drivers of the measured phase. Closed loop keeps Window messages in flight per device:
// each answer (an UplinkAck, a received downlink) releases the next send. Open loop sends at a fixed
// total rate whatever the answers do, spread round-robin over the devices, which is what exposes
// queueing: latency grows when the rate exceeds what the platform sustains.

// startUplink starts the uplink drivers; they stop when runCtx ends or running is cleared.
func (f *fleet) startUplink(runCtx context.Context) {
	devs := f.snapshot()
	if f.spec.Rate == 0 {
		// Closed loop: the first Window uplinks of each device; the readers send the rest.
		for _, d := range devs {
			d.mu.Lock()
			for range f.spec.Window {
				d.sendUplinkLocked(f.spec.Window)
			}
			d.mu.Unlock()
		}
		return
	}
	f.pace(runCtx, devs, func(d *device) {
		d.mu.Lock()
		d.sendUplinkLocked(openLoopOutstanding)
		d.mu.Unlock()
	})
}

// pace calls send for devices round-robin at spec.Rate per second in total (see paceItems).
func (f *fleet) pace(ctx context.Context, devs []*device, send func(*device)) {
	paceItems(ctx, &f.drivers, devs, f.spec.Rate, f.running.Load, send)
}

// paceItems calls send for items round-robin at rate per second in total, from a few goroutines
// (one writer cannot make a million syscalls a second) each owning a slice of the items, while
// ctx lasts and running says so. wg counts the goroutines.
func paceItems[T any](ctx context.Context, wg *sync.WaitGroup, items []T, rate float64, running func() bool, send func(T)) {
	if len(items) == 0 || rate <= 0 {
		return
	}
	shards := min(len(items), max(1, runtime.GOMAXPROCS(0)), 4)
	for s := range shards {
		var mine []T
		for i := s; i < len(items); i += shards {
			mine = append(mine, items[i])
		}
		rate := rate / float64(shards)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var sent int64
			for i := 0; ctx.Err() == nil && running(); {
				due := int64(rate*time.Since(start).Seconds()) - sent
				if due <= 0 {
					// Sleep until the next send is due; timers are coarse, so sends come in bursts
					// that keep the average rate exact.
					wait := time.Duration(float64(sent+1)/rate*float64(time.Second)) - time.Since(start)
					select {
					case <-time.After(max(wait, 50*time.Microsecond)):
					case <-ctx.Done():
					}
					continue
				}
				for ; due > 0; due-- {
					send(mine[i%len(mine)])
					i++
					sent++
				}
			}
		}()
	}
}

// startDownlink starts the pushers of the downlink scenario. Pushes run on the worker's context,
// not runCtx, so that those in flight when the phase ends complete and are counted.
func (f *fleet) startDownlink(ctx, runCtx context.Context) {
	devs := f.snapshot()
	n := pushConcurrency
	if bp, ok := f.pusher.(*batchPusher); ok {
		n = bp.inFlight()
	}
	sem := make(chan struct{}, n)
	if f.spec.Rate == 0 {
		for _, d := range devs {
			for range f.spec.Window {
				f.drivers.Add(1)
				go func() {
					defer f.drivers.Done()
					timer := time.NewTimer(pushTimeout)
					defer timer.Stop()
					for runCtx.Err() == nil && f.running.Load() && d.up.Load() {
						sem <- struct{}{}
						ok := f.pushOne(ctx, d)
						<-sem
						if !ok {
							// Do not spin on a refusing server.
							select {
							case <-time.After(10 * time.Millisecond):
							case <-runCtx.Done():
							}
							continue
						}
						timer.Reset(pushTimeout)
						select {
						case <-d.dlWake:
						case <-timer.C:
						case <-runCtx.Done():
							return
						}
					}
				}()
			}
		}
		return
	}
	f.pace(runCtx, devs, func(d *device) {
		select {
		case sem <- struct{}{}:
		default:
			f.skipped.Add(1) // every push slot busy: the open loop outruns the pushes
			return
		}
		f.drivers.Add(1)
		go func() {
			defer f.drivers.Done()
			f.pushOne(ctx, d)
			<-sem
		}()
	})
}

// pushOne pushes the device's next message and reports whether the server sent it.
func (f *fleet) pushOne(ctx context.Context, d *device) bool {
	n := d.dlNext.Add(1)
	f.sent.Add(1)
	f.countSent(f.now())
	st := f.pusher.push(ctx, []pushTarget{{idx: d.idx, did: d.did}}, newPayload(kindDirect, uint32(d.idx), n))[0]
	if st != "" {
		f.refused.Add(1)
		f.countCode(st)
		return false
	}
	f.pushed.Add(1)
	return true
}

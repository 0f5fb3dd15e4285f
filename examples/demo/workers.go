package demo

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Pushes run off the delivery path, so an uplink's ACK never waits for Plato to reach the
// recipients; in lanes, so one device's commands run in the order it sent them (join, then write);
// and bounded, so a demo that cannot keep up refuses with CodeBusy rather than queue without end.
const (
	lanes       = 8
	laneQueue   = 512
	pushTimeout = 5 * time.Second // each call to Plato
)

// job is one accepted command, to carry out against Plato.
type job struct {
	app, did string
	cmd      command
}

type workers struct {
	seed   maphash.Seed
	do     func(context.Context, job)
	ctx    context.Context // cancelled when stop gives up waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex // closed and the lanes' closing, against add
	closed bool
	lanes  []chan job
}

func newWorkers(do func(context.Context, job)) *workers {
	w := &workers{seed: maphash.MakeSeed(), do: do, lanes: make([]chan job, lanes)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for i := range w.lanes {
		ch := make(chan job, laneQueue)
		w.lanes[i] = ch
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range ch {
				w.run(j)
			}
		}()
	}
	return w
}

func (w *workers) run(j job) {
	if w.ctx.Err() != nil {
		return // stop gave up: drop what is left without a call (or a log line) each
	}
	ctx, cancel := context.WithTimeout(w.ctx, pushTimeout)
	defer cancel()
	w.do(ctx, j)
}

// add queues j in its device's lane; false when the lane is full or the workers stopped.
func (w *workers) add(j job) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	var h maphash.Hash
	h.SetSeed(w.seed)
	h.WriteString(j.app)
	h.WriteByte(0)
	h.WriteString(j.did)
	select {
	case w.lanes[h.Sum64()%uint64(len(w.lanes))] <- j:
		return true
	default:
		return false
	}
}

// stop lets the queued jobs finish until ctx is done, then cancels those still running and drops
// the rest.
func (w *workers) stop(ctx context.Context) {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, ch := range w.lanes {
			close(ch)
		}
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		w.cancel() // every remaining call fails at once
		<-done
	}
	w.cancel()
}

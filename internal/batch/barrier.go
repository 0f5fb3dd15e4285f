package batch

import (
	"context"
	"time"
)

// Barrier waits until every item queued before the call has been sent (its SendFunc returned),
// whatever is queued meanwhile: a gateway handing its connections to another process waits on it
// so that a device's earlier frames reach the state server before the next process forwards later
// ones. It returns ctx.Err() when ctx ends first.
func (b *Batcher[T]) Barrier(ctx context.Context) error {
	marks := make([]uint64, len(b.lanes))
	for i, l := range b.lanes {
		l.mu.Lock()
		marks[i] = l.pushed
		l.mu.Unlock()
	}
	// Polled rather than signalled: a barrier is rare, and the lanes' hot path stays as it is.
	const poll = 200 * time.Microsecond
	left := len(b.lanes)
	for {
		for i, l := range b.lanes {
			if marks[i] == done {
				continue
			}
			l.mu.Lock()
			ok := l.sent >= marks[i] || (l.closed && l.count == 0 && b.isDone())
			l.mu.Unlock()
			if ok {
				marks[i] = done
				left--
			}
		}
		if left == 0 {
			return nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// done marks a lane the barrier no longer waits for.
const done = ^uint64(0)

func (b *Batcher[T]) isDone() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

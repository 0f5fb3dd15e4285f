package bench

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// MaxBatch is the most pushes --batch puts in one PushBatch call (Plato's limit).
const MaxBatch = 1000

// batchSenders is how many PushBatch calls one worker has in flight.
const batchSenders = 4

// batchPusher sends single-device pushes through Plato's PushBatch: each sender takes whatever
// pushes are queued, up to max, as soon as it is free (natural batching: no linger), so the
// batches grow with the load.
type batchPusher struct {
	*kitexPusher
	max   int
	queue chan *batchItem
	stop  chan struct{}
	wg    sync.WaitGroup
	calls atomic.Uint64 // PushBatch calls made
}

type batchItem struct {
	did     string
	payload []byte
	done    chan string // the push's outcome, as pusher.push reports it
}

func newBatchPusher(kp *kitexPusher, max int) *batchPusher {
	p := &batchPusher{kitexPusher: kp, max: max, queue: make(chan *batchItem, max*batchSenders), stop: make(chan struct{})}
	for range batchSenders {
		p.wg.Add(1)
		go p.send()
	}
	return p
}

// inFlight is how many pushes the batch pusher lets the scenario have outstanding: enough to fill
// every sender's batch.
func (p *batchPusher) inFlight() int { return max(pushConcurrency, p.max*batchSenders) }

func (p *batchPusher) push(ctx context.Context, targets []pushTarget, payload []byte) []string {
	if len(targets) != 1 {
		return p.kitexPusher.push(ctx, targets, payload)
	}
	it := &batchItem{did: targets[0].did, payload: payload, done: make(chan string, 1)}
	select {
	case p.queue <- it:
	case <-ctx.Done():
		return []string{"push error: cancelled"}
	}
	select {
	case st := <-it.done:
		return []string{st}
	case <-ctx.Done():
		return []string{"push error: cancelled"}
	}
}

func (p *batchPusher) send() {
	defer p.wg.Done()
	items := make([]*batchItem, 0, p.max)
	for {
		items = items[:0]
		select {
		case it := <-p.queue:
			items = append(items, it)
		case <-p.stop:
			return
		}
	more:
		for len(items) < p.max {
			select {
			case it := <-p.queue:
				items = append(items, it)
			default:
				break more
			}
		}
		p.sendBatch(items)
	}
}

func (p *batchPusher) sendBatch(items []*batchItem) {
	req := &api.PushBatchRequest{Caller: p.caller, Pushes: make([]*api.PushRequest, len(items))}
	for i, it := range items {
		req.Pushes[i] = &api.PushRequest{Dids: []string{it.did}, Payload: it.payload}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	p.calls.Add(1)
	resp, err := p.cli.PushBatch(ctx, req)
	for i, it := range items {
		it.done <- batchOutcome(resp, err, i)
	}
}

// batchOutcome is push i's outcome as pusher.push reports it.
func batchOutcome(resp *api.PushBatchResponse, err error, i int) string {
	switch {
	case err != nil:
		return "push error: " + rpcErrClass(err)
	case i >= len(resp.Results):
		return "push no answer"
	case resp.Results[i].Error != nil:
		return "push error: " + rpcErrClass(resp.Results[i].Error)
	}
	ts := resp.Results[i].GetResponse().GetTargets()
	if len(ts) == 0 {
		return "push no answer"
	}
	if st := ts[0].Status; st != api.PushStatus_SENT && st != api.PushStatus_ACKED {
		return "push " + st.String()
	}
	return ""
}

func (p *batchPusher) close() {
	close(p.stop)
	p.wg.Wait()
	p.kitexPusher.close()
}

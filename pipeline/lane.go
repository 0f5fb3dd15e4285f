package pipeline

import (
	"context"
	"slices"

	"go.opentelemetry.io/otel/trace"

	"github.com/platoim/plato/sdk/stage"
)

// laneScratch is the working memory of one batch, pooled so a lane in its steady state allocates
// nothing per signal. Index i of outs and chains is item i of the batch.
type laneScratch struct {
	outs   []Outcome
	chains []*chain
	groups []*chain // the distinct chains of the batch, in order of first appearance
	idx    []int    // the items of the chain being run, in queue order
	sel    []int    // the items of the step being run
	evs    []stage.Event
	reps   []stage.Reply
	spans  []trace.Span // of the step being called; see trace.go
}

func (sc *laneScratch) reset(n int) {
	sc.outs = slices.Grow(sc.outs[:0], n)[:n]
	sc.chains = slices.Grow(sc.chains[:0], n)[:n]
	sc.groups = sc.groups[:0]
}

// release drops every reference the batch left, so pooled scratch does not pin payloads.
func (sc *laneScratch) release() {
	clear(sc.outs)
	clear(sc.chains)
	clear(sc.groups)
}

// runBatch is the lanes' send function: one batch of one lane, in queue order. It pins the current
// snapshot for the whole batch (so a reload never splits it), runs each app's signals through
// that app's chain, then calls every done in queue order. internal/batch calls it for one lane at a
// time, which is what keeps a connection's signals in order.
func (p *Pipelines) runBatch(ctx context.Context, items []item) {
	sc := p.scratch.Get().(*laneScratch)
	sc.reset(len(items))
	snap := p.acquire()
	for i := range items {
		it := &items[i]
		sc.outs[i] = Outcome{Payload: it.ev.Payload}
		c := snap.chainFor(it.ev.Conn.AppID)
		if it.target != nil && (c == nil || c.pipeline != it.target.pipeline) {
			c = nil // the timer's stage no longer serves this app: nobody to tell
		}
		sc.chains[i] = c
		if c != nil && len(c.steps) > 0 && !slices.Contains(sc.groups, c) {
			sc.groups = append(sc.groups, c)
		}
	}
	for _, c := range sc.groups {
		sc.idx = sc.idx[:0]
		for i := range items {
			if sc.chains[i] == c {
				sc.idx = append(sc.idx, i)
			}
		}
		p.runChain(ctx, c, items, sc)
	}
	snap.release()
	for i := range items {
		if items[i].done != nil {
			p.finish(items[i].done, sc.outs[i])
		}
	}
	sc.release()
	p.scratch.Put(sc)
}

// runChain runs the items sc.idx through c, stage by stage. A stage sees the items still
// continuing that it is called for (listed, and acted on: actson.go; timer items: only the stage
// that set the timer), in queue order, split into calls of at most its batch size.
func (p *Pipelines) runChain(ctx context.Context, c *chain, items []item, sc *laneScratch) {
	for _, st := range c.steps {
		a := st.inst.actsOn() // once per step and batch: a re-Init applies from the next batch
		sc.sel = sc.sel[:0]
		for _, i := range sc.idx {
			if sc.outs[i].Verdict != stage.Continue {
				continue
			}
			it := &items[i]
			if it.target != nil {
				if it.target != st.inst.scope {
					continue
				}
			} else if !a.calls(st.signals, &it.ev) {
				continue
			}
			sc.sel = append(sc.sel, i)
		}
		size := st.maxBatch
		if size <= 0 {
			size = len(sc.sel)
		}
		for start := 0; start < len(sc.sel); start += size {
			end := min(start+size, len(sc.sel))
			p.callStep(ctx, st, items, sc.sel[start:end], sc)
		}
	}
}

// finish calls a done callback; a panic there must not kill the lane, which serves many
// connections.
func (p *Pipelines) finish(done func(Outcome), out Outcome) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("pipeline done callback panicked", "panic", r)
		}
	}()
	done(out)
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/platoim/plato/sdk/stage"
)

// reason is why a stage call failed; it is the reason attribute of the failures metric.
type reason uint8

const (
	reasonError   reason = iota // the call returned an error (or the stage panicked)
	reasonTimeout               // the stage's timeout passed
	reasonDown                  // the plugin process was down: no call was made
	numReasons
)

func (r reason) String() string {
	switch r {
	case reasonError:
		return "error"
	case reasonTimeout:
		return "timeout"
	default:
		return "down"
	}
}

// callStep makes one call to st with the items sel, and folds the replies (or the failure) into
// their outcomes.
func (p *Pipelines) callStep(ctx context.Context, st *step, items []item, sel []int, sc *laneScratch) {
	n := len(sel)
	sc.evs = slices.Grow(sc.evs[:0], n)[:n]
	sc.reps = slices.Grow(sc.reps[:0], n)[:n]
	evs, reps := sc.evs, sc.reps
	defer func() {
		clear(evs)
		clear(reps)
	}()
	for k, i := range sel {
		evs[k] = items[i].ev
		evs[k].Payload = sc.outs[i].Payload // what earlier stages made of it
	}
	in := st.inst
	pr := in.acquire()
	if pr == nil {
		p.metrics.failure(in, reasonDown)
		p.failed(st, sel, sc, reasonDown, nil)
		return
	}
	traced := p.startStageSpans(st, in.pipeline, evs, sc)
	cctx, cancel := context.WithTimeout(ctx, st.timeout)
	start := time.Now()
	err := process(cctx, pr.pr, evs, reps)
	if err == nil && cctx.Err() != nil {
		// A stage that ignores its context (in process) is late all the same: its answer is not
		// used, exactly as a plugin's late answer would not be.
		err = cctx.Err()
	}
	r := reasonError
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(cctx.Err(), context.DeadlineExceeded)) {
		r = reasonTimeout
	}
	cancel()
	pr.inflight.Add(-1)
	p.metrics.call(ctx, in, time.Since(start))
	if traced {
		endStageSpans(sc, reps, err)
	}
	if err != nil {
		p.metrics.failure(in, r)
		in.callFailed(pr, r)
		p.failed(st, sel, sc, r, err)
		return
	}
	in.callOK(pr)
	failed := 0
	for k, i := range sel {
		if reps[k].Verdict == stage.Fail {
			failed++
			in.logFailure(reasonError, fmt.Errorf("a signal failed: %s", reps[k].Message), 1, st.failOpen)
		}
		apply(&sc.outs[i], st, &reps[k])
	}
	if failed > 0 {
		p.metrics.failure(in, reasonError)
		if st.failOpen {
			p.metrics.skip(in, failed)
		}
	}
}

// process calls the stage, turning a panic of an in-process stage into an error of this batch.
func process(ctx context.Context, pr stage.Processor, evs []stage.Event, reps []stage.Reply) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage panicked: %v", r)
		}
	}()
	return pr.Process(ctx, evs, reps)
}

// apply folds one stage's reply into a signal's outcome.
func apply(out *Outcome, st *step, rep *stage.Reply) {
	switch rep.Verdict {
	case stage.Continue:
		if rep.Replace {
			out.Payload = rep.Payload
		}
		// Route choices: a later stage's opinion overrides an earlier one's.
		if rep.Route != stage.RouteDefault {
			out.Route = rep.Route
		}
		if rep.QoS != stage.QoSDefault {
			out.QoS = rep.QoS
		}
		if rep.After > 0 {
			out.After = rep.After
		}
	case stage.Reject:
		out.Verdict, out.Code, out.Message, out.Stage = stage.Reject, rep.Code, rep.Message, st.name
		out.After = rep.After
	case stage.Drop:
		out.Verdict, out.Stage = stage.Drop, st.name
	case stage.Fail:
		// The stage's failure policy, for this signal alone.
		if !st.failOpen {
			out.Verdict, out.Code, out.Stage = stage.Reject, CodePipelineFailed, st.name
			out.Message = "pipeline stage " + st.name + " failed: " + rep.Message
		}
	default:
		out.Verdict, out.Code, out.Stage = stage.Reject, CodePipelineFailed, st.name
		out.Message = fmt.Sprintf("pipeline stage %s answered an unknown verdict %d", st.name, rep.Verdict)
	}
}

// failed applies st's failure policy to the items sel: fail_closed rejects them with 1306,
// fail_open lets them continue as if the stage were not there.
func (p *Pipelines) failed(st *step, sel []int, sc *laneScratch, r reason, err error) {
	st.inst.logFailure(r, err, len(sel), st.failOpen)
	if st.failOpen {
		p.metrics.skip(st.inst, len(sel))
		return
	}
	for _, i := range sel {
		o := &sc.outs[i]
		o.Verdict, o.Code, o.Message, o.Stage = stage.Reject, CodePipelineFailed, st.failMsg[r], st.name
	}
}

// failLogEvery limits failure logs to one per stage per interval: a stage that is down fails every
// batch, and the metrics count them all.
const failLogEvery = time.Second

// logFailure logs a failed call, at most once per failLogEvery per instance.
func (in *instance) logFailure(r reason, err error, events int, failOpen bool) {
	now := time.Now().UnixNano()
	last := in.lastFailLog.Load()
	if now-last < int64(failLogEvery) || !in.lastFailLog.CompareAndSwap(last, now) {
		return
	}
	policy := "fail_closed: rejected with 1306"
	if failOpen {
		policy = "fail_open: stage skipped"
	}
	in.log.Warn("pipeline stage call failed", "reason", r.String(), "error", err, "events", events, "policy", policy)
}

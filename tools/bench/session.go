package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// startSessionBroadcast binds the run's devices to a session of their own and pushes one message
// to it per round (see broadcast.go).
func (r *runner) startSessionBroadcast(ctx context.Context, tg target, start time.Time, out *targetResult) (stopWhen func() bool, wait func(), err error) {
	o := r.opts
	p, err := newKitexPusher(tg.stateAddr, o.AppID, o.AppKey)
	if err != nil {
		return nil, nil, err
	}
	runID := r.runID + "-" + tg.name
	session := "bench-" + runID
	bound, err := p.bindAll(ctx, session, runID, o.Devices)
	if err != nil {
		return nil, nil, err
	}
	n := maxRounds(o.Duration, o.Interval)
	out.rounds = make([]roundOutcome, n+1)
	out.calls = 1
	stopWhen, wait = r.driveRounds(ctx, start, n, out, func(k int, record func(func())) {
		resp, err := p.cli.Push(ctx, &api.PushRequest{
			Caller: p.caller, Session: session, Qos: api.QoS_AT_MOST_ONCE,
			Payload: newPayload(kindBroadcast, broadcastIdx, uint64(k)),
		})
		record(func() {
			if err != nil {
				out.rounds[k].refused += uint64(bound)
				out.pushCodes = mergeCounts(out.pushCodes, map[string]int{"push error: " + rpcErrClass(err): 1})
				return
			}
			out.rounds[k].expected += uint64(resp.SessionMembers)
			out.route = resp.Route.String()
			for _, t := range resp.Targets { // direct route: a target not sent
				if t.Status != api.PushStatus_SENT && t.Status != api.PushStatus_ACKED {
					out.rounds[k].expected--
					out.rounds[k].refused++
					out.pushCodes = mergeCounts(out.pushCodes, map[string]int{"push " + t.Status.String(): 1})
				}
			}
		})
	})
	return stopWhen, wait, nil
}

// bindAll binds the run's n devices to session, in calls of at most maxPushTargets dids, and
// returns how many were online to bind.
func (p *kitexPusher) bindAll(ctx context.Context, session, runID string, n int) (int, error) {
	bound := 0
	for lo := 0; lo < n; lo += maxPushTargets {
		dids := make([]string, 0, min(maxPushTargets, n-lo))
		for i := lo; i < min(lo+maxPushTargets, n); i++ {
			dids = append(dids, didOf(runID, i))
		}
		resp, err := p.cli.Bind(ctx, &api.BindRequest{Caller: p.caller, Session: session, Dids: dids})
		if err != nil {
			return 0, fmt.Errorf("binding devices to session %s: %s", session, rpcErrClass(err))
		}
		bound += len(dids) - len(resp.Offline)
	}
	return bound, nil
}

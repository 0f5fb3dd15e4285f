package state

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/stage"
)

// routeLane is a Pipeline whose route stage answers at most once (not the host's own choice, so
// a push shows whether it was asked) and, unless sessionless is set, acts on session pushes only
// (stage.RouteSelector). It records the route events it gets.
type routeLane struct {
	sessionless atomic.Bool
	mu          sync.Mutex
	sessions    []string // the Session of each route event run through it
}

func (l *routeLane) Run(ev stage.Event, done func(pipeline.Outcome)) error {
	if ev.Signal != stage.SignalRoute {
		done(pipeline.Outcome{})
		return nil
	}
	l.mu.Lock()
	l.sessions = append(l.sessions, ev.Session)
	l.mu.Unlock()
	done(pipeline.Outcome{Verdict: stage.Continue, Route: stage.RouteDirect, QoS: stage.AtMostOnce})
	return nil
}

func (l *routeLane) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error {
	return l.Run(ev, done)
}

func (l *routeLane) Listens(_ string, sig stage.Signal) bool { return sig == stage.SignalRoute }

func (l *routeLane) ListensRoute(_ string, session bool) bool {
	return session || l.sessionless.Load()
}

func (l *routeLane) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sessions...)
}

// A push naming no session is routed without the pipeline when no stage would be called for it
// (qosroute's shipped config): direct, with the QoS asked for or at least once; a push naming a
// session still reaches the route stage, and with a stage that acts on every push, so do all.
func TestRouteSkipsThePipelineOnlyWhenNoStageActsOnThePush(t *testing.T) {
	ts := newTestServer(t)
	lane := &routeLane{}
	ts.UsePipeline(lane)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	a := &apiHandler{ts.Server}

	res, err := ts.PushBatch(ctxT(t), caller(), []*api.PushRequest{
		{Dids: []string{"a"}, Payload: []byte("1")},
		{Dids: []string{"b"}, Payload: []byte("2"), Qos: api.QoS_AT_MOST_ONCE},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := lane.seen(); len(got) != 0 {
		t.Fatalf("route events of session-less pushes ran through the pipeline: %q", got)
	}
	if r := res[0].Resp; r == nil || r.Qos != api.QoS_AT_LEAST_ONCE || r.Route != api.Route_DIRECT || r.Targets[0].Status != api.PushStatus_SENT {
		t.Fatalf("push 0: %+v; want direct, at least once (asked none), sent", res[0])
	}
	if r := res[1].Resp; r == nil || r.Qos != api.QoS_AT_MOST_ONCE || r.Targets[0].Status != api.PushStatus_SENT {
		t.Fatalf("push 1: %+v; want at most once as asked, sent", res[1])
	}
	resp, err := a.Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"a"}, Payload: []byte("3")})
	if err != nil || resp.Qos != api.QoS_AT_LEAST_ONCE || len(lane.seen()) != 0 {
		t.Fatalf("Push: %+v %v, route events %q", resp, err, lane.seen())
	}

	// A session push is the stage's: it is asked, and its answer is used.
	res, err = ts.PushBatch(ctxT(t), caller(), []*api.PushRequest{{Dids: []string{"a"}, Session: "room", Payload: []byte("4")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := lane.seen(); len(got) != 1 || got[0] != "room" {
		t.Fatalf("route events: %q, want the session push's", got)
	}
	if r := res[0].Resp; r == nil || r.Qos != api.QoS_AT_MOST_ONCE {
		t.Fatalf("session push: %+v; want the stage's at most once", res[0])
	}
	resp, err = a.Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"b"}, Session: "room", Payload: []byte("5")})
	if err != nil || resp.Qos != api.QoS_AT_MOST_ONCE || len(lane.seen()) != 2 {
		t.Fatalf("session Push: %+v %v, route events %q", resp, err, lane.seen())
	}

	// A stage that acts on every push (another config, after a reload) is asked about all.
	lane.sessionless.Store(true)
	res, err = ts.PushBatch(ctxT(t), caller(), []*api.PushRequest{{Dids: []string{"a"}, Payload: []byte("6")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := lane.seen(); len(got) != 3 || got[2] != "" {
		t.Fatalf("route events: %q, want the session-less push's too", got)
	}
	if r := res[0].Resp; r == nil || r.Qos != api.QoS_AT_MOST_ONCE {
		t.Fatalf("push after the reload: %+v; want the stage's at most once", res[0])
	}
	resp, err = a.Push(ctxT(t), &api.PushRequest{Caller: caller(), Dids: []string{"b"}, Payload: []byte("7")})
	if err != nil || resp.Qos != api.QoS_AT_MOST_ONCE || len(lane.seen()) != 4 {
		t.Fatalf("Push after the reload: %+v %v, route events %q", resp, err, lane.seen())
	}
}

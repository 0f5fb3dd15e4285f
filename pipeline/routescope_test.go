package pipeline

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

// routeGate is gateStage that, with config {"sessions_only": true}, acts only on session pushes'
// route events (stage.RouteSelector).
type routeGate struct {
	*gateStage
	only bool
}

func (g *routeGate) Init(ctx context.Context, req stage.InitRequest) error {
	var c struct {
		SessionsOnly bool `json:"sessions_only"`
	}
	if err := json.Unmarshal(req.Config, &c); err != nil {
		return err
	}
	g.only = c.SessionsOnly
	return g.gateStage.Init(ctx, req)
}

func (g *routeGate) RoutesSessionsOnly() bool { return g.only }

func (g *routeGate) OnRoute(ctx context.Context, ev *stage.RouteEvent) stage.Reply {
	return g.handle(ctx, stage.Event{Signal: stage.SignalRoute, Conn: stage.Conn{AppID: ev.AppID}, Session: ev.Session})
}

// routeCounter is fnStage handling route events too.
type routeCounter struct{ fnStage }

func (c *routeCounter) OnRoute(ctx context.Context, ev *stage.RouteEvent) stage.Reply {
	return c.handle(ctx, stage.Event{Signal: stage.SignalRoute, Conn: stage.Conn{AppID: ev.AppID}, Session: ev.Session})
}

func routeEv(app, session string) stage.Event {
	return stage.Event{Signal: stage.SignalRoute, Conn: stage.Conn{AppID: app}, Session: session, Targets: 1, MsgID: 7}
}

// A stage that acts on session pushes only is not called for the route events of pushes naming no
// session: they continue past it (the next stage still sees them); those naming a session reach
// it. ListensRoute and the status say so, and a reload to a config without it sends it every
// route event again.
func TestStageCalledOnlyForSessionRoutes(t *testing.T) {
	dir := t.TempDir()
	var calls [numSignalsForTest]atomic.Int64
	var after atomic.Int64
	cfg := gateConfig(&calls)
	cfg.Builtins["routegate"] = func() stage.Stage { return &routeGate{gateStage: newGate(&calls)} }
	cfg.Builtins["count"] = func() stage.Stage {
		return &routeCounter{fnStage{name: "count", fn: func(context.Context, *fnStage, stage.Event) stage.Reply {
			after.Add(1)
			return stage.Reply{}
		}}}
	}
	cfg.Dir = dir
	file := func(config string) string {
		return fileYAML(stageYAML("gate", "builtin:routegate", "route", "config: "+config), stageYAML("after", "builtin:count", "route"))
	}
	writePipeline(t, dir, "chat", file(`{sessions_only: true, acts_on: [route]}`))
	writePipeline(t, dir, "solo", fileYAML(stageYAML("gate", "builtin:routegate", "route", "config: {sessions_only: true, acts_on: [route]}")))
	p := start(t, cfg)
	route := sigIndex(stage.SignalRoute)

	for i := 0; i < 3; i++ {
		if o := runWait(t, p, routeEv("chat", "")); o.Verdict != stage.Continue {
			t.Fatalf("a push naming no session: %+v; want it past the gate", o)
		}
	}
	if n := calls[route].Load(); n != 0 {
		t.Fatalf("the gate was called for %d session-less route events", n)
	}
	if n := after.Load(); n != 3 {
		t.Fatalf("the next stage saw %d route events, want 3", n)
	}
	if o := runWait(t, p, routeEv("chat", "room")); o.Verdict != stage.Reject || o.Code != 2001 {
		t.Fatalf("a session push: %+v; want the gate's 2001", o)
	}
	if n := calls[route].Load(); n != 1 {
		t.Fatalf("the gate was called for %d session route events, want 1", n)
	}
	// chat's next stage still listens to every route event; solo's only stage does not.
	if !p.ListensRoute("chat", false) || !p.ListensRoute("chat", true) {
		t.Fatal("chat: ListensRoute says nobody listens")
	}
	if p.ListensRoute("solo", false) || !p.ListensRoute("solo", true) {
		t.Fatalf("solo: ListensRoute(false) %v, (true) %v; want false, true", p.ListensRoute("solo", false), p.ListensRoute("solo", true))
	}
	if p.ListensRoute("nochain", true) != p.Listens("nochain", stage.SignalRoute) {
		t.Fatal("ListensRoute and Listens disagree about an app without a file")
	}
	if st := stageStatus(t, p, "solo", "gate"); !st.RouteSessionsOnly {
		t.Fatalf("status: %+v", st)
	}

	// Reload without it: every route event reaches the gate.
	writePipeline(t, dir, "chat", file(`{sessions_only: false, acts_on: [route]}`))
	if err := p.Reload("chat"); err != nil {
		t.Fatal(err)
	}
	if o := runWait(t, p, routeEv("chat", "")); o.Verdict != stage.Reject || o.Code != 2001 {
		t.Fatalf("a push naming no session after the reload: %+v; want the gate's 2001", o)
	}
	if st := stageStatus(t, p, "chat", "gate"); st.RouteSessionsOnly {
		t.Fatalf("status after the reload: %+v", st)
	}
}

package qosroutestage_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/platoim/plato/plugins/qosroute/qosroutestage"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

func harness(t *testing.T, config map[string]any) *stagetest.Harness {
	t.Helper()
	return stagetest.New(t, qosroutestage.New(), stagetest.Options{App: "demo", Config: config})
}

type routeCase struct {
	name string
	ev   stage.RouteEvent
	want stage.Reply
}

func check(t *testing.T, h *stagetest.Harness, cases []routeCase) {
	t.Helper()
	for _, c := range cases {
		c.ev.MsgID, c.ev.Payload = 42, []byte("payload")
		if got := h.Route(c.ev); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSignals(t *testing.T) {
	h := harness(t, nil)
	if !reflect.DeepEqual(h.Signals, []stage.Signal{stage.SignalRoute}) || h.Info.Name != "qosroute" {
		t.Errorf("info %+v, signals %v", h.Info, h.Signals)
	}
}

func TestDefaults(t *testing.T) {
	h := harness(t, nil)
	check(t, h, []routeCase{
		{"dids only", stage.RouteEvent{Targets: 3}, stage.Routed(stage.RouteDirect, stage.AtLeastOnce)},
		{"no session, many targets", stage.RouteEvent{Targets: 5000, Members: 5000}, stage.Routed(stage.RouteDirect, stage.AtLeastOnce)},
		{"small session", stage.RouteEvent{Session: "room", Members: 199}, stage.Routed(stage.RouteDirect, stage.AtLeastOnce)},
		{"big session", stage.RouteEvent{Session: "room", Members: 200}, stage.Routed(stage.RouteBroadcast, stage.AtMostOnce)},
		{"big session with dids", stage.RouteEvent{Session: "room", Targets: 2, Members: 10000}, stage.Routed(stage.RouteBroadcast, stage.AtMostOnce)},
		{"empty session", stage.RouteEvent{Session: "room"}, stage.Routed(stage.RouteDirect, stage.AtLeastOnce)},
		// The business's request wins.
		{"small session, at most once asked", stage.RouteEvent{Session: "room", Members: 3, QoS: stage.AtMostOnce},
			stage.Routed(stage.RouteDirect, stage.AtMostOnce)},
		{"big session, at least once asked", stage.RouteEvent{Session: "room", Members: 500, QoS: stage.AtLeastOnce},
			stage.Routed(stage.RouteBroadcast, stage.AtLeastOnce)},
		// A QoS the stage does not know is no request.
		{"unknown QoS asked", stage.RouteEvent{Targets: 1, QoS: stage.QoS(9)}, stage.Routed(stage.RouteDirect, stage.AtLeastOnce)},
	})
}

func TestConfigured(t *testing.T) {
	h := harness(t, map[string]any{"broadcast_min_members": 10, "qos": "at_most_once", "broadcast_qos": "at_least_once", "honor_request": false})
	check(t, h, []routeCase{
		{"dids only", stage.RouteEvent{Targets: 1}, stage.Routed(stage.RouteDirect, stage.AtMostOnce)},
		{"small session", stage.RouteEvent{Session: "s", Members: 9}, stage.Routed(stage.RouteDirect, stage.AtMostOnce)},
		{"big session", stage.RouteEvent{Session: "s", Members: 10}, stage.Routed(stage.RouteBroadcast, stage.AtLeastOnce)},
		// honor_request off: the configured QoS wins over the business's.
		{"asked at least once", stage.RouteEvent{Targets: 1, QoS: stage.AtLeastOnce}, stage.Routed(stage.RouteDirect, stage.AtMostOnce)},
		{"asked at most once", stage.RouteEvent{Session: "s", Members: 50, QoS: stage.AtMostOnce},
			stage.Routed(stage.RouteBroadcast, stage.AtLeastOnce)},
	})
}

// A batch of pushes of several apps, as the host sends them, gets one choice per push.
func TestBatch(t *testing.T) {
	h := harness(t, map[string]any{"broadcast_min_members": 2})
	replies, err := h.Process(
		stagetest.RouteSignal(stage.RouteEvent{AppID: "a", Session: "s", Members: 2}),
		stagetest.RouteSignal(stage.RouteEvent{AppID: "b", Targets: 1}),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []stage.Reply{stage.Routed(stage.RouteBroadcast, stage.AtMostOnce), stage.Routed(stage.RouteDirect, stage.AtLeastOnce)}
	if !reflect.DeepEqual(replies, want) {
		t.Errorf("replies %+v, want %+v", replies, want)
	}
}

func TestInitError(t *testing.T) {
	h := stagetest.New(t, qosroutestage.New(), stagetest.Options{Config: map[string]any{"qos": "maybe"}, SkipInit: true})
	if err := h.Init(); err == nil || !strings.Contains(err.Error(), "qos") {
		t.Errorf("Init: %v", err)
	}
}

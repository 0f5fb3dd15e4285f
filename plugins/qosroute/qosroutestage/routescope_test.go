package qosroutestage_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/platoim/plato/plugins/qosroute/qosroutestage"
	"github.com/platoim/plato/sdk/stage"
)

// The stage tells the host it acts on session pushes only exactly when its answer to a push naming
// no session is the host's own choice without it (direct; the QoS asked for, at least once when
// none): checked against OnRoute for every QoS a push can ask, so the declaration cannot drift
// from the handler.
func TestRoutesSessionsOnlyMatchesTheHostsChoice(t *testing.T) {
	for _, tc := range []struct {
		config map[string]any
		want   bool
	}{
		{nil, true},
		{map[string]any{"broadcast_min_members": 5, "broadcast_qos": "at_least_once"}, true},
		{map[string]any{"qos": "at_most_once"}, false},
		{map[string]any{"honor_request": false}, false},
		{map[string]any{"qos": "at_least_once", "honor_request": true}, true},
	} {
		q := qosroutestage.New().(*qosroutestage.QoSRoute)
		raw, _ := json.Marshal(tc.config)
		if tc.config == nil {
			raw = nil
		}
		if err := q.Init(context.Background(), stage.InitRequest{Config: raw}); err != nil {
			t.Fatal(err)
		}
		got := q.RoutesSessionsOnly()
		if got != tc.want {
			t.Errorf("config %s: RoutesSessionsOnly %v, want %v", raw, got, tc.want)
		}
		hostsOwn := true
		for _, asked := range []stage.QoS{stage.QoSDefault, stage.AtMostOnce, stage.AtLeastOnce} {
			r := q.OnRoute(context.Background(), &stage.RouteEvent{AppID: "demo", Targets: 1, QoS: asked, Payload: []byte("p")})
			host := asked
			if host == stage.QoSDefault {
				host = stage.AtLeastOnce
			}
			if r.Verdict != stage.Continue || r.Payload != nil || (r.Route != stage.RouteDirect && r.Route != stage.RouteDefault) || (r.QoS != host && r.QoS != stage.QoSDefault) {
				hostsOwn = false
			}
		}
		if got != hostsOwn {
			t.Errorf("config %s: RoutesSessionsOnly %v, but its answers to pushes without a session are the host's own: %v", raw, got, hostsOwn)
		}
	}
	if (&qosroutestage.QoSRoute{}).RoutesSessionsOnly() {
		t.Error("before Init the stage has no opinion, and says so")
	}
}

package qosroutestage

import (
	"reflect"
	"strings"
	"testing"

	"github.com/platoim/plato/sdk/stage"
)

func TestParseConfig(t *testing.T) {
	def := Config{BroadcastMinMembers: DefaultBroadcastMinMembers, QoS: stage.AtLeastOnce, BroadcastQoS: stage.AtMostOnce, HonorRequest: true}
	for raw, want := range map[string]Config{
		``:   def,
		`{}`: def,
		`{"broadcast_min_members": 1, "qos": "at_most_once", "broadcast_qos": "at_least_once", "honor_request": false}`: {
			BroadcastMinMembers: 1, QoS: stage.AtMostOnce, BroadcastQoS: stage.AtLeastOnce},
		`{"honor_request": true, "qos": "at_least_once"}`: def,
	} {
		got, err := parseConfig([]byte(raw))
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", raw, got, want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for raw, want := range map[string]string{
		`{"broadcast_min_members": 0}`:      "broadcast_min_members: must be at least 1, got 0",
		`{"broadcast_min_members": -5}`:     "broadcast_min_members: must be at least 1, got -5",
		`{"broadcast_min_members": "many"}`: "decoding config",
		`{"broadcast_min_members": 1.5}`:    "decoding config",
		`{"qos": "exactly_once"}`:           `qos: "exactly_once" is neither "at_least_once" nor "at_most_once"`,
		`{"broadcast_qos": "AtMostOnce"}`:   `broadcast_qos: "AtMostOnce" is neither`,
		`{"honor_request": "yes"}`:          "decoding config",
		`{"broadcast_min_member": 10}`:      "unknown field",
	} {
		_, err := parseConfig([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "qosroute: ") {
			t.Errorf("%s: got error %v, want one containing %q", raw, err, want)
		}
	}
}

// The config spells QoS as stage.QoS.String does, so logs and YAML agree.
func TestQoSNames(t *testing.T) {
	if stage.AtLeastOnce.String() != AtLeastOnce || stage.AtMostOnce.String() != AtMostOnce {
		t.Errorf("stage spells %q and %q", stage.AtLeastOnce, stage.AtMostOnce)
	}
}

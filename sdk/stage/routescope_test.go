package stage

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// sessionRouter acts on session pushes' route events only when its config says so.
type sessionRouter struct {
	echoStage
	only, boom bool
}

func (s *sessionRouter) Init(_ context.Context, req InitRequest) error {
	var c struct {
		Only bool `json:"only"`
		Boom bool `json:"boom"`
	}
	if err := json.Unmarshal(req.Config, &c); err != nil {
		return err
	}
	s.only, s.boom = c.Only, c.Boom
	return nil
}

func (s *sessionRouter) RoutesSessionsOnly() bool {
	if s.boom {
		panic("routes exploded")
	}
	return s.only
}

// The answer of RoutesSessionsOnly is what the host reads after each Init, in process and over
// gRPC alike; a re-Init replaces it; a stage without it, or before any Init, says false; a panic
// fails the Init. It is independent of ActsOn (sessionRouter has none).
func TestDeclaredSessionRoutesOnly(t *testing.T) {
	for name, p := range map[string]Processor{
		"in process": InProcess(&sessionRouter{}),
		"plugin":     startPair(t, &sessionRouter{}),
	} {
		if SessionRoutesOnly(p) {
			t.Fatalf("%s: declared before Init", name)
		}
		for _, tc := range []struct {
			config string
			want   bool
		}{{`{"only": true}`, true}, {`{}`, false}, {`{"only": true}`, true}} {
			if err := initWith(t, p, tc.config); err != nil {
				t.Fatal(err)
			}
			if got := SessionRoutesOnly(p); got != tc.want {
				t.Errorf("%s, config %s: declared %v, want %v", name, tc.config, got, tc.want)
			}
			if _, declared := Declared(p); declared {
				t.Errorf("%s: a stage without ActsOn declared signals", name)
			}
		}
		if err := initWith(t, p, `{"boom": true}`); err == nil || !strings.Contains(err.Error(), "routes exploded") {
			t.Errorf("%s: a panicking RoutesSessionsOnly: Init returned %v", name, err)
		}
	}
	for name, p := range map[string]Processor{"in process": InProcess(echoStage{}), "plugin": startPair(t, echoStage{})} {
		if err := initWith(t, p, `{}`); err != nil {
			t.Fatal(err)
		}
		if SessionRoutesOnly(p) {
			t.Errorf("%s: a stage without RoutesSessionsOnly declared it", name)
		}
	}
}

// route_sessions_only is an optional protobuf field: an older plugin's InitResponse reads false
// (every route event is sent), and the field survives the wire next to acts_on.
func TestRouteSessionsOnlyOnTheWire(t *testing.T) {
	var fromOld pb.InitResponse
	if err := proto.Unmarshal(nil, &fromOld); err != nil || fromOld.GetRouteSessionsOnly() {
		t.Fatalf("an old plugin's answer: %v %+v", err, &fromOld)
	}
	b, err := proto.Marshal(&pb.InitResponse{ActsOnDeclared: true, ActsOn: []string{"route"}, RouteSessionsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var got pb.InitResponse
	if err := proto.Unmarshal(b, &got); err != nil || !got.GetRouteSessionsOnly() || !got.GetActsOnDeclared() {
		t.Fatalf("decoded %v %+v", err, &got)
	}
}

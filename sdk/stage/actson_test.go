package stage

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

// selective acts on the signals its config names under "acts_on".
type selective struct {
	echoStage
	acts []Signal
	boom bool
}

func (s *selective) Init(_ context.Context, req InitRequest) error {
	var c struct {
		ActsOn []Signal `json:"acts_on"`
		Boom   bool     `json:"boom"`
	}
	if err := json.Unmarshal(req.Config, &c); err != nil {
		return err
	}
	s.acts, s.boom = c.ActsOn, c.Boom
	return nil
}

func (s *selective) ActsOn() []Signal {
	if s.boom {
		panic("acts_on exploded")
	}
	return s.acts
}

// startPair serves s over an in-memory gRPC connection (the plugin side's server, the host
// side's remote) and returns the host side.
func startPair(t *testing.T, s Stage) Processor {
	t.Helper()
	srv := grpc.NewServer()
	pb.RegisterStageServer(srv, newServer(s, newStderrLogger(), nil))
	r := newRemote(serveInMemory(t, srv), nil)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func initWith(t *testing.T, p Processor, config string) error {
	t.Helper()
	return p.Init(context.Background(), InitRequest{Config: []byte(config)})
}

// In process, the declaration is what ActsOn answered after the last successful Init; a stage
// without ActsOn declares nothing; a panicking ActsOn fails the Init.
func TestInProcessDeclaredSignals(t *testing.T) {
	p := InProcess(&selective{})
	if _, declared := Declared(p); declared {
		t.Fatal("declared before Init")
	}
	for _, tc := range []struct {
		config string
		want   []Signal
	}{
		{`{"acts_on": ["login"]}`, []Signal{SignalLogin}},
		{`{"acts_on": ["login", "uplink"]}`, []Signal{SignalLogin, SignalUplink}},
		{`{}`, []Signal{}}, // a nil answer is an empty declaration, not "nothing declared"
	} {
		if err := initWith(t, p, tc.config); err != nil {
			t.Fatal(err)
		}
		if got, declared := Declared(p); !declared || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("config %s: declared %v %v, want %v", tc.config, declared, got, tc.want)
		}
	}
	if err := initWith(t, p, `{"boom": true}`); err == nil || !strings.Contains(err.Error(), "acts_on exploded") {
		t.Errorf("a panicking ActsOn: Init returned %v", err)
	}

	plain := InProcess(echoStage{})
	if err := initWith(t, plain, `{}`); err != nil {
		t.Fatal(err)
	}
	if got, declared := Declared(plain); declared || got != nil {
		t.Errorf("a stage without ActsOn declared %v %v", declared, got)
	}
}

// Over gRPC (the adapters a plugin and the host use), the declaration crosses in InitResponse,
// a re-Init replaces it, and a stage without ActsOn declares nothing.
func TestRemoteDeclaredSignals(t *testing.T) {
	sel := &selective{}
	p := startPair(t, sel)
	if err := initWith(t, p, `{"acts_on": ["login"]}`); err != nil {
		t.Fatal(err)
	}
	if got, declared := Declared(p); !declared || !reflect.DeepEqual(got, []Signal{SignalLogin}) {
		t.Fatalf("declared %v %v", declared, got)
	}
	if err := initWith(t, p, `{"acts_on": []}`); err != nil {
		t.Fatal(err)
	}
	if got, declared := Declared(p); !declared || len(got) != 0 {
		t.Fatalf("after re-Init: declared %v %v, want an empty declaration", declared, got)
	}
	if err := initWith(t, p, `{"boom": true}`); err == nil || !strings.Contains(err.Error(), "acts_on exploded") {
		t.Errorf("a panicking ActsOn: Init returned %v", err)
	}

	plain := startPair(t, echoStage{})
	if err := initWith(t, plain, `{}`); err != nil {
		t.Fatal(err)
	}
	if got, declared := Declared(plain); declared || got != nil {
		t.Errorf("a plugin stage without ActsOn declared %v %v", declared, got)
	}
}

// The fields are optional protobuf: an InitResponse from an older plugin (empty) reads as
// nothing declared, and an older host, which knows InitResponse as an empty message, reads a new
// one without error.
func TestInitResponseCompatibility(t *testing.T) {
	var fromOld pb.InitResponse
	if err := proto.Unmarshal(nil, &fromOld); err != nil || fromOld.GetActsOnDeclared() || fromOld.GetActsOn() != nil {
		t.Fatalf("an old plugin's answer: %v %+v", err, &fromOld)
	}
	b, err := proto.Marshal(&pb.InitResponse{ActsOnDeclared: true, ActsOn: []string{"login"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, &emptypb.Empty{}); err != nil {
		t.Fatalf("an old host reading a new answer: %v", err)
	}
}

package sessionbindstage_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/platoim/plato/plugins/sessionbind/sessionbindstage"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
	"github.com/platoim/plato/sdk/stage/stagetest"
)

func harness(t *testing.T, host *stagetest.Host, config map[string]any) *stagetest.Harness {
	t.Helper()
	return stagetest.New(t, sessionbindstage.New(), stagetest.Options{App: "demo", Config: config, Host: host})
}

func wantContinue(t *testing.T, r stage.Reply) {
	t.Helper()
	if !reflect.DeepEqual(r, stage.Reply{}) {
		t.Fatalf("login: got %+v, want continue", r)
	}
}

func wantReject(t *testing.T, r stage.Reply, code protocol.Code) {
	t.Helper()
	if r.Verdict != stage.Reject || r.Code != uint16(code) {
		t.Fatalf("login: got %+v, want a reject with %d", r, code)
	}
}

func TestSignals(t *testing.T) {
	h := harness(t, nil, nil)
	if !reflect.DeepEqual(h.Signals, []stage.Signal{stage.SignalLogin}) {
		t.Errorf("signals = %v", h.Signals)
	}
	if h.Info.Name != "sessionbind" {
		t.Errorf("info = %+v", h.Info)
	}
}

func TestJoinsTheBusinessSessions(t *testing.T) {
	h := harness(t, nil, nil)
	h.Host.SetSessions("demo", "d1", "room-1", "room-2")
	c := h.Conn("d1")
	c.UID = "u1"
	h.Host.SessionsFunc = func(ctx context.Context, conn stage.Conn) ([]string, error) {
		// The stage asks about the connection logging in, within its 500ms default timeout.
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > sessionbindstage.DefaultTimeout {
			t.Errorf("Sessions ctx deadline %v %v: want at most %s away", dl, ok, sessionbindstage.DefaultTimeout)
		}
		if conn != c {
			t.Errorf("Sessions asked about %+v, want %+v", conn, c)
		}
		return []string{"room-1", "room-2"}, nil
	}
	wantContinue(t, h.Login(c, "tok"))
	if got := h.Host.Joined(c); !reflect.DeepEqual(got, []string{"room-1", "room-2"}) {
		t.Errorf("joined = %v", got)
	}
	if j := h.Host.Joins(); len(j) != 1 || j[0].Conn != c {
		t.Errorf("joins = %+v", j)
	}
	// Closing the connection leaves them (the host's doing; the stage does not handle disconnect).
	h.Disconnect(c, uint16(protocol.CodeClientClose))
	if got := h.Host.Joined(c); len(got) != 0 {
		t.Errorf("joined after close = %v", got)
	}
}

func TestAlwaysMergedAndBadNamesSkipped(t *testing.T) {
	h := harness(t, nil, map[string]any{"always": []string{"lobby", "news"}})
	h.Host.SetSessions("demo", "d1", "room-1", "lobby", "", "bad\x00name", strings.Repeat("x", 257), "room-1")
	c := h.Conn("d1")
	wantContinue(t, h.Login(c, "tok"))
	j := h.Host.Joins()
	if len(j) != 1 || !reflect.DeepEqual(j[0].Sessions, []string{"lobby", "news", "room-1"}) {
		t.Errorf("joins = %+v", j)
	}
	// A device the business server has no sessions for still joins the app-wide ones.
	c2 := h.Conn("d2")
	wantContinue(t, h.Login(c2, "tok"))
	if got := h.Host.Joined(c2); !reflect.DeepEqual(got, []string{"lobby", "news"}) {
		t.Errorf("d2 joined %v", got)
	}
}

func TestNothingToJoin(t *testing.T) {
	h := harness(t, nil, nil)
	wantContinue(t, h.Login(h.Conn("d1"), "tok"))
	if j := h.Host.Joins(); len(j) != 0 {
		t.Errorf("joins = %+v, want no Join call", j)
	}
}

// flakyHost is a Host whose business server and Join fail by did: "down" fails, "slow" hangs until
// the stage gives up, "slow-own" hangs then reports an error of its own, "gone" fails the Join;
// any other did gets room-1.
func flakyHost() *stagetest.Host {
	host := stagetest.NewHost()
	host.SessionsFunc = func(ctx context.Context, conn stage.Conn) ([]string, error) {
		switch conn.DID {
		case "down":
			return nil, errors.New("business server unreachable")
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "slow-own":
			<-ctx.Done()
			return nil, errors.New("business RPC: i/o timeout")
		}
		return []string{"room-1"}, nil
	}
	host.Fail = func(method string) error {
		if method == "Join" {
			return errJoin
		}
		return nil
	}
	return host
}

var errJoin = errors.New("connection gone")

func TestFailureAllowed(t *testing.T) {
	host := flakyHost()
	host.Fail = nil
	h := harness(t, host, map[string]any{"timeout": "20ms", "always": []string{"lobby"}})
	c := h.Conn("down")
	wantContinue(t, h.Login(c, "tok"))
	if got := host.Joined(c); !reflect.DeepEqual(got, []string{"lobby"}) {
		t.Errorf("joined = %v, want the configured sessions anyway", got)
	}
	// A timeout is allowed too, and the stage gives up after its own timeout, not the batch's.
	start := time.Now()
	c = h.Conn("slow")
	wantContinue(t, h.Login(c, "tok"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("login took %s with a 20ms timeout", d)
	}
	if got := host.Joined(c); !reflect.DeepEqual(got, []string{"lobby"}) {
		t.Errorf("joined = %v, want the configured sessions anyway", got)
	}
}

func TestJoinFailureAllowed(t *testing.T) {
	h := harness(t, flakyHost(), nil)
	wantContinue(t, h.Login(h.Conn("d1"), "tok"))
}

func TestFailureRefused(t *testing.T) {
	host := flakyHost()
	h := harness(t, host, map[string]any{"on_failure": "refuse", "timeout": "20ms", "always": []string{"lobby"}})
	wantReject(t, h.Login(h.Conn("down"), "tok"), protocol.CodeBusinessUnavailable)
	wantReject(t, h.Login(h.Conn("slow"), "tok"), protocol.CodeBusinessTimeout)
	wantReject(t, h.Login(h.Conn("slow-own"), "tok"), protocol.CodeBusinessTimeout)
	wantReject(t, h.Login(h.Conn("d1"), "tok"), protocol.CodePipelineFailed)
	if j := host.Joins(); len(j) != 0 {
		t.Errorf("refused logins joined %+v", j)
	}
}

// TestFailureRefusedInProcess runs the stage in process, where the host's own error for a passed
// deadline reaches the stage unchanged (over gRPC the client reports the deadline itself).
func TestFailureRefusedInProcess(t *testing.T) {
	p := stage.InProcess(sessionbindstage.New())
	err := p.Init(context.Background(), stage.InitRequest{Config: []byte(`{"on_failure":"refuse","timeout":"20ms"}`), Host: flakyHost(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	events := []stage.Event{
		{Signal: stage.SignalLogin, Conn: stage.Conn{AppID: "demo", DID: "slow-own"}},
		{Signal: stage.SignalLogin, Conn: stage.Conn{AppID: "demo", DID: "down"}},
	}
	replies := make([]stage.Reply, len(events))
	if err := p.Process(context.Background(), events, replies); err != nil {
		t.Fatal(err)
	}
	wantReject(t, replies[0], protocol.CodeBusinessTimeout)
	wantReject(t, replies[1], protocol.CodeBusinessUnavailable)
}

func TestInitErrors(t *testing.T) {
	h := stagetest.New(t, sessionbindstage.New(), stagetest.Options{Config: map[string]any{"on_failure": "maybe"}, SkipInit: true})
	if err := h.Init(); err == nil || !strings.Contains(err.Error(), "on_failure") {
		t.Errorf("Init: %v", err)
	}
	if err := sessionbindstage.New().Init(context.Background(), stage.InitRequest{Config: []byte("{}")}); err == nil {
		t.Error("Init without a Host succeeded")
	}
}

// TestConcurrentLogins runs logins of many connections at once, for the race detector.
func TestConcurrentLogins(t *testing.T) {
	h := harness(t, nil, map[string]any{"always": []string{"lobby"}})
	const n = 32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			c := h.Conn("d" + string(rune('a'+i%26)))
			r, err := h.Process(stage.Event{Signal: stage.SignalLogin, Conn: c, Token: "tok"})
			if err == nil && r[0].Verdict != stage.Continue {
				err = errors.New("login refused")
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := len(h.Host.Joins()); got != n {
		t.Errorf("joins = %d, want %d", got, n)
	}
}

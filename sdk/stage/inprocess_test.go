package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type panicky struct{ echoStage }

func (panicky) OnLogin(context.Context, *LoginEvent) Reply { panic("login exploded") }

func TestInProcess(t *testing.T) {
	var logged strings.Builder
	p := InProcess(panicky{})
	info, sigs, err := p.Describe(context.Background())
	if err != nil || info.Name != "echo" || !reflect.DeepEqual(sigs, []Signal{SignalLogin, SignalUplink}) {
		t.Fatalf("describe: %+v %v %v", info, sigs, err)
	}
	if err := p.Init(context.Background(), InitRequest{Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
		t.Fatal(err)
	}
	replies := make([]Reply, 2)
	if err := p.Process(context.Background(), uplinks("a", "b"), replies); err != nil || string(replies[1].Payload) != "b" {
		t.Fatalf("process: %v %+v", err, replies)
	}
	err = p.Process(context.Background(), []Event{{Signal: SignalLogin}}, replies)
	var be *BatchError
	if !errors.As(err, &be) || be.Message != "panic: login exploded" {
		t.Fatalf("panic: %v", err)
	}
	if !strings.Contains(logged.String(), "login exploded") || !strings.Contains(logged.String(), "goroutine") {
		t.Errorf("panic not logged with its stack: %s", logged.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Process(ctx, uplinks("a"), replies); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	_ = p.Close()
	if err := p.Process(context.Background(), uplinks("a"), replies); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestDispatchAllocatesPerBatchNotPerEvent(t *testing.T) {
	h := handlersOf(echoStage{})
	events := uplinks(make([]string, 64)...)
	replies := make([]Reply, len(events))
	allocs := testing.AllocsPerRun(100, func() { h.dispatch(context.Background(), events, replies, true) })
	if allocs > 1 {
		t.Errorf("dispatch of 64 events: %v allocations, want at most 1", allocs)
	}
}

// router routes sessions of 10 members or more by broadcast, and checks what it was handed.
type router struct{ echoStage }

func (router) OnRoute(_ context.Context, ev *RouteEvent) Reply {
	if ev.AppID != "a" || ev.MsgID == 0 || ev.QoS != AtLeastOnce || ev.Targets != 2 || len(ev.Payload) == 0 {
		return RejectWith(2000, "bad event")
	}
	if ev.Members >= 10 {
		return Routed(RouteBroadcast, AtMostOnce)
	}
	return Routed(RouteDirect, QoSDefault)
}

func routes(sessions ...string) []Event {
	evs := make([]Event, len(sessions))
	for i, s := range sessions {
		evs[i] = Event{Signal: SignalRoute, Conn: Conn{AppID: "a"}, Session: s, Targets: 2, Members: 10 * i,
			MsgID: uint64(i + 1), Payload: []byte("p"), QoS: AtLeastOnce}
	}
	return evs
}

func TestInProcessRoute(t *testing.T) {
	p := InProcess(router{})
	_, sigs, err := p.Describe(context.Background())
	if err != nil || !reflect.DeepEqual(sigs, []Signal{SignalUplink, SignalRoute}) {
		t.Fatalf("describe: %v %v", sigs, err)
	}
	if err := p.Init(context.Background(), InitRequest{}); err != nil {
		t.Fatal(err)
	}
	replies := make([]Reply, 2)
	if err := p.Process(context.Background(), routes("s\xff", "big"), replies); err != nil {
		t.Fatal(err)
	}
	want := []Reply{Routed(RouteDirect, QoSDefault), Routed(RouteBroadcast, AtMostOnce)}
	if !reflect.DeepEqual(replies, want) {
		t.Errorf("replies = %+v, want %+v", replies, want)
	}
}

func TestDispatchRouteAllocatesPerBatchNotPerEvent(t *testing.T) {
	h := handlersOf(router{})
	events := routes(make([]string, 64)...)
	replies := make([]Reply, len(events))
	allocs := testing.AllocsPerRun(100, func() { h.dispatch(context.Background(), events, replies, true) })
	if allocs > 1 {
		t.Errorf("dispatch of 64 route events: %v allocations, want at most 1", allocs)
	}
}

// A Host error that comes after the call's deadline is reported to the plugin as the deadline.
func TestToStatusDeadline(t *testing.T) {
	expired, cancel := context.WithTimeout(context.Background(), -1)
	defer cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want codes.Code
	}{
		{context.Background(), errors.New("x"), codes.Unknown},
		{context.Background(), fmt.Errorf("wrapped: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Background(), context.Canceled, codes.Canceled},
		{expired, errors.New("business RPC: i/o timeout"), codes.DeadlineExceeded},
	} {
		if got := status.Code(toStatus(c.ctx, c.err)); got != c.want {
			t.Errorf("%v: code %v, want %v", c.err, got, c.want)
		}
	}
	// The plugin's side turns the code back into the context's error.
	if err := callError("host sessions", toStatus(expired, errors.New("x"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v is not DeadlineExceeded", err)
	}
}

package stage

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
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

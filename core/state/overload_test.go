package state_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/core/state/statetest"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// A state server whose heap is over state.overload.memory_limit refuses logins (LoginAck 1303)
// and uplinks (UplinkAck 1303) and sheds the session pushes it would broadcast (1303 to the
// business); a logged-in device keeps its connection, and all is taken again once the pressure is
// gone.
func TestAnOverloadedStateServerShedsLoad(t *testing.T) {
	const margin = 256 << 20
	heap := func() int64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	route := func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalRoute {
			done(pipeline.Outcome{Route: stage.RouteBroadcast, QoS: stage.AtMostOnce})
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}
	h := statetest.Start(t, statetest.Options{Pipeline: pipeFunc(route), Configure: func(c *state.Config) {
		c.Overload.MemoryLimit = heap() + margin
	}})
	alice := h.Gateway.Connect(statetest.App, "alice", "")
	if ack := alice.Login(t); ack.Code != protocol.CodeOK {
		t.Fatalf("login before the overload: %+v", ack)
	}
	plato := h.Client(t, statetest.App)
	if _, err := plato.Bind(ctx(t), "room", "alice"); err != nil {
		t.Fatal(err)
	}
	// A ballast over the limit; its pages are never touched, but the heap counts them.
	overloadBallast = make([]byte, 2*margin)
	n := 0
	poll.Until(t, "a login to be refused 1303", func() bool {
		n++
		d := h.Gateway.Connect(statetest.App, fmt.Sprintf("bob-%d", n), "")
		return d.Login(t).Code == protocol.CodeOverloaded
	})
	if ack := alice.Uplink(t, 1, []byte("hi")); ack.Code != protocol.CodeOverloaded {
		t.Fatalf("uplink on an overloaded state server: %+v, want 1303", ack)
	}
	if _, err := plato.Push(ctx(t), business.Push{Session: "room", Payload: []byte("all")}); business.CodeOf(err) != int(protocol.CodeOverloaded) {
		t.Fatalf("a broadcast push on an overloaded state server: %v, want 1303", err)
	}
	for _, f := range alice.Frames() {
		if f.Signal == protocol.SigClose {
			t.Fatalf("a logged-in device was closed for overload: %+v", f)
		}
	}
	overloadBallast = nil
	runtime.GC()
	poll.Until(t, "broadcasts to be taken again", func() bool {
		_, err := plato.Push(ctx(t), business.Push{Session: "room", Payload: []byte("all")})
		return err == nil
	})
	if ack := alice.Uplink(t, 2, []byte("again")); ack.Code != protocol.CodeOK {
		t.Fatalf("uplink after the overload: %+v", ack)
	}
}

// overloadBallast is package-level so that the compiler keeps the allocation.
var overloadBallast []byte

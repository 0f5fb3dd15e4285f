package state_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/platoim/plato/core/state"
	"github.com/platoim/plato/core/state/statetest"
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/pipeline"
	"github.com/platoim/plato/sdk/business"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

// These tests run a real state server (statetest): Kitex on loopback, NATS registry, a fake
// gateway and a fake business server. The logic is unit tested in package state; here is what
// only the wiring can get wrong: proofs, RPC encodings, the registry, batching.

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestStateServerLoginThenUplinkIsACKedWithTheBusinessAnswer(t *testing.T) {
	h := statetest.Start(t, statetest.Options{})
	h.Business.SetUplink(func(ev *api.Event) (int32, string) {
		if string(ev.Payload) == "spam" {
			return 2042, "no spam"
		}
		return 0, ""
	})
	d := h.Gateway.Connect(statetest.App, "phone", "alice")
	ack := d.Login(t)
	if ack.Code != protocol.CodeOK || ack.ConnID != d.ConnID || ack.HeartbeatMs == 0 {
		t.Fatalf("LoginAck %+v", ack)
	}
	if f := d.Frames()[0]; !f.LoginOK || f.DID != "phone" {
		t.Errorf("the LoginAck does not tell the gateway to index the did: %+v", f)
	}
	connected := h.Business.WaitEvents(t, api.EventKind_CONNECTED, "phone", 1)[0]
	if connected.Uid != "alice" || connected.ConnId != int64(d.ConnID) || connected.GatewayId != statetest.GatewayID {
		t.Errorf("CONNECTED %+v", connected)
	}
	for _, tc := range []struct {
		seq     uint64
		payload string
		code    protocol.Code
	}{{1, "hello", 0}, {2, "spam", 2042}, {2, "spam", protocol.CodeDuplicate}, {3, "bye", 0}} {
		if a := d.Uplink(t, tc.seq, []byte(tc.payload)); a.Code != tc.code {
			t.Errorf("uplink %d %q: ACK %+v, want code %d", tc.seq, tc.payload, a, tc.code)
		}
	}
	var got []string
	for _, ev := range h.Business.Events(api.EventKind_UPLINK, "phone") {
		got = append(got, string(ev.Payload))
	}
	if !slices.Equal(got, []string{"hello", "spam", "bye"}) {
		t.Errorf("the business got %q, want each uplink once, in order", got)
	}
	d.Heartbeat(t, 9)
	if n := h.Gateway.BadProofs(); n != 0 {
		t.Errorf("the gateway refused %d calls of the state server", n)
	}
}

func TestStateServerPushReachesTheDeviceWithItsSeq(t *testing.T) {
	h := statetest.Start(t, statetest.Options{})
	d := h.Gateway.Connect(statetest.App, "phone", "alice")
	d.Login(t)
	plato := h.Client(t, statetest.App)
	for seq := int64(1); seq <= 2; seq++ {
		res, err := plato.Push(ctx(t), business.Push{DIDs: []string{"phone", "nobody"}, Payload: []byte("m")})
		if err != nil {
			t.Fatal(err)
		}
		if tg := res.Targets[0]; tg.Status != business.StatusSent || tg.Seq != seq || tg.ConnID != int64(d.ConnID) {
			t.Errorf("push %d: %+v", seq, tg)
		}
		if !slices.Equal(res.Offline(), []string{"nobody"}) {
			t.Errorf("offline %q", res.Offline())
		}
		f, dl := d.NextDownlink(t)
		if f.Seq != uint64(seq) || int64(dl.MsgID) != res.MsgID || string(dl.Payload) != "m" || f.Flags != 0 {
			t.Errorf("downlink %d: seq %d flags %x msg %d (want %d) payload %q", seq, f.Seq, f.Flags, dl.MsgID, res.MsgID, dl.Payload)
		}
	}

	// With WaitAck the call returns once the device ACKed.
	type result struct {
		res *business.PushResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := plato.Push(context.Background(), business.Push{UIDs: []string{"alice"}, Payload: []byte("ack me"), WaitAck: true, Timeout: time.Minute})
		done <- result{res, err}
	}()
	f, _ := d.NextDownlink(t)
	d.AckDownlink(t, f.Seq)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if tg := r.res.Targets; len(tg) != 1 || tg[0].Status != business.StatusAcked || tg[0].UID != "alice" || tg[0].Seq != 3 {
			t.Errorf("Push with WaitAck: %+v", tg)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("Push with WaitAck did not return after the ACK")
	}
}

func TestStateServerDisconnectClearsTheDID(t *testing.T) {
	h := statetest.Start(t, statetest.Options{})
	d := h.Gateway.Connect(statetest.App, "phone", "alice")
	d.Login(t)
	plato := h.Client(t, statetest.App)
	if _, err := plato.Bind(ctx(t), "room", "phone"); err != nil {
		t.Fatal(err)
	}
	if c := h.Gateway.SessionChanges(); len(c) != 1 || c[0] != (statetest.SessionChange{ConnID: d.ConnID, Session: "room", Join: true}) {
		t.Errorf("the gateway's session index got %+v", c)
	}
	d.Close(t, protocol.CodeClientClose)

	if ev := h.Business.WaitEvents(t, api.EventKind_DISCONNECTED, "phone", 1)[0]; ev.Reason != int32(protocol.CodeClientClose) || ev.ConnId != int64(d.ConnID) {
		t.Errorf("DISCONNECTED %+v", ev)
	}
	if online, err := plato.OnlineDIDs(ctx(t), "phone"); err != nil || len(online) != 0 {
		t.Errorf("OnlineDIDs after the disconnect: %+v %v", online, err)
	}
	if online, err := plato.Online(ctx(t), "room"); err != nil || len(online) != 0 || len(h.State.SessionMembers(statetest.App, "room")) != 0 {
		t.Errorf("the session still holds the closed connection: %+v %v", online, err)
	}
	res, err := plato.Push(ctx(t), business.Push{DIDs: []string{"phone"}, UIDs: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Targets) != 2 || res.Targets[0].Status != business.StatusOffline || res.Targets[1].Status != business.StatusOffline || res.Targets[1].UID != "alice" {
		t.Errorf("push after the disconnect: %+v, want the did and the uid offline", res.Targets)
	}
	if n := h.State.Stats().Conns; n != 0 {
		t.Errorf("the state server still holds %d connections", n)
	}
}

func TestStateServerReplacesAndKicks(t *testing.T) {
	h := statetest.Start(t, statetest.Options{})
	old := h.Gateway.Connect(statetest.App, "phone", "alice")
	old.Login(t)
	cur := h.Gateway.Connect(statetest.App, "phone", "alice")
	cur.Login(t)
	if c := old.NextClose(t); c.Code != protocol.CodeReplaced {
		t.Errorf("the older connection got Close %+v, want 1203", c)
	}
	plato := h.Client(t, statetest.App)
	online, err := plato.OnlineDIDs(ctx(t), "phone")
	if err != nil || len(online) != 1 || online[0].ConnID != int64(cur.ConnID) || online[0].GatewayID != statetest.GatewayID {
		t.Fatalf("OnlineDIDs after the replacement: %+v %v", online, err)
	}
	kicked, err := plato.Kick(ctx(t), "see you", "phone", "nobody")
	if err != nil || !slices.Equal(kicked, []string{"phone"}) {
		t.Fatalf("Kick: %q %v", kicked, err)
	}
	if c := cur.NextClose(t); c.Code != protocol.CodeKicked || c.Message != "see you" {
		t.Errorf("kicked device got %+v", c)
	}
	// Two connections' events: each in order, but not in order with each other.
	reasons := map[int64]int32{}
	for _, ev := range h.Business.WaitEvents(t, api.EventKind_DISCONNECTED, "phone", 2) {
		reasons[ev.ConnId] = ev.Reason
	}
	if reasons[int64(old.ConnID)] != int32(protocol.CodeReplaced) || reasons[int64(cur.ConnID)] != int32(protocol.CodeKicked) {
		t.Errorf("DISCONNECTED reasons by connection %v, want 1203 for the replaced one, 1202 for the kicked one", reasons)
	}
}

func TestStateServerDropsTheConnectionsOfAGatewayThatLeft(t *testing.T) {
	h := statetest.Start(t, statetest.Options{Configure: func(c *state.Config) { c.ReconnectWindow = 0 }})
	d := h.Gateway.Connect(statetest.App, "phone", "")
	d.Login(t)
	h.Gateway.Leave(t)
	if ev := h.Business.WaitEvents(t, api.EventKind_DISCONNECTED, "phone", 1)[0]; ev.Reason != int32(protocol.CodeConnectionLost) {
		t.Errorf("DISCONNECTED reason %d, want 1211", ev.Reason)
	}
	poll.Until(t, "the state server to hold no connection", func() bool { return h.State.Stats().Conns == 0 })
}

// With a reconnect window, the connections of a gateway that left wait for their devices.
func TestStateServerParksTheConnectionsOfAGatewayThatLeft(t *testing.T) {
	h := statetest.Start(t, statetest.Options{Configure: func(c *state.Config) { c.ReconnectWindow = 300 * time.Millisecond }})
	d := h.Gateway.Connect(statetest.App, "phone", "")
	d.Login(t)
	h.Gateway.Leave(t)
	poll.Until(t, "the connection to be parked", func() bool { return h.State.Stats().Parked == 1 })
	if ev := h.Business.WaitEvents(t, api.EventKind_DISCONNECTED, "phone", 1)[0]; ev.Reason != int32(protocol.CodeConnectionLost) {
		t.Errorf("DISCONNECTED reason %d after the window, want 1211", ev.Reason)
	}
	poll.Until(t, "the state server to hold no connection", func() bool { s := h.State.Stats(); return s.Conns == 0 && s.Parked == 0 })
}

// With a pipeline that routes sessions by broadcast, a session push is one NATS message and no
// direct frame.
func TestStateServerBroadcastsASessionThePipelineRoutesSo(t *testing.T) {
	route := func(ev stage.Event, done func(pipeline.Outcome)) error {
		if ev.Signal == stage.SignalRoute {
			done(pipeline.Outcome{Route: stage.RouteBroadcast, QoS: stage.AtMostOnce})
			return nil
		}
		done(pipeline.Outcome{})
		return nil
	}
	h := statetest.Start(t, statetest.Options{Pipeline: pipeFunc(route)})
	nc, err := nats.Connect(h.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe(fanout.Subject, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d := h.Gateway.Connect(statetest.App, "phone", "")
	d.Login(t)
	plato := h.Client(t, statetest.App)
	if _, err := plato.Bind(ctx(t), "room", "phone"); err != nil {
		t.Fatal(err)
	}
	res, err := plato.Push(ctx(t), business.Push{Session: "room", Payload: []byte("all")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Route != business.RouteBroadcast || res.SessionMembers != 1 || len(res.Targets) != 0 {
		t.Errorf("push result %+v, want a broadcast to 1 member", res)
	}
	select {
	case m := <-msgs:
		var fm fanout.Message
		if err := fm.Decode(m.Data); err != nil || fm.AppID != statetest.App || fm.Session != "room" || int64(fm.MsgID) != res.MsgID || string(fm.Payload) != "all" {
			t.Errorf("broadcast %+v (%v)", fm, err)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("no broadcast on NATS")
	}
	for _, f := range d.Frames() {
		if f.Signal == protocol.SigDownlink {
			t.Errorf("a broadcast member got a direct frame too: %+v", f)
		}
	}
}

type pipeFunc func(ev stage.Event, done func(pipeline.Outcome)) error

func (f pipeFunc) Run(ev stage.Event, done func(pipeline.Outcome)) error { return f(ev, done) }

func (f pipeFunc) RunReserved(ev stage.Event, done func(pipeline.Outcome)) error { return f(ev, done) }

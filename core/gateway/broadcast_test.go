package gateway_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/platoim/plato/core/gateway"
	"github.com/platoim/plato/core/gateway/gatewaytest"
	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// Whether a device did not receive a broadcast is shown by ordering, not by waiting: NATS delivers
// the gateway's broadcasts in publish order and each connection's frames are written in queue order,
// so a device whose next frame is a later "marker" broadcast did not receive the earlier one.

func marker(h *gatewaytest.Harness, app string, msgID uint64) {
	h.Publish(fanout.Message{AppID: app, Session: "marker", MsgID: msgID, QoS: delivery.AtMostOnce, Payload: []byte("marker")})
}

func expectMsg(t *testing.T, d *gatewaytest.Device, msgID uint64, payload []byte) {
	t.Helper()
	_, dl := d.ReadBroadcast()
	if dl.MsgID != msgID || !bytes.Equal(dl.Payload, payload) {
		t.Fatalf("%s: got msg %d %q, want %d %q", d.DID, dl.MsgID, dl.Payload, msgID, payload)
	}
}

func TestBroadcastReachesLoggedInMembersOnce(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	m1, m2 := h.Login("a", "m1"), h.Login("a", "m2")
	nonMember := h.Login("a", "n")
	otherApp := h.Login("b", "o") // in b's "room": same name, another app
	pending := h.Connect("a", "p")
	var changes []*fleet.SessionChange
	for _, d := range []*gatewaytest.Device{m1, m2, pending, otherApp} {
		changes = append(changes, gatewaytest.Join(d, "room"))
	}
	for _, d := range []*gatewaytest.Device{m1, m2, nonMember, pending, otherApp} {
		changes = append(changes, gatewaytest.Join(d, "marker"))
	}
	h.Sessions(changes...)

	payload := []byte("hello room")
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 77, QoS: delivery.AtMostOnce, Payload: payload})
	marker(h, "a", 1000)
	marker(h, "b", 1001)

	for _, d := range []*gatewaytest.Device{m1, m2} {
		f, dl := d.ReadBroadcast()
		if f.Seq != 77 || dl.MsgID != 77 || !bytes.Equal(dl.Payload, payload) {
			t.Fatalf("%s: got seq %d msg %d %q", d.DID, f.Seq, dl.MsgID, dl.Payload)
		}
		expectMsg(t, d, 1000, []byte("marker"))
	}
	expectMsg(t, nonMember, 1000, []byte("marker"))
	expectMsg(t, otherApp, 1001, []byte("marker"))

	// The pending member heard nothing before its LoginAck, and hears broadcasts after it.
	h.Accept(pending)
	marker(h, "a", 1002)
	expectMsg(t, pending, 1002, []byte("marker"))
	for _, d := range []*gatewaytest.Device{m1, m2, nonMember} {
		expectMsg(t, d, 1002, []byte("marker"))
	}

	poll.Until(t, "the counters", func() bool {
		st := h.Gateway.Stats()
		// room: m1, m2; marker 1000: m1, m2, n; marker 1001: o; marker 1002: m1, m2, n, p.
		return st.Broadcasts == 4 && st.BroadcastFramesOut == 10
	})
}

func TestBroadcastFansOutToManyMembers(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	const n = 60
	devices := make([]*gatewaytest.Device, n)
	changes := make([]*fleet.SessionChange, 0, n)
	for i := range devices {
		devices[i] = h.Login("a", fmt.Sprintf("d%d", i))
		changes = append(changes, gatewaytest.Join(devices[i], "big"))
	}
	h.Sessions(changes...)
	if got := h.Gateway.SessionMembers("a", "big"); len(got) != n {
		t.Fatalf("%d members, want %d", len(got), n)
	}
	// Several messages, to check order and that a cached member list is reused correctly.
	for id := uint64(1); id <= 3; id++ {
		h.Publish(fanout.Message{AppID: "a", Session: "big", MsgID: id, QoS: delivery.AtLeastOnce, Payload: []byte{byte(id)}})
	}
	for _, d := range devices {
		for id := uint64(1); id <= 3; id++ {
			expectMsg(t, d, id, []byte{byte(id)})
		}
	}
	// A member leaving between broadcasts is not written to.
	h.Sessions(gatewaytest.Leave(devices[0], "big"), gatewaytest.Join(devices[0], "marker"))
	h.Publish(fanout.Message{AppID: "a", Session: "big", MsgID: 4, QoS: delivery.AtMostOnce, Payload: []byte{4}})
	marker(h, "a", 5)
	expectMsg(t, devices[0], 5, []byte("marker"))
	expectMsg(t, devices[1], 4, []byte{4})
}

func TestBroadcastAckForwardedOnlyForAtLeastOnce(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{})
	d := h.Login("a", "d")
	h.Sessions(gatewaytest.Join(d, "room"))
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 100, QoS: delivery.AtLeastOnce, Payload: []byte("x")})
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 101, QoS: delivery.AtMostOnce, Payload: []byte("y")})
	expectMsg(t, d, 100, []byte("x"))
	expectMsg(t, d, 101, []byte("y"))

	d.Send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 100, nil)
	d.Send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 101, nil) // at most once: nobody waits
	d.Send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 102, nil) // never broadcast here
	d.Send(protocol.SigDownlinkAck, 0, 5, nil)                        // an ordinary downlink's ACK
	// One connection's events reach the state server in order: once the last ACK is there, any
	// earlier one that was forwarded is too.
	poll.Until(t, "the ordinary ACK reaches the state server", func() bool {
		acks := h.State.Received(d.ID, protocol.SigDownlinkAck)
		return len(acks) > 0 && acks[len(acks)-1].Seq == 5
	})
	var got []string
	for _, ev := range h.State.Received(d.ID, protocol.SigDownlinkAck) {
		got = append(got, fmt.Sprintf("flags=%d seq=%d", ev.Flags, ev.Seq))
	}
	want := []string{fmt.Sprintf("flags=%d seq=100", protocol.FlagBroadcast), "flags=0 seq=5"}
	if !slices.Equal(got, want) {
		t.Fatalf("ACKs forwarded %v, want %v", got, want)
	}
	if st := h.Gateway.Stats(); st.BroadcastAcksDropped != 2 {
		t.Fatalf("broadcast ACKs dropped %d, want 2", st.BroadcastAcksDropped)
	}
}

func TestMalformedBroadcastIsDropped(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{Configure: func(c *gateway.Config) { c.MaxBody = 1024 }})
	d := h.Login("a", "d")
	h.Sessions(gatewaytest.Join(d, "room"))
	valid := (&fanout.Message{AppID: "a", Session: "room", MsgID: 1, QoS: delivery.AtLeastOnce, Payload: []byte("ok")}).Append(nil)

	h.PublishRaw([]byte("not a broadcast"))
	h.PublishRaw(valid[:len(valid)-1])
	h.PublishRaw(append([]byte{9}, valid[1:]...))
	// Decodes, but is larger than a device accepts.
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 2, QoS: delivery.AtLeastOnce, Payload: make([]byte, 1024)})
	h.PublishRaw(valid)

	expectMsg(t, d, 1, []byte("ok"))
	poll.Until(t, "the counters", func() bool {
		st := h.Gateway.Stats()
		return st.Broadcasts == 5 && st.BroadcastsMalformed == 4 && st.BroadcastFramesOut == 1
	})
	if got := gateway.MalformedBroadcasts(h.Gateway, "too_large"); got != 1 {
		t.Fatalf("too_large %d, want 1", got)
	}
	// The oversized message was not remembered for ACKs either.
	if gateway.AwaitsAcks(h.Gateway, 2) {
		t.Fatal("a dropped broadcast is awaiting ACKs")
	}
	// The connection is unharmed.
	d.Send(protocol.SigHeartbeat, 0, 2, nil)
	poll.Until(t, "the heartbeat reaches the state server", func() bool {
		return len(h.State.Received(d.ID, protocol.SigHeartbeat)) == 1
	})
}

func TestGatewayWithoutNATSIgnoresBroadcasts(t *testing.T) {
	h := gatewaytest.New(t, gatewaytest.Options{NoNATS: true})
	d := h.Login("a", "d")
	h.Sessions(gatewaytest.Join(d, "room"))
	if gateway.BroadcastSubscription(h.Gateway) != nil {
		t.Fatal("subscribed without a NATS connection")
	}
	h.Publish(fanout.Message{AppID: "a", Session: "room", MsgID: 1, QoS: delivery.AtMostOnce})
	if st := h.Gateway.Stats(); st.Broadcasts != 0 {
		t.Fatalf("broadcasts %d, want 0", st.Broadcasts)
	}
}

package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/internal/fanout"
	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"

	"github.com/platoim/plato/sdk/delivery"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
)

// Whether a device did not receive a broadcast is shown by ordering, not by waiting: NATS delivers
// the gateway's broadcasts in publish order and each connection's frames are written in queue order,
// so a device whose next frame is a later "marker" broadcast did not receive the earlier one.

func (h *harness) marker(app string, msgID uint64) {
	h.publish(fanout.Message{AppID: app, Session: "marker", MsgID: msgID, QoS: delivery.AtMostOnce, Payload: []byte("marker")})
}

func expectMsg(t *testing.T, d *device, msgID uint64, payload []byte) {
	t.Helper()
	_, dl := d.readBroadcast()
	if dl.MsgID != msgID || !bytes.Equal(dl.Payload, payload) {
		t.Fatalf("%s: got msg %d %q, want %d %q", d.did, dl.MsgID, dl.Payload, msgID, payload)
	}
}

func TestBroadcastReachesLoggedInMembersOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	m1, m2 := h.login("a", "m1"), h.login("a", "m2")
	nonMember := h.login("a", "n")
	otherApp := h.login("b", "o") // in b's "room": same name, another app
	pending := h.connect("a", "p")
	h.sessions(
		join(m1, "room"), join(m2, "room"), join(pending, "room"), join(otherApp, "room"),
		join(m1, "marker"), join(m2, "marker"), join(nonMember, "marker"), join(pending, "marker"),
		join(otherApp, "marker"),
	)

	payload := []byte("hello room")
	h.publish(fanout.Message{AppID: "a", Session: "room", MsgID: 77, QoS: delivery.AtMostOnce, Payload: payload})
	h.marker("a", 1000)
	h.marker("b", 1001)

	for _, d := range []*device{m1, m2} {
		f, dl := d.readBroadcast()
		if f.Seq != 77 || dl.MsgID != 77 || !bytes.Equal(dl.Payload, payload) {
			t.Fatalf("%s: got seq %d msg %d %q", d.did, f.Seq, dl.MsgID, dl.Payload)
		}
		expectMsg(t, d, 1000, []byte("marker"))
	}
	expectMsg(t, nonMember, 1000, []byte("marker"))
	expectMsg(t, otherApp, 1001, []byte("marker"))

	// The pending member heard nothing before its LoginAck, and hears broadcasts after it.
	h.accept(pending)
	h.marker("a", 1002)
	expectMsg(t, pending, 1002, []byte("marker"))
	for _, d := range []*device{m1, m2, nonMember} {
		expectMsg(t, d, 1002, []byte("marker"))
	}

	poll.Until(t, "the counters", func() bool {
		st := h.gw.Stats()
		// room: m1, m2; marker 1000: m1, m2, n; marker 1001: o; marker 1002: m1, m2, n, p.
		return st.Broadcasts == 4 && st.BroadcastFramesOut == 10
	})
}

func TestBroadcastFansOutToManyMembers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const n = 60
	devices := make([]*device, n)
	changes := make([]*fleet.SessionChange, 0, n)
	for i := range devices {
		devices[i] = h.login("a", fmt.Sprintf("d%d", i))
		changes = append(changes, join(devices[i], "big"))
	}
	h.sessions(changes...)
	if got := h.gw.SessionMembers("a", "big"); len(got) != n {
		t.Fatalf("%d members, want %d", len(got), n)
	}
	// Several messages, to check order and that a cached member list is reused correctly.
	for id := uint64(1); id <= 3; id++ {
		h.publish(fanout.Message{AppID: "a", Session: "big", MsgID: id, QoS: delivery.AtLeastOnce, Payload: []byte{byte(id)}})
	}
	for _, d := range devices {
		for id := uint64(1); id <= 3; id++ {
			expectMsg(t, d, id, []byte{byte(id)})
		}
	}
	// A member leaving between broadcasts is not written to.
	h.sessions(leave(devices[0], "big"), join(devices[0], "marker"))
	h.publish(fanout.Message{AppID: "a", Session: "big", MsgID: 4, QoS: delivery.AtMostOnce, Payload: []byte{4}})
	h.marker("a", 5)
	expectMsg(t, devices[0], 5, []byte("marker"))
	expectMsg(t, devices[1], 4, []byte{4})
}

func TestBroadcastAckForwardedOnlyForAtLeastOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	d := h.login("a", "d")
	h.sessions(join(d, "room"))
	h.publish(fanout.Message{AppID: "a", Session: "room", MsgID: 100, QoS: delivery.AtLeastOnce, Payload: []byte("x")})
	h.publish(fanout.Message{AppID: "a", Session: "room", MsgID: 101, QoS: delivery.AtMostOnce, Payload: []byte("y")})
	expectMsg(t, d, 100, []byte("x"))
	expectMsg(t, d, 101, []byte("y"))

	d.send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 100, nil)
	d.send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 101, nil) // at most once: nobody waits
	d.send(protocol.SigDownlinkAck, protocol.FlagBroadcast, 102, nil) // never broadcast here
	d.send(protocol.SigDownlinkAck, 0, 5, nil)                        // an ordinary downlink's ACK
	isAck := func(ev *fleet.UpEvent) bool {
		return ev.ConnId == int64(d.id) && protocol.Signal(ev.Signal) == protocol.SigDownlinkAck
	}
	// One connection's events reach the state server in order: once the last ACK is there, any
	// earlier one that was forwarded is too.
	poll.Until(t, "the ordinary ACK reaches the state server", func() bool {
		acks := h.state.find(isAck)
		return len(acks) > 0 && acks[len(acks)-1].Seq == 5
	})
	var got []string
	for _, ev := range h.state.find(isAck) {
		got = append(got, fmt.Sprintf("flags=%d seq=%d", ev.Flags, ev.Seq))
	}
	want := []string{fmt.Sprintf("flags=%d seq=100", protocol.FlagBroadcast), "flags=0 seq=5"}
	if !slices.Equal(got, want) {
		t.Fatalf("ACKs forwarded %v, want %v", got, want)
	}
	if st := h.gw.Stats(); st.BroadcastAcksDropped != 2 {
		t.Fatalf("broadcast ACKs dropped %d, want 2", st.BroadcastAcksDropped)
	}
}

func TestMalformedBroadcastIsDropped(t *testing.T) {
	h := newHarness(t, harnessOpts{maxBody: 1024})
	d := h.login("a", "d")
	h.sessions(join(d, "room"))
	valid := (&fanout.Message{AppID: "a", Session: "room", MsgID: 1, QoS: delivery.AtLeastOnce, Payload: []byte("ok")}).Append(nil)

	h.publishRaw([]byte("not a broadcast"))
	h.publishRaw(valid[:len(valid)-1])
	h.publishRaw(append([]byte{9}, valid[1:]...))
	// Decodes, but is larger than a device accepts.
	h.publish(fanout.Message{AppID: "a", Session: "room", MsgID: 2, QoS: delivery.AtLeastOnce, Payload: make([]byte, 1024)})
	h.publishRaw(valid)

	expectMsg(t, d, 1, []byte("ok"))
	poll.Until(t, "the counters", func() bool {
		st := h.gw.Stats()
		return st.Broadcasts == 5 && st.BroadcastsMalformed == 4 && st.BroadcastFramesOut == 1
	})
	if got := h.gw.metrics.broadcastsMalformed[malformedTooLarge].Load(); got != 1 {
		t.Fatalf("too_large %d, want 1", got)
	}
	// The oversized message was not remembered for ACKs either.
	if h.gw.acks.has(2, time.Now()) {
		t.Fatal("a dropped broadcast is awaiting ACKs")
	}
	// The connection is unharmed.
	d.send(protocol.SigHeartbeat, 0, 2, nil)
	poll.Until(t, "the heartbeat reaches the state server", func() bool {
		return len(h.state.find(func(ev *fleet.UpEvent) bool {
			return ev.ConnId == int64(d.id) && protocol.Signal(ev.Signal) == protocol.SigHeartbeat
		})) == 1
	})
}

func TestGatewayWithoutNATSIgnoresBroadcasts(t *testing.T) {
	h := newHarness(t, harnessOpts{noNATS: true})
	d := h.login("a", "d")
	h.sessions(join(d, "room"))
	if h.gw.sub.Load() != nil {
		t.Fatal("subscribed without a NATS connection")
	}
	h.publish(fanout.Message{AppID: "a", Session: "room", MsgID: 1, QoS: delivery.AtMostOnce})
	if st := h.gw.Stats(); st.Broadcasts != 0 {
		t.Fatalf("broadcasts %d, want 0", st.Broadcasts)
	}
}

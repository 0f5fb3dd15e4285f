package platform_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/core/platform/platformtest"
	"github.com/platoim/plato/internal/config"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/token"
)

// resume sends a Resume as the first frame and returns the ResumeAck.
func (c *rawConn) resume(signer *token.Signer, did string, prev, lastDown uint64) protocol.ResumeAck {
	c.t.Helper()
	tok, _ := signer.Issue("demo", did, did, time.Now(), time.Time{})
	c.send(protocol.SigResume, 1, (&protocol.Resume{AppID: "demo", DID: did, Token: tok, PrevConnID: prev, LastDownlink: lastDown}).Append(nil))
	f := c.next()
	var ack protocol.ResumeAck
	if f.Signal != protocol.SigResumeAck || ack.Decode(f.Body) != nil || f.Seq != 1 {
		c.t.Fatalf("answer to a Resume: %s", f)
	}
	return ack
}

// downlinks reads frames until it has seen the downlinks of every seq in want (the retransmit stage
// may repeat one, with the retransmit flag), ACKing each; it returns the msg ID of each seq and
// whether its first copy carried the retransmit flag. They must arrive in seq order.
func (c *rawConn) downlinks(want ...uint64) (msgIDs map[uint64]uint64, retransmit map[uint64]bool) {
	c.t.Helper()
	msgIDs, retransmit = map[uint64]uint64{}, map[uint64]bool{}
	var order []uint64
	for len(msgIDs) < len(want) {
		f := c.next()
		if f.Signal != protocol.SigDownlink {
			c.t.Fatalf("got %s while waiting for downlinks %v", f, want)
		}
		var d protocol.Downlink
		if err := d.Decode(f.Body); err != nil {
			c.t.Fatal(err)
		}
		if id, seen := msgIDs[f.Seq]; seen {
			if id != d.MsgID || f.Flags&protocol.FlagRetransmit == 0 {
				c.t.Fatalf("seq %d again as msg %d flags %x: a repeat must be the same message, flagged", f.Seq, d.MsgID, f.Flags)
			}
		} else {
			msgIDs[f.Seq], retransmit[f.Seq] = d.MsgID, f.Flags&protocol.FlagRetransmit != 0
			order = append(order, f.Seq)
		}
		c.send(protocol.SigDownlinkAck, f.Seq, nil)
	}
	if !slices.Equal(order, want) {
		c.t.Fatalf("downlinks arrived as seqs %v, want %v in that order", order, want)
	}
	return msgIDs, retransmit
}

func pushDemo(t *testing.T, tg *twoGateways, req *api.PushRequest) *api.PushResponse {
	t.Helper()
	req.Caller, req.Qos = platformtest.Caller("demo"), api.QoS_AT_LEAST_ONCE
	resp, err := tg.api.Push(context.Background(), req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return resp
}

// TestResumeOnAnotherGatewayLosesNothing drops a device's socket without a Close, pushes to it
// while it is away, and resumes it on the other gateway, through real gateways, a real state server
// and the retransmit and session stages as plugin processes.
func TestResumeOnAnotherGatewayLosesNothing(t *testing.T) {
	tg := startTwoGateways(t)
	signer := mustSigner(t, platformtest.Secret)
	ctx := context.Background()

	dev := rawDial(t, tg.eps[0])
	login := dev.login(signer, "alice")
	if _, err := tg.api.Bind(ctx, &api.BindRequest{Caller: platformtest.Caller("demo"), Session: "room", Dids: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	dev.send(protocol.SigUplink, 1, []byte("before"))
	if f := dev.next(); f.Signal != protocol.SigUplinkAck || f.Seq != 1 {
		t.Fatalf("uplink answer %s", f)
	}
	m1 := pushDemo(t, tg, &api.PushRequest{Dids: []string{"alice"}, Payload: []byte("one")})
	m2 := pushDemo(t, tg, &api.PushRequest{Dids: []string{"alice"}, Payload: []byte("two")})
	// The device reads both but only its ACK of the first gets out before the network goes.
	for range 2 {
		if f := dev.next(); f.Signal != protocol.SigDownlink {
			t.Fatalf("got %s, want a downlink", f)
		}
	}
	dev.send(protocol.SigDownlinkAck, 1, nil)
	poll.Until(t, "the ACK of seq 1", func() bool { return tg.p.State.Stats().DownlinkAcks >= 1 })
	dev.Close()
	poll.Until(t, "the connection to be parked", func() bool { return tg.p.State.Stats().Parked == 1 })

	m3 := pushDemo(t, tg, &api.PushRequest{Dids: []string{"alice"}, Payload: []byte("three")})
	m4 := pushDemo(t, tg, &api.PushRequest{Session: "room", Payload: []byte("four")})
	for _, r := range []*api.PushResponse{m3, m4} {
		if tgt := r.Targets[0]; tgt.Status != api.PushStatus_QUEUED || tgt.ConnId != int64(login.ConnID) {
			t.Fatalf("push while away: %+v, want QUEUED for conn %d", tgt, login.ConnID)
		}
	}

	// Someone else cannot take it: not with a token for alice they do not have, not with their own.
	thief := rawDial(t, tg.eps[1])
	bobTok, _ := signer.Issue("demo", "bob", "bob", time.Now(), time.Time{})
	thief.send(protocol.SigResume, 1, (&protocol.Resume{AppID: "demo", DID: "alice", Token: bobTok, PrevConnID: login.ConnID}).Append(nil))
	var refused protocol.ResumeAck
	if f := thief.next(); f.Signal != protocol.SigResumeAck || refused.Decode(f.Body) != nil || refused.Code != protocol.CodeTokenMismatch {
		t.Fatalf("bob's token for alice's connection: %s %+v, want ResumeAck 1103", f, refused)
	}
	thief = rawDial(t, tg.eps[1])
	if ack := thief.resume(signer, "bob", login.ConnID, 0); ack.Code != protocol.CodeResumeRejected {
		t.Fatalf("bob resuming alice's connection ID: %+v, want 1208", ack)
	}
	if ack := thief.login(signer, "bob"); ack.Code != 0 {
		t.Fatalf("Login after the refused Resume on the same socket: %+v", ack)
	}

	// Alice is back, on the other gateway: she saw seq 2 but her ACK was lost.
	back := rawDial(t, tg.eps[1])
	ack := back.resume(signer, "alice", login.ConnID, 1)
	if ack.Code != 0 || ack.ConnID == 0 || ack.ConnID == login.ConnID || ack.HeartbeatMs == 0 {
		t.Fatalf("ResumeAck %+v", ack)
	}
	msgs, retransmit := back.downlinks(2, 3, 4)
	if msgs[2] != uint64(m2.MsgId) || !retransmit[2] || msgs[3] != uint64(m3.MsgId) || msgs[4] != uint64(m4.MsgId) || retransmit[3] || retransmit[4] {
		t.Fatalf("after the Resume: msg IDs %v retransmit %v; want seq 2 = %d flagged, 3 = %d, 4 = %d (m1 %d was ACKed)",
			msgs, retransmit, m2.MsgId, m3.MsgId, m4.MsgId, m1.MsgId)
	}
	// The uplink seq carries on: seq 1 again is a duplicate, 2 is new.
	back.send(protocol.SigUplink, 1, []byte("before"))
	back.send(protocol.SigUplink, 2, []byte("after"))
	for _, want := range []protocol.Code{protocol.CodeDuplicate, 0} {
		f := back.next()
		var a protocol.Ack
		if f.Signal != protocol.SigUplinkAck || a.Decode(f.Body) != nil || a.Code != want {
			t.Fatalf("uplink answer %s %+v, want code %d", f, a, want)
		}
	}
	// The session is kept, and pushes reach the new gateway.
	pushed := make(chan *api.PushResponse, 1)
	go func() {
		resp, err := tg.api.Push(ctx, &api.PushRequest{Caller: platformtest.Caller("demo"), Qos: api.QoS_AT_LEAST_ONCE,
			Session: "room", Payload: []byte("five"), WaitAck: true, TimeoutMs: 20000})
		if err != nil {
			t.Errorf("session push after the Resume: %v", err)
		}
		pushed <- resp
	}()
	back.downlinks(5)
	m5 := <-pushed
	if m5 == nil {
		t.FailNow()
	}
	if tgt := m5.Targets[0]; tgt.Status != api.PushStatus_ACKED || tgt.Seq != 5 {
		t.Fatalf("session push after the Resume: %+v, want ACKED seq 5", tgt)
	}
	ev := tg.biz.WaitEvents(t, api.EventKind_RESUMED, "alice", 1)[0]
	if ev.ConnId != int64(login.ConnID) || ev.GatewayId != "gw-2" {
		t.Errorf("RESUMED %+v, want conn %d on gw-2", ev, login.ConnID)
	}
	if n := len(tg.biz.Events(api.EventKind_DISCONNECTED, "alice")); n != 0 {
		t.Errorf("%d DISCONNECTED events for alice, who resumed", n)
	}
	if n := len(tg.biz.Events(api.EventKind_UNDELIVERED, "alice")); n != 0 {
		t.Errorf("%d UNDELIVERED events for alice, who got everything", n)
	}
	if online := tg.online(t, "demo", "room"); len(online) != 1 || online[0] != "alice" {
		t.Errorf("online in room: %v", online)
	}

	// A gateway that shuts down sends its devices away with 1204; they resume on the other one.
	carol := rawDial(t, tg.eps[0])
	carolLogin := carol.login(signer, "carol")
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := tg.p.Gateway.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	carol.expectClose(protocol.CodeShuttingDown)
	carolBack := rawDial(t, tg.eps[1])
	if ack := carolBack.resume(signer, "carol", carolLogin.ConnID, 0); ack.Code != 0 {
		t.Fatalf("carol's Resume after the gateway shut down: %+v", ack)
	}
	if tgt := pushDemo(t, tg, &api.PushRequest{Dids: []string{"carol"}, Payload: []byte("hi")}).Targets[0]; tgt.Status != api.PushStatus_SENT {
		t.Fatalf("push to carol after her Resume: %+v", tgt)
	}
	carolBack.downlinks(1)
}

// TestADropNobodyResumesEnds: when the reconnect window passes, the business hears DISCONNECTED
// and UNDELIVERED for what waited, and a late Resume is told to log in, on the same socket.
func TestADropNobodyResumesEnds(t *testing.T) {
	p, biz := startAll(t, func(c *config.Config) { c.State.ReconnectWindow = time.Second })
	signer := mustSigner(t, platformtest.Secret)
	dev := rawDial(t, p.Gateway.Addr())
	login := dev.login(signer, "alice")
	dev.Close()
	poll.Until(t, "the connection to be parked", func() bool { return p.State.Stats().Parked == 1 })
	sc := platformtest.StateClient(t, p.State.Addr())
	resp, err := sc.Push(context.Background(), &api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"alice"}, Payload: []byte("x"), Qos: api.QoS_AT_LEAST_ONCE})
	if err != nil || resp.Targets[0].Status != api.PushStatus_QUEUED {
		t.Fatalf("push while away: %+v %v", resp, err)
	}
	if ev := biz.WaitEvents(t, api.EventKind_DISCONNECTED, "alice", 1)[0]; ev.Reason != int32(protocol.CodeConnectionLost) || ev.ConnId != int64(login.ConnID) {
		t.Errorf("DISCONNECTED %+v, want 1211 for conn %d", ev, login.ConnID)
	}
	if ev := biz.WaitEvents(t, api.EventKind_UNDELIVERED, "alice", 1)[0]; ev.MsgId != resp.MsgId {
		t.Errorf("UNDELIVERED %+v, want msg %d", ev, resp.MsgId)
	}
	late := rawDial(t, p.Gateway.Addr())
	if ack := late.resume(signer, "alice", login.ConnID, 0); ack.Code != protocol.CodeResumeRejected {
		t.Fatalf("Resume after the window: %+v, want 1208", ack)
	}
	if ack := late.login(signer, "alice"); ack.Code != 0 || ack.ConnID == login.ConnID {
		t.Fatalf("Login after 1208: %+v", ack)
	}
	// A deliberate Close keeps nothing.
	late.send(protocol.SigClose, 0, (&protocol.Close{Code: protocol.CodeClientClose}).Append(nil))
	if ev := biz.WaitEvents(t, api.EventKind_DISCONNECTED, "alice", 2)[1]; ev.Reason != int32(protocol.CodeClientClose) {
		t.Errorf("DISCONNECTED after a Close: %+v, want 1209 at once", ev)
	}
}

// TestResumeOnTheSameGateway: a device whose socket broke comes back to the same gateway and gets
// what was pushed while it was away.
func TestResumeOnTheSameGateway(t *testing.T) {
	p, biz := startAll(t, nil)
	signer := mustSigner(t, platformtest.Secret)
	dev := rawDial(t, p.Gateway.Addr())
	login := dev.login(signer, "alice")
	dev.Close()
	poll.Until(t, "the connection to be parked", func() bool { return p.State.Stats().Parked == 1 })
	resp, err := platformtest.StateClient(t, p.State.Addr()).Push(context.Background(),
		&api.PushRequest{Caller: platformtest.Caller("demo"), Dids: []string{"alice"}, Payload: []byte("x")})
	if err != nil || resp.Targets[0].Status != api.PushStatus_QUEUED {
		t.Fatalf("push while away: %+v %v", resp, err)
	}
	back := rawDial(t, p.Gateway.Addr())
	if ack := back.resume(signer, "alice", login.ConnID, 0); ack.Code != 0 || ack.ConnID == login.ConnID {
		t.Fatalf("ResumeAck %+v", ack)
	}
	if msgs, _ := back.downlinks(1); msgs[1] != uint64(resp.MsgId) {
		t.Errorf("after the Resume: %v, want msg %d", msgs, resp.MsgId)
	}
	biz.WaitEvents(t, api.EventKind_RESUMED, "alice", 1)
}

package state

import (
	"slices"
	"testing"
	"time"

	"github.com/platoim/plato/internal/rpc/kitex_gen/plato/fleet"
	"github.com/platoim/plato/sdk/business/rpc/plato/api"
	"github.com/platoim/plato/sdk/poll"
	"github.com/platoim/plato/sdk/protocol"
	"github.com/platoim/plato/sdk/stage"
)

func resumeEvent(connID uint64, app, did, uid string, prev, lastDown uint64) *fleet.UpEvent {
	body := (&protocol.Resume{AppID: app, DID: did, UID: uid, Token: "t", PrevConnID: prev, LastDownlink: lastDown}).Append(nil)
	return &fleet.UpEvent{
		ConnId: int64(connID), Signal: int8(protocol.SigResume), Seq: 1, Body: body,
		AppId: app, Did: did, Uid: uid, RemoteAddr: "10.0.0.2:6000",
	}
}

// pushTo pushes one downlink to did and returns its target.
func (ts *testServer) pushTo(t *testing.T, did string, msgID uint64, qos stage.QoS) *api.PushTarget {
	t.Helper()
	return ts.push(ctxT(t), testApp, ts.targetsOf(testApp, []string{did}), msgID, []byte{byte(msgID)}, qos, false, within)[0]
}

// untilResumeAck waits for the ResumeAck on a connection of fg.
func untilResumeAck(t *testing.T, fg *fakeGateway, connID uint64) (*fleet.DownFrame, protocol.ResumeAck) {
	t.Helper()
	f := untilFrame(t, fg, connID, protocol.SigResumeAck, 1)
	var a protocol.ResumeAck
	if err := a.Decode(f.Body); err != nil {
		t.Fatalf("decoding ResumeAck: %v", err)
	}
	return f, a
}

type downlinkSeen struct {
	seq, msgID uint64
	retransmit bool
}

func downlinksOf(t *testing.T, fg *fakeGateway, connID uint64, n int) []downlinkSeen {
	t.Helper()
	frames := untilFrames(t, fg, connID, n, "downlinks", func(f *fleet.DownFrame) bool { return protocol.Signal(f.Signal) == protocol.SigDownlink })
	out := make([]downlinkSeen, len(frames))
	for i, f := range frames {
		var d protocol.Downlink
		if err := d.Decode(f.Body); err != nil {
			t.Fatal(err)
		}
		out[i] = downlinkSeen{seq: uint64(f.Seq), msgID: d.MsgID, retransmit: uint16(f.Flags)&protocol.FlagRetransmit != 0}
	}
	return out
}

func TestADroppedConnectionResumesOnAnotherGatewayWithWhatItMissed(t *testing.T) {
	ts := newTestServer(t)
	gw2 := ts.addGateway(t, "gw-2")
	cs := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(cs, []string{"room"})
	for id := uint64(101); id <= 102; id++ {
		if tg := ts.pushTo(t, "a", id, stage.AtLeastOnce); tg.Status != api.PushStatus_SENT {
			t.Fatalf("push %d: %+v", id, tg)
		}
	}
	downlinksOf(t, ts.gw, 1, 2)
	ts.deliver(t, testGW, frameEvent(1, protocol.SigDownlinkAck, 1, nil))
	poll.Within(t, within, "the ACK of seq 1", func() bool { return cs.inflightMsg(1) == 0 })
	ts.deliver(t, testGW, frameEvent(1, protocol.SigUplink, 1, []byte("hello")))
	untilFrame(t, ts.gw, 1, protocol.SigUplinkAck, 1)

	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost))
	if s := ts.Stats(); s.Parked != 1 || s.Conns != 1 {
		t.Fatalf("after the drop: %+v, want the connection parked", s)
	}
	if ts.conns.byDID(testApp, "a") != cs || !cs.member("room") || len(ts.conns.byUID(testApp, "alice")) != 1 {
		t.Fatal("a parked connection must keep its did, uid and sessions")
	}
	for id := uint64(103); id <= 104; id++ {
		if tg := ts.pushTo(t, "a", id, stage.AtLeastOnce); tg.Status != api.PushStatus_QUEUED || tg.ConnId != 1 {
			t.Fatalf("push %d to a parked connection: %+v, want QUEUED", id, tg)
		}
	}
	// A frame from the old socket's key is not the connection's any more.
	ts.deliver(t, testGW, frameEvent(1, protocol.SigUplink, 1, []byte("late")))
	if c := decodeClose(t, untilFrame(t, ts.gw, 1, protocol.SigClose, 0)); c.Code != protocol.CodeStateLost {
		t.Errorf("a frame on the dropped route got Close %d, want 1210", c.Code)
	}

	// The device received seq 2 but its ACK was lost with the socket; it says so.
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "alice", 1, 1))
	f, ack := untilResumeAck(t, gw2, 9)
	if f.Action != fleet.DownAction_LOGIN_OK || ack.Code != protocol.CodeOK || ack.ConnID != 9 || ack.HeartbeatMs == 0 {
		t.Fatalf("ResumeAck %+v (action %v), want 0 with conn_id 9 as LOGIN_OK", ack, f.Action)
	}
	got := downlinksOf(t, gw2, 9, 3)
	want := []downlinkSeen{{2, 102, true}, {3, 103, false}, {4, 104, false}}
	if !slices.Equal(got, want) {
		t.Errorf("after the Resume the device got %+v, want %+v", got, want)
	}
	all := gw2.framesOf(9, nil)
	if protocol.Signal(all[0].Signal) != protocol.SigResumeAck {
		t.Errorf("the first frame on the new route is %v, want the ResumeAck", protocol.Signal(all[0].Signal))
	}
	if ch := gw2.sessionChanges(); len(ch) != 1 || ch[0].ConnId != 9 || ch[0].Session != "room" || !ch[0].Join {
		t.Errorf("the new gateway learned sessions %+v, want conn 9 joining room", ch)
	}
	ev := untilEvents(t, ts.biz, api.EventKind_RESUMED, "a", 1)[0]
	if ev.ConnId != 1 || ev.GatewayId != "gw-2" || ev.Uid != "alice" {
		t.Errorf("RESUMED %+v, want conn_id 1 (unchanged) on gw-2", ev)
	}
	if n := len(ts.biz.eventsOf(api.EventKind_DISCONNECTED, "a")); n != 0 {
		t.Errorf("%d DISCONNECTED events for a connection that resumed", n)
	}
	if s := ts.Stats(); s.Parked != 0 || s.Resumed != 1 || s.Conns != 1 {
		t.Errorf("after the Resume: %+v", s)
	}

	// The connection carries on: frames on the new route are its, the uplink seq continues, and
	// stages and the business still know it as conn 1 of the first gateway.
	ts.deliver(t, "gw-2", frameEvent(9, protocol.SigUplink, 1, []byte("again")))
	if a := decodeAck(t, untilFrame(t, gw2, 9, protocol.SigUplinkAck, 1)); a.Code != protocol.CodeDuplicate {
		t.Errorf("uplink seq 1 again got %d, want 1008: the uplink seq continues", a.Code)
	}
	ts.deliver(t, "gw-2", frameEvent(9, protocol.SigUplink, 2, []byte("new")))
	if a := decodeAck(t, untilFrame(t, gw2, 9, protocol.SigUplinkAck, 2)); a.Code != protocol.CodeOK {
		t.Errorf("uplink seq 2 got %d", a.Code)
	}
	if up := untilEvents(t, ts.biz, api.EventKind_UPLINK, "a", 2)[1]; up.ConnId != 1 || up.GatewayId != "gw-2" {
		t.Errorf("uplink event %+v, want conn 1 on gw-2", up)
	}
	if c := cs.stageConn(); c.ConnID != 1 || c.GatewayID != testGW || c.RemoteAddr != "10.0.0.2:6000" {
		t.Errorf("stage conn %+v: the identity must not change, the address must", c)
	}
	ts.deliver(t, "gw-2", frameEvent(9, protocol.SigDownlinkAck, 4, nil))
	poll.Within(t, within, "the ACK on the new route", func() bool { return cs.inflightMsg(4) == 0 })
	if tg := ts.pushTo(t, "a", 105, stage.AtLeastOnce); tg.Status != api.PushStatus_SENT || tg.Seq != 5 {
		t.Errorf("push after the Resume: %+v, want SENT with seq 5", tg)
	}
	// The old gateway's late CLOSED for the first route changes nothing.
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeClientClose))
	if ts.conns.byDID(testApp, "a") != cs || cs.isParked() {
		t.Error("a CLOSED of the old route ended the resumed connection")
	}
	ts.deliver(t, "gw-2", closedEvent(9, protocol.CodeClientClose))
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]; ev.Reason != int32(protocol.CodeClientClose) || ev.ConnId != 1 {
		t.Errorf("DISCONNECTED %+v, want 1209 for conn 1", ev)
	}
	if ts.Stats().Conns != 0 || ts.conns.get(connKey{gw: "gw-2", id: 9}) != nil {
		t.Error("the ended connection is still filed")
	}
}

func TestResumeIsRefusedWithNothingToResume(t *testing.T) {
	ts := newTestServer(t)
	gw2 := ts.addGateway(t, "gw-2")
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.loginDevice(t, 2, testApp, "b", "bob")
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost))
	ts.deliver(t, testGW, closedEvent(2, protocol.CodeClientClose)) // deliberate: ended
	untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "b", 1)
	for i, ev := range []*fleet.UpEvent{
		resumeEvent(10, testApp, "a", "alice", 7, 0),     // not its connection
		resumeEvent(11, testApp, "a", "mallory", 1, 0),   // another uid's token
		resumeEvent(12, testApp, "b", "bob", 2, 0),       // closed deliberately
		resumeEvent(13, testApp, "nobody", "", 1, 0),     // never here
		resumeEvent(14, "other-app", "a", "alice", 1, 0), // another app's did
		{ConnId: 15, Signal: int8(protocol.SigResume), Seq: 1, Body: []byte{1}, AppId: testApp, Did: "a", Uid: "alice"},
	} {
		id := uint64(ev.ConnId) // deliver hands ev back to the "gateway", which reuses it
		ts.deliver(t, "gw-2", ev)
		f, ack := untilResumeAck(t, gw2, id)
		if ack.Code != protocol.CodeResumeRejected || f.Action != fleet.DownAction_RESUME_REFUSED {
			t.Errorf("case %d: ResumeAck %+v action %v, want 1208 as RESUME_REFUSED", i, ack, f.Action)
		}
	}
	if s := ts.Stats(); s.Parked != 1 || s.ResumesRefused != 6 {
		t.Errorf("%+v: the refused Resumes must leave a parked and count 6 refusals", s)
	}
	// The right one still works.
	ts.deliver(t, "gw-2", resumeEvent(20, testApp, "a", "alice", 1, 0))
	if _, ack := untilResumeAck(t, gw2, 20); ack.Code != protocol.CodeOK {
		t.Errorf("ResumeAck %+v after the refusals", ack)
	}
}

func TestParkedConnectionEndsWhenTheWindowPasses(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.ReconnectWindow = 300 * time.Millisecond; c.MaxParked = 2 })
	ts.wheel.Start() // the unit tests do not Start the server, whose wheel runs the window
	gw2 := ts.addGateway(t, "gw-2")
	cs := ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.sessions.join(cs, []string{"room"})
	ts.pushTo(t, "a", 101, stage.AtLeastOnce) // seq 1, in flight
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeHeartbeatTimeout))
	// A stage gives up on seq 1 while the device is away: the report waits.
	if err := ts.Host().Undelivered(ctxT(t), cs.stageConn(), 1, 101, 5); err != nil {
		t.Fatal(err)
	}
	if n := len(ts.biz.eventsOf(api.EventKind_UNDELIVERED, "a")); n != 0 {
		t.Fatalf("%d UNDELIVERED while the device may still resume", n)
	}
	ts.pushTo(t, "a", 102, stage.AtMostOnce)
	ts.pushTo(t, "a", 103, stage.AtLeastOnce)
	ts.pushTo(t, "a", 104, stage.AtLeastOnce) // max_parked 2: 102 goes, unreported (at most once)
	ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]
	if ev.Reason != int32(protocol.CodeHeartbeatTimeout) || ev.ConnId != 1 {
		t.Errorf("DISCONNECTED %+v, want the code it dropped with, 1201", ev)
	}
	var lost []int64
	for _, u := range untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 3) {
		lost = append(lost, u.MsgId)
	}
	slices.Sort(lost)
	if !slices.Equal(lost, []int64{101, 103, 104}) {
		t.Errorf("UNDELIVERED msg IDs %v, want the deferred 101 and the queued at-least-once 103, 104", lost)
	}
	if ts.conns.byDID(testApp, "a") != nil || ts.sessions.count() != 0 || ts.Stats().Parked != 0 {
		t.Error("the expired connection is still indexed")
	}
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "alice", 1, 0))
	if _, ack := untilResumeAck(t, gw2, 9); ack.Code != protocol.CodeResumeRejected {
		t.Errorf("Resume after the window: %+v, want 1208", ack)
	}
}

func TestParkedQueueDropsTheOldestBeyondItsBound(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxParked = 2 })
	gw2 := ts.addGateway(t, "gw-2")
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost))
	for id := uint64(101); id <= 103; id++ {
		ts.pushTo(t, "a", id, stage.AtLeastOnce)
	}
	if u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]; u.MsgId != 101 {
		t.Errorf("UNDELIVERED %+v, want the oldest, 101", u)
	}
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "", 1, 0))
	if got := downlinksOf(t, gw2, 9, 2); got[0].msgID != 102 || got[1].msgID != 103 || got[0].seq != 1 {
		t.Errorf("after the Resume: %+v, want 102 and 103 from seq 1", got)
	}
}

// A device back before its old socket was seen to drop takes its connection over: the old socket
// is closed (1207) and the Resume answered.
func TestResumeTakesOverAHalfOpenConnection(t *testing.T) {
	ts := newTestServer(t)
	gw2 := ts.addGateway(t, "gw-2")
	ts.loginDevice(t, 1, testApp, "a", "alice")
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "alice", 1, 0))
	if _, ack := untilResumeAck(t, gw2, 9); ack.Code != protocol.CodeOK {
		t.Fatalf("ResumeAck %+v", ack)
	}
	f := untilFrame(t, ts.gw, 1, protocol.SigClose, 0)
	if c := decodeClose(t, f); c.Code != protocol.CodeMigrated || f.Action != fleet.DownAction_SEND_AND_CLOSE {
		t.Errorf("the old socket got %+v (action %v), want Close 1207", c, f.Action)
	}
	// A Resume naming the old connection again is refused: it is conn 9 now.
	ts.deliver(t, testGW, resumeEvent(3, testApp, "a", "alice", 1, 0))
	if _, ack := untilResumeAck(t, ts.gw, 3); ack.Code != protocol.CodeResumeRejected {
		t.Errorf("a second Resume of the same route: %+v, want 1208", ack)
	}
}

// A drop reported for the socket a connection just left (a redirected device resumes on its new
// gateway within milliseconds of its old gateway's close event; the event's handler may have
// looked at the route before the Resume moved it) neither parks nor ends the resumed connection.
func TestADropOfTheRouteALeftConnectionHadDoesNothing(t *testing.T) {
	ts := newTestServer(t)
	gw2 := ts.addGateway(t, "gw-2")
	cs := ts.loginDevice(t, 1, testApp, "a", "alice")
	old := connKey{gw: testGW, id: 1}
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "alice", 1, 0))
	if _, ack := untilResumeAck(t, gw2, 9); ack.Code != protocol.CodeOK {
		t.Fatalf("ResumeAck %+v", ack)
	}
	// What closed() and gone() do when their look at the route raced with the Resume.
	ts.dropped(cs, protocol.CodeMigrated, old)
	ts.dropped(cs, protocol.CodeClientClose, old)
	if ts.Stats().Parked != 0 || !cs.onRoute(connKey{gw: "gw-2", id: 9}) {
		t.Fatalf("after a stale drop: parked %d, on gw-2 %v; want the connection live on gw-2", ts.Stats().Parked, cs.onRoute(connKey{gw: "gw-2", id: 9}))
	}
	if tg := ts.pushTo(t, "a", 77, stage.AtLeastOnce); tg.Status != api.PushStatus_SENT {
		t.Fatalf("push after a stale drop: %v %q, want SENT to the resumed connection", tg.Status, tg.Message)
	}
	if n := len(ts.biz.eventsOf(api.EventKind_DISCONNECTED, "a")); n != 0 {
		t.Fatalf("%d DISCONNECTED events after a stale drop", n)
	}
	// A drop of the route it is on still parks it.
	ts.dropped(cs, protocol.CodeConnectionLost, connKey{gw: "gw-2", id: 9})
	if ts.Stats().Parked != 1 {
		t.Fatalf("a drop of its own route: parked %d, want 1", ts.Stats().Parked)
	}
}

func TestFinalCodesEndAndResumableOnesPark(t *testing.T) {
	for code, parks := range map[protocol.Code]bool{
		protocol.CodeConnectionLost: true, protocol.CodeHeartbeatTimeout: true, protocol.CodeShuttingDown: true,
		protocol.CodeSlowConsumer: true, protocol.CodeInternal: true, protocol.CodeOverloaded: true,
		protocol.CodeClientClose: false, protocol.CodeKicked: false, protocol.CodeReplaced: false,
		protocol.CodeMalformed: false, protocol.CodeRateLimited: false,
	} {
		ts := newTestServer(t)
		ts.loginDevice(t, 1, testApp, "a", "")
		ts.deliver(t, testGW, closedEvent(1, code))
		if got := ts.Stats().Parked == 1; got != parks {
			t.Errorf("close %d: parked %v, want %v", code, got, parks)
		}
	}
}

func TestKickAndLoginEndAParkedConnection(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.loginDevice(t, 2, testApp, "b", "")
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost), closedEvent(2, protocol.CodeConnectionLost))
	ts.localSession(ctxT(t), &fleet.LocalSessionRequest{AppId: testApp, Op: fleet.SessionOp_KICK, Dids: []string{"a"}, Message: "bye"})
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "a", 1)[0]; ev.Reason != int32(protocol.CodeKicked) {
		t.Errorf("kicked while parked: DISCONNECTED %d, want 1202", ev.Reason)
	}
	ts.loginDevice(t, 3, testApp, "b", "") // a fresh Login of the same did replaces it
	if ev := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "b", 1)[0]; ev.Reason != int32(protocol.CodeReplaced) || ev.ConnId != 2 {
		t.Errorf("replaced while parked: DISCONNECTED %+v, want 1203 for conn 2", ev)
	}
	poll.Within(t, within, "nothing parked", func() bool { return ts.Stats().Parked == 0 })
}

// A gateway moves a connection here from a lost state server: it carries on with its seqs,
// sessions and the at-least-once downlinks it had not ACKed, and the business sees nothing.
func TestAdoptedConnectionCarriesOn(t *testing.T) {
	ts := newTestServer(t)
	unacked := &fleet.DownFrame{ConnId: 5, Signal: int8(protocol.SigDownlink), Seq: 7, Track: true,
		Body: (&protocol.Downlink{MsgID: 707, Payload: []byte("kept")}).Append(nil)}
	ts.deliver(t, testGW, &fleet.UpEvent{ConnId: 5, Kind: fleet.UpKind_ADOPTED, AppId: testApp, Did: "a", Uid: "alice",
		RemoteAddr: "10.0.0.9:1", Sessions: []string{"room"}, Seq: 4, DownSeq: 9, Unacked: []*fleet.DownFrame{unacked}})
	cs := ts.conns.byDID(testApp, "a")
	if cs == nil || !cs.member("room") || cs.key != (connKey{gw: testGW, id: 5}) || ts.Stats().Adopted != 1 {
		t.Fatalf("adopted connection %+v: want a's, in room, on conn 5", cs)
	}
	if got := downlinksOf(t, ts.gw, 5, 1); got[0] != (downlinkSeen{7, 707, true}) {
		t.Errorf("the unACKed downlink went out as %+v, want seq 7 msg 707 flagged", got[0])
	}
	ts.deliver(t, testGW, frameEvent(5, protocol.SigUplink, 4, []byte("again")))
	if a := decodeAck(t, untilFrame(t, ts.gw, 5, protocol.SigUplinkAck, 4)); a.Code != protocol.CodeDuplicate {
		t.Errorf("uplink 4 again: %d, want 1008 (the old server answered it)", a.Code)
	}
	if tg := ts.pushTo(t, "a", 801, stage.AtLeastOnce); tg.Seq != 10 || tg.Status != api.PushStatus_SENT {
		t.Errorf("push after the move: %+v, want SENT with seq 10", tg)
	}
	for _, kind := range []api.EventKind{api.EventKind_CONNECTED, api.EventKind_DISCONNECTED, api.EventKind_RESUMED} {
		if n := len(ts.biz.eventsOf(kind, "a")); n != 0 {
			t.Errorf("%d %v events for a connection that only moved", n, kind)
		}
	}
	// Never ACKed, and the connection ends: the stages that tracked it died, so it is reported here.
	ts.deliver(t, testGW, closedEvent(5, protocol.CodeClientClose))
	if u := untilEvents(t, ts.biz, api.EventKind_UNDELIVERED, "a", 1)[0]; u.MsgId != 707 {
		t.Errorf("UNDELIVERED %+v, want the adopted 707", u)
	}
}

// A connection that closed while its state server was lost reaches the business as DISCONNECTED,
// once, through whichever state server its gateway sends the orphan CLOSED to.
func TestOrphanCloseIsReported(t *testing.T) {
	ts := newTestServer(t)
	ev := closedEvent(3, protocol.CodeClientClose)
	ev.Orphan, ev.AppId, ev.Did, ev.Uid = true, testApp, "gone", "u"
	ts.deliver(t, testGW, ev)
	if got := untilEvents(t, ts.biz, api.EventKind_DISCONNECTED, "gone", 1)[0]; got.ConnId != 3 || got.Reason != int32(protocol.CodeClientClose) {
		t.Errorf("DISCONNECTED %+v", got)
	}
	// A plain CLOSED of a connection this server never knew (a refused login) reports nothing.
	plain := closedEvent(4, protocol.CodeTokenInvalid)
	plain.AppId, plain.Did = testApp, "never"
	ts.deliver(t, testGW, plain)
	if n := len(ts.biz.eventsOf(api.EventKind_DISCONNECTED, "never")); n != 0 {
		t.Errorf("%d DISCONNECTED for a connection never logged in", n)
	}
}

// The gateway moved a connection away (this server was thought lost): it is forgotten without an
// end, and events meant for a previous run of this server are not taken.
func TestMovedAwayAndStaleBoot(t *testing.T) {
	ts := newTestServer(t)
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.moved(ts.gatewayLinkOf(t, testGW), []int64{1})
	if ts.conns.byDID(testApp, "a") != nil || ts.Stats().Conns != 0 {
		t.Error("a connection moved away is still held")
	}
	if n := len(ts.biz.eventsOf(api.EventKind_DISCONNECTED, "a")); n != 0 {
		t.Errorf("%d DISCONNECTED for a connection that lives on elsewhere", n)
	}
	resp, err := (&handler{ts.Server}).Deliver(ctxT(t), &fleet.DeliverRequest{GatewayId: testGW, Boot: "an-earlier-run", Events: []*fleet.UpEvent{loginEvent(2, testApp, "b", "")}})
	if err != nil || !resp.Restarted || ts.conns.byDID(testApp, "b") != nil {
		t.Errorf("events for another run: %+v %v, want Restarted and nothing taken", resp, err)
	}
	ping, err := (&handler{ts.Server}).Ping(ctxT(t), &fleet.PingRequest{GatewayId: testGW})
	if err != nil || ping.Boot != ts.boot || ping.Boot == "" {
		t.Errorf("Ping %+v %v", ping, err)
	}
}

// An uplink the business answers while its device is away gets its UplinkAck after the
// ResumeAck, with the business's code: a resend would only learn 1008.
func TestUplinkAnsweredWhileAwayIsACKedAfterTheResume(t *testing.T) {
	ts := newTestServer(t)
	gw2 := ts.addGateway(t, "gw-2")
	gate := make(chan struct{})
	ts.biz.set(func(b *fakeBusiness) {
		b.gate = gate
		b.answer = func(*api.Event) *api.Result_ { return &api.Result_{Code: 2042, Message: "no"} }
	})
	ts.loginDevice(t, 1, testApp, "a", "")
	ts.deliver(t, testGW, frameEvent(1, protocol.SigUplink, 1, []byte("x")))
	poll.Within(t, within, "the uplink at the business", func() bool { return ts.Stats().Uplinks == 1 })
	ts.deliver(t, testGW, closedEvent(1, protocol.CodeConnectionLost))
	close(gate)
	poll.Within(t, within, "the answer to be kept", func() bool {
		cs := ts.conns.byDID(testApp, "a")
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return cs.park != nil && len(cs.park.acks) == 1
	})
	ts.deliver(t, "gw-2", resumeEvent(9, testApp, "a", "", 1, 0))
	frames := untilFrames(t, gw2, 9, 2, "ResumeAck and UplinkAck", nil)
	if protocol.Signal(frames[0].Signal) != protocol.SigResumeAck || protocol.Signal(frames[1].Signal) != protocol.SigUplinkAck ||
		frames[1].Seq != 1 || decodeAck(t, frames[1]).Code != 2042 {
		t.Errorf("after the Resume: %v then %v seq %d, want ResumeAck then UplinkAck 1 with 2042", frames[0].Signal, frames[1].Signal, frames[1].Seq)
	}
}

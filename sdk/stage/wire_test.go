package stage

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/platoim/plato/sdk/stage/internal/pb"
)

func wireEvents() []Event {
	return []Event{
		{Signal: SignalLogin, Conn: Conn{AppID: "demo", DID: "d1", UID: "u1", ConnID: 42, GatewayID: "gw-1", RemoteAddr: "10.0.0.1:5"},
			Seq: 1, Token: "tok", Platform: "ios", TraceParent: "00-aa-bb-01"},
		{Signal: SignalUplink, Conn: Conn{AppID: "demo", DID: "d2"}, Seq: 1 << 40, Payload: []byte("hello")},
		{Signal: SignalDownlink, Conn: Conn{AppID: "demo"}, Seq: 3, MsgID: 99, Payload: bytes.Repeat([]byte{0, 1, 2}, 1000)},
		{Signal: SignalDownlink, Conn: Conn{AppID: "demo", DID: "d3"}, Seq: 4, MsgID: 100, Payload: []byte("x"), QoS: AtMostOnce},
		{Signal: SignalRoute, Conn: Conn{AppID: "demo"}, Session: "room-1", Targets: 3, Members: 1 << 20, MsgID: 101,
			Payload: []byte("news"), QoS: AtLeastOnce, TraceParent: "00-cc-dd-01"},
		{Signal: SignalRoute, Conn: Conn{AppID: "demo"}, Targets: math.MaxUint32, QoS: QoS(200)},
		{Signal: SignalDownlinkAck, MsgID: 7},
		{Signal: SignalHeartbeat},
		{Signal: SignalDisconnect, Reason: 65535},
		{Signal: SignalTimer, Conn: Conn{AppID: "demo"}, TimerKey: "retx:1", TimerData: []byte{9}},
		{Signal: SignalRetransmit, Conn: Conn{AppID: "demo", DID: "d4", ConnID: 7, GatewayID: "gw-2"}, Seq: 5, MsgID: 102, QoS: AtLeastOnce, Attempts: 3},
		{Signal: "from-the-future"},
		{},
	}
}

func eventFromPB(m *pb.Event) Event {
	return Event{Signal: Signal(m.GetSignal()), Conn: connFromPB(m.GetConn()), Seq: m.GetSeq(), MsgID: m.GetMsgId(),
		Payload: m.GetPayload(), Token: m.GetToken(), Platform: m.GetPlatform(), Reason: uint16(m.GetReason()),
		TimerKey: m.GetTimerKey(), TimerData: m.GetTimerData(), TraceParent: m.GetTraceparent(),
		Session: m.GetSession(), Targets: int(m.GetTargets()), Members: int(m.GetMembers()), QoS: QoS(m.GetQos()),
		Attempts: int(m.GetAttempts())}
}

func eventToPB(ev Event) *pb.Event {
	return &pb.Event{Signal: string(ev.Signal), Conn: connToPB(ev.Conn), Seq: ev.Seq, MsgId: ev.MsgID, Payload: ev.Payload,
		Token: ev.Token, Platform: ev.Platform, Reason: uint32(ev.Reason), TimerKey: ev.TimerKey, TimerData: ev.TimerData,
		Traceparent: ev.TraceParent, Session: ev.Session, Targets: uint32(ev.Targets), Members: uint32(ev.Members),
		Qos: uint32(ev.QoS), Attempts: uint32(ev.Attempts)}
}

// sameEvent compares events treating nil and empty byte slices alike (protobuf does).
func sameEvent(a, b Event) bool {
	if len(a.Payload) == 0 && len(b.Payload) == 0 {
		a.Payload, b.Payload = nil, nil
	}
	if len(a.TimerData) == 0 && len(b.TimerData) == 0 {
		a.TimerData, b.TimerData = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestBatchWireMatchesProtobuf(t *testing.T) {
	events := wireEvents()
	// Ours -> protobuf-go.
	var m pb.Batch
	if err := proto.Unmarshal(encodeBatch(77, 1500, events), &m); err != nil {
		t.Fatal(err)
	}
	if m.Id != 77 || m.TimeoutUs != 1500 || len(m.Events) != len(events) {
		t.Fatalf("batch = %v", &m)
	}
	for i, e := range m.Events {
		if got := eventFromPB(e); !sameEvent(got, events[i]) {
			t.Errorf("event %d: protobuf-go read %+v, want %+v", i, got, events[i])
		}
	}
	// protobuf-go -> ours.
	msg := &pb.Batch{Id: 78, TimeoutUs: -1}
	for _, ev := range events {
		msg.Events = append(msg.Events, eventToPB(ev))
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	id, timeout, got, err := decodeBatch(b)
	if err != nil || id != 78 || timeout != -1 || len(got) != len(events) {
		t.Fatalf("decodeBatch: %d %d %d %v", id, timeout, len(got), err)
	}
	for i := range got {
		if !sameEvent(got[i], events[i]) {
			t.Errorf("event %d: decoded %+v, want %+v", i, got[i], events[i])
		}
	}
}

func TestBatchWireCleansUTF8(t *testing.T) {
	ev := Event{Signal: SignalLogin, Conn: Conn{DID: "d\xff"}, Token: "\xc3", Session: "s\xff"}
	var m pb.Batch
	if err := proto.Unmarshal(encodeBatch(1, 0, []Event{ev}), &m); err != nil {
		t.Fatalf("protobuf-go refused our batch: %v", err)
	}
	if m.Events[0].Conn.Did != "d\uFFFD" || m.Events[0].Token != "\uFFFD" || m.Events[0].Session != "s\uFFFD" {
		t.Errorf("event = %v", m.Events[0])
	}
}

// Targets and Members travel as uint32: out-of-range counts are clamped, never wrapped.
func TestBatchWireClampsCounts(t *testing.T) {
	events := []Event{{Signal: SignalRoute, Targets: -1, Members: math.MaxUint32 + 5}}
	_, _, got, err := decodeBatch(encodeBatch(1, 0, events))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Targets != 0 || got[0].Members != math.MaxUint32 {
		t.Errorf("targets %d members %d, want 0 and %d", got[0].Targets, got[0].Members, uint32(math.MaxUint32))
	}
}

// A strBlock must hold every string field of an event at once, repeated fields included.
func TestDecodeEventEveryString(t *testing.T) {
	full := Event{Signal: "future-signal", Conn: Conn{AppID: "a", DID: "d", UID: "u", GatewayID: "g", RemoteAddr: "r"},
		Token: "t", Platform: "p", TimerKey: "k", TraceParent: "tp", Session: "s"}
	b := encodeBatch(1, 0, []Event{full, full})
	_, _, got, err := decodeBatch(b)
	if err != nil || len(got) != 2 || !sameEvent(got[0], full) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// Every field twice in one event: the last wins, as in protobuf.
	ev := appendEvent(nil, &full)
	_, n := protowire.ConsumeVarint(ev[protowire.SizeTag(fBatchEvents):])
	body := ev[protowire.SizeTag(fBatchEvents)+n:]
	twice := protowire.AppendTag(nil, fBatchEvents, protowire.BytesType)
	twice = protowire.AppendBytes(twice, append(bytes.Clone(body), body...))
	if _, _, got, err = decodeBatch(twice); err != nil || !sameEvent(got[0], full) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

func TestResultsWireMatchesProtobuf(t *testing.T) {
	rewritten := Rewrite([]byte("routed"))
	rewritten.Route, rewritten.QoS = RouteDirect, AtLeastOnce
	replies := []Reply{{}, RejectWith(2001, "no"), {Verdict: Drop}, Rewrite([]byte("new")), Rewrite([]byte{}),
		{Payload: []byte("ignored: no Replace")}, Routed(RouteBroadcast, AtMostOnce), Routed(RouteDefault, AtLeastOnce),
		rewritten, ResendAfter(1500 * time.Millisecond), GiveUpAfter(0), GiveUpAfter(30 * time.Second), Untrack()}
	want := []Reply{{}, RejectWith(2001, "no"), {Verdict: Drop}, Rewrite([]byte("new")), Rewrite([]byte{}), {},
		Routed(RouteBroadcast, AtMostOnce), Routed(RouteDefault, AtLeastOnce), rewritten,
		ResendAfter(1500 * time.Millisecond), GiveUpAfter(0), GiveUpAfter(30 * time.Second), Untrack()}

	var m pb.Results
	if err := proto.Unmarshal(encodeResults(5, replies), &m); err != nil {
		t.Fatal(err)
	}
	if m.Id != 5 || len(m.Results) != len(replies) || !m.Results[4].Replace || m.Results[5].Payload != nil ||
		m.Results[6].Route != 2 || m.Results[6].Qos != 1 || m.Results[7].Route != 0 || m.Results[7].Qos != 2 ||
		m.Results[9].AfterUs != 1500000 || m.Results[11].Verdict != 1 || m.Results[11].AfterUs != 30000000 {
		t.Fatalf("results = %v", &m)
	}
	b, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	id, failure, err := peekResults(b)
	if err != nil || id != 5 || failure != "" {
		t.Fatalf("peek: %d %q %v", id, failure, err)
	}
	got := make([]Reply, len(replies))
	if err := decodeResults(b, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v\nwant    %+v", got, want)
	}
	if err := decodeResults(b, make([]Reply, 2)); err == nil {
		t.Error("no error for a count mismatch")
	}

	fb, _ := proto.Marshal(&pb.Results{Id: 6, Error: "panic: x"})
	if !bytes.Equal(fb, encodeFailure(6, "panic: x")) {
		t.Errorf("failure encoding differs from protobuf-go's")
	}
	if id, failure, err := peekResults(fb); id != 6 || failure != "panic: x" || err != nil {
		t.Errorf("peek failure: %d %q %v", id, failure, err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(1, 10, wireEvents()))
	f.Add(encodeBatch(2, 0, nil))
	f.Add([]byte{0x12, 0x05, 0x12, 0x03, 0x0a, 0x01})
	f.Add([]byte{0x12, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, timeout, events, err := decodeBatch(b)
		var m pb.Batch
		if perr := proto.Unmarshal(b, &m); perr != nil {
			return // protobuf-go refuses it (e.g. invalid UTF-8); we may be more lenient
		}
		if err != nil {
			t.Fatalf("protobuf-go accepts what decodeBatch refuses: %v", err)
		}
		if id != m.Id || timeout != m.TimeoutUs || len(events) != len(m.Events) {
			t.Fatalf("decodeBatch %d %d %d, protobuf-go %d %d %d", id, timeout, len(events), m.Id, m.TimeoutUs, len(m.Events))
		}
		for i := range events {
			if want := eventFromPB(m.Events[i]); !sameEvent(events[i], want) {
				t.Fatalf("event %d: %+v, protobuf-go %+v", i, events[i], want)
			}
		}
	})
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(encodeResults(1, []Reply{{}, RejectWith(1, "x"), Rewrite([]byte("p")), Routed(RouteBroadcast, AtMostOnce)}))
	f.Add(encodeFailure(2, "panic"))
	f.Add([]byte{0x12, 0x02, 0x28, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, failure, err := peekResults(b)
		var m pb.Results
		if perr := proto.Unmarshal(b, &m); perr != nil {
			return
		}
		if err != nil || id != m.Id || failure != m.Error {
			t.Fatalf("peek %d %q %v, protobuf-go %d %q", id, failure, err, m.Id, m.Error)
		}
		replies := make([]Reply, len(m.Results))
		if err := decodeResults(b, replies); err != nil {
			t.Fatal(err)
		}
		for i, r := range m.Results {
			want := Reply{Verdict: Verdict(r.Verdict), Code: uint16(r.Code), Message: r.Message, Route: Route(r.Route), QoS: QoS(r.Qos),
				After: time.Duration(r.AfterUs) * time.Microsecond}
			if r.Replace {
				want.Replace, want.Payload = true, r.Payload
				if want.Payload == nil {
					want.Payload = []byte{}
				}
			}
			if !reflect.DeepEqual(replies[i], want) {
				t.Fatalf("reply %d: %+v, protobuf-go %+v", i, replies[i], want)
			}
		}
	})
}
